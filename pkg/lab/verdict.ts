// What a lab message's delivery must look like, decided from counts alone (no I/O): exactly the
// expected copies reach each named pod's application, and every other pod gets nothing, neither in
// its application nor as a frame on its interface.

/** What one pod got of each message of a send (index = message). */
export interface PodCounts {
  /** Datagrams the pod's receiving application read (after the pod's kernel checked them). */
  app: number[];
  /** Of those, datagrams whose payload differs from what was sent. */
  damaged: number[];
  /** Frames the pod's interface capture saw (undefined: captures off). */
  frames?: number[];
}

export interface DeliveryCase {
  /** Pod -> copies of each message its application must read (named pods). */
  received: Record<string, number>;
  /** Pod -> copies of each message its interface must see (pods that never joined). */
  frames: Record<string, number>;
  sender: string;
  /**
   * The sender's own kernel hands it one copy of each message (IP_MULTICAST_LOOP asked for, or a
   * broadcast, which Linux always loops back); that copy never crosses its interface.
   */
  senderLoopsBack: boolean;
  /** Every pod in the lab, with what it got. */
  pods: Record<string, PodCounts>;
  /** Pods whose positive control did not arrive before the deadline. */
  controlsMissing: string[];
  /** Underlay datagrams per message, and how many the scenario wants (undefined: not checked). */
  underlay?: { want?: number; got: number[] };
}

/** Copies of each message the pod's application must read. */
export function wantedCopies(c: Pick<DeliveryCase, 'received' | 'sender' | 'senderLoopsBack'>, pod: string) {
  return c.received[pod] ?? (pod === c.sender && c.senderLoopsBack ? 1 : 0);
}

/** A pod the scenario did not name: it must not even see a frame. */
function mustBeSilent(c: DeliveryCase, pod: string): boolean {
  return !(pod in c.received) && !(pod in c.frames);
}

/** Every way the delivery differs from the expectation, as sentences naming pod and message. */
export function judgeDelivery(c: DeliveryCase): string[] {
  const out: string[] = [];
  for (const pod of [...Object.keys(c.received), ...Object.keys(c.frames)])
    if (!(pod in c.pods)) out.push(`${pod} is named in the expectation but is not a pod of the lab`);
  for (const pod of c.controlsMissing)
    out.push(`${pod}'s positive control did not arrive in time, so its silence cannot be trusted`);
  for (const [pod, got] of Object.entries(c.pods)) {
    const want = wantedCopies(c, pod);
    const wantFrames = c.frames[pod];
    got.app.forEach((n, k) => {
      const frames = got.frames?.[k];
      if (wantFrames !== undefined) {
        if (frames !== undefined && frames !== wantFrames)
          out.push(`${pod}'s interface saw message ${k} ${frames} times, want ${wantFrames}`);
      } else if (n !== want) {
        const seen = frames === undefined ? '' : ` (its interface saw ${frames} frame(s))`;
        out.push(`${pod}'s application received message ${k} ${n} times, want ${want}${seen}`);
      }
      if (got.damaged[k]) out.push(`${pod} received ${got.damaged[k]} damaged cop(ies) of message ${k}`);
      if (mustBeSilent(c, pod) && frames)
        out.push(`${pod}'s interface saw message ${k} ${frames} times, want none`);
    });
  }
  const u = c.underlay;
  if (u?.want !== undefined)
    u.got.forEach(
      (n, k) =>
        n !== u.want && out.push(`message ${k} crossed the underlay in ${n} datagrams, want ${u.want}`),
    );
  return out;
}

/** Whether every named pod has all its copies already (polling stops early only on this). */
export function expectedArrived(
  c: Pick<DeliveryCase, 'received' | 'frames' | 'sender' | 'senderLoopsBack' | 'pods'>,
): boolean {
  return Object.entries(c.pods).every(
    ([pod, got]) => pod in c.frames || got.app.every((n) => n >= wantedCopies(c, pod)),
  );
}

/** What a send's report shows of its delivery (the most of any of its messages). */
export interface DeliverySummary {
  /** Underlay datagrams of a message. */
  underlay_datagrams: number;
  /** Nodes, other than the sender's, of the pods that must get the messages. */
  remote_member_nodes: number;
  /** Pod -> copies of a message its application read. */
  received: Record<string, number>;
  /** Pod -> frames of a message its interface saw (0 with captures off). */
  frames: Record<string, number>;
}

/** Sums up a send's counts for its report; `nodes` maps every pod of the lab to its node. */
export function summarizeDelivery(
  c: Pick<DeliveryCase, 'received' | 'frames' | 'pods'>,
  underlay: number[],
  nodes: Map<string, number>,
  senderNode: number,
): DeliverySummary {
  const memberNodes = new Set(
    [...Object.entries(c.received), ...Object.entries(c.frames)]
      .filter(([pod, n]) => n > 0 && nodes.has(pod))
      .map(([pod]) => nodes.get(pod)!)
      .filter((n) => n !== senderNode),
  );
  const counts = Object.entries(c.pods);
  return {
    underlay_datagrams: Math.max(...underlay),
    remote_member_nodes: memberNodes.size,
    received: Object.fromEntries(counts.map(([pod, got]) => [pod, Math.max(...got.app)])),
    frames: Object.fromEntries(counts.map(([pod, got]) => [pod, got.frames ? Math.max(...got.frames) : 0])),
  };
}

/** The token a lab payload starts with: the text before its padding ('.') or its final newline. */
export function tokenOf(payload: Uint8Array): string {
  let end = 0;
  while (end < payload.length && payload[end] !== 0x2e && payload[end] !== 0x0a) end++;
  return Buffer.from(payload.buffer, payload.byteOffset, end).toString('latin1');
}
