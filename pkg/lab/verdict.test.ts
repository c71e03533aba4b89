import { planControls, type ControlPod } from './controls.js';
import {
  expectedArrived,
  judgeDelivery,
  summarizeDelivery,
  tokenOf,
  type DeliveryCase,
  type PodCounts,
} from './verdict.js';

const got = (app: number[], frames = app, damaged = app.map(() => 0)): PodCounts => ({
  app,
  frames,
  damaged,
});

function base(pods: Record<string, PodCounts>, over: Partial<DeliveryCase> = {}): DeliveryCase {
  return {
    received: { b: 1 },
    frames: {},
    sender: 'a',
    senderLoopsBack: false,
    pods,
    controlsMissing: [],
    ...over,
  };
}

describe('judgeDelivery', () => {
  it('passes exactly-once delivery to the named pod and silence everywhere else', () => {
    expect(judgeDelivery(base({ a: got([0]), b: got([1]), r: got([0]) }))).toEqual([]);
  });

  it('fails a duplicate at a member', () => {
    expect(judgeDelivery(base({ a: got([0]), b: got([1, 2]) }))).toEqual([
      "b's application received message 1 2 times, want 1 (its interface saw 2 frame(s))",
    ]);
  });

  it('fails a pod nobody named that received anything, even only a frame on its interface', () => {
    expect(judgeDelivery(base({ a: got([0]), b: got([1]), r: got([0], [1]) }))).toEqual([
      "r's interface saw message 0 1 times, want none",
    ]);
    expect(judgeDelivery(base({ a: got([1], [0]), b: got([1]) }))).toEqual([
      "a's application received message 0 1 times, want 0 (its interface saw 0 frame(s))",
    ]);
  });

  it('expects the sender to read its own kernel loopback copy, never a frame from the network', () => {
    const c = base({ a: got([1], [0]), b: got([1]) }, { senderLoopsBack: true });
    expect(judgeDelivery(c)).toEqual([]);
    expect(judgeDelivery({ ...c, pods: { a: got([2], [1]), b: got([1]) } })).toEqual([
      "a's application received message 0 2 times, want 1 (its interface saw 1 frame(s))",
      "a's interface saw message 0 1 times, want none",
    ]);
  });

  it('fails a frame that reached the interface but not the application, and damaged copies', () => {
    expect(judgeDelivery(base({ a: got([0]), b: got([0], [1]) }))).toEqual([
      "b's application received message 0 0 times, want 1 (its interface saw 1 frame(s))",
    ]);
    expect(judgeDelivery(base({ a: got([0]), b: got([1], [1], [1]) }))).toEqual([
      'b received 1 damaged cop(ies) of message 0',
    ]);
  });

  it('counts pods named under frames on their interface only', () => {
    const c = base({ a: got([0]), s: got([0], [1]) }, { received: {}, frames: { s: 1 } });
    expect(judgeDelivery(c)).toEqual([]);
    expect(judgeDelivery({ ...c, pods: { a: got([0]), s: got([0], [2]) } })).toEqual([
      "s's interface saw message 0 2 times, want 1",
    ]);
  });

  it('does not trust silence without its positive control, and checks underlay datagrams', () => {
    const c = base({ a: got([0]), b: got([1]) }, { controlsMissing: ['r'], underlay: { want: 1, got: [2] } });
    expect(judgeDelivery(c)).toEqual([
      "r's positive control did not arrive in time, so its silence cannot be trusted",
      'message 0 crossed the underlay in 2 datagrams, want 1',
    ]);
  });

  it('names an expected pod that does not exist', () => {
    expect(judgeDelivery(base({ a: got([0]) }))).toEqual([
      'b is named in the expectation but is not a pod of the lab',
    ]);
  });
});

describe('expectedArrived', () => {
  it('waits for every named copy, not for pods counted by frames', () => {
    const c = { received: { b: 1 }, frames: { s: 1 }, sender: 'a', senderLoopsBack: true };
    expect(expectedArrived({ ...c, pods: { a: got([1]), b: got([1]), s: got([0]) } })).toBe(true);
    expect(expectedArrived({ ...c, pods: { a: got([0]), b: got([1]), s: got([0]) } })).toBe(false);
  });
});

describe('summarizeDelivery', () => {
  it("reports the most of any message, and the member nodes other than the sender's", () => {
    const nodes = new Map([
      ['a', 0],
      ['b', 1],
      ['c', 3],
      ['s', 2],
      ['l', 0],
    ]);
    const pods = {
      a: got([0, 0]),
      b: got([1, 2]),
      c: got([1, 1]),
      s: got([0, 0], [1, 1]),
      l: { app: [1, 1], damaged: [0, 0] },
    };
    const summary = summarizeDelivery(
      // b adds node 1 and s (by frames) node 2; c (0 copies) and l (the sender's node) add none.
      { received: { b: 1, c: 0, l: 1 }, frames: { s: 1 }, pods },
      [2, 3],
      nodes,
      0,
    );
    expect(summary).toEqual({
      underlay_datagrams: 3,
      remote_member_nodes: 2,
      received: { a: 0, b: 2, c: 1, s: 0, l: 1 },
      frames: { a: 0, b: 2, c: 1, s: 1, l: 0 },
    });
  });
});

describe('tokenOf', () => {
  it('takes the text before the padding or the newline', () => {
    expect(tokenOf(Buffer.from('castnet-lab:s:1:0:x.......\n'))).toBe('castnet-lab:s:1:0:x');
    expect(tokenOf(Buffer.from('tok\n'))).toBe('tok');
    expect(tokenOf(Buffer.from('raw-token'))).toBe('raw-token');
  });
});

describe('planControls', () => {
  const pod = (name: string, node: number, network: string, reachable = true): ControlPod => ({
    name,
    node,
    network,
    reachable,
  });

  it('sends from the sender in its network and from its node elsewhere, and a control back to each source', () => {
    const pods = [
      pod('b1', 1, 'blue'),
      pod('a1', 0, 'blue'),
      pod('a2', 0, 'blue'),
      pod('v1', 0, 'blue', false),
      pod('r1', 1, 'red'),
      pod('r0', 0, 'red'),
      pod('lone', 2, 'green'),
    ];
    expect(planControls(pods, 'a1')).toEqual([
      { source: 'a1', awaitAt: ['b1', 'a2'] },
      { source: 'a2', awaitAt: ['a1'] },
      { source: 'r0', awaitAt: ['r1'] },
      { source: 'r1', awaitAt: ['r0'] },
    ]);
  });

  it('refuses a sender that is not a pod', () => {
    expect(() => planControls([], 'x')).toThrow(/sender x is not a pod/);
  });
});
