// Positive controls for the lab's negative checks (pure). "Nothing arrived" only means something
// once a message sent later, through the same agents, did arrive: each pod gets a unicast control
// datagram after a send's messages, and its counts are read only once that control is in.

export interface ControlPod {
  name: string;
  node: number;
  network: string;
  ip: string;
  /** Whether a unicast to `ip` reaches this pod (false for a VM pod superseded by its migration target). */
  reachable: boolean;
}

export interface Control {
  target: string;
  source: string;
}

/**
 * Who sends each pod's control: the sender itself to the pods of its network (the same capture
 * socket and agents as the messages), else a pod of the target's network, preferably on the
 * sender's node. Pods that no unicast can reach get no control of their own: they are read once
 * every other control arrived.
 */
export function planControls(pods: ControlPod[], sender: string): Control[] {
  const from = pods.find((p) => p.name === sender);
  if (!from) throw new Error(`sender ${sender} is not a pod of the lab`);
  const out: Control[] = [];
  for (const t of pods) {
    if (!t.reachable) continue;
    const candidates = pods
      .filter((p) => p.reachable && p.network === t.network && p.name !== t.name && p.ip !== t.ip)
      .sort((a, b) => rank(a) - rank(b));
    const source = candidates[0];
    if (source) out.push({ target: t.name, source: source.name });
  }
  return out;

  function rank(p: ControlPod): number {
    return p.name === sender ? 0 : p.node === from!.node ? 1 : 2;
  }
}
