// Positive controls for the lab's negative checks (pure). "Nothing arrived" only means something
// once a message sent later through the same agents did arrive. Cross-node unicast rides the
// kernel's VXLAN, not the agents, so a control is link-local multicast (224.0.0.1 or ff02::1, which
// the data plane delivers to every endpoint of the network and every pod's kernel accepts) on the
// lab's control port.

export interface ControlPod {
  name: string;
  node: number;
  network: string;
  /** Whether the data plane still delivers to this pod (false for a VM pod superseded by its migration target). */
  reachable: boolean;
}

export interface Control {
  /** The pod that sends it. */
  source: string;
  /** The pods whose counts wait for it. */
  awaitAt: string[];
}

/**
 * Per network, one control from the sender itself (the same capture socket and agents as the
 * messages) or else from a pod on the sender's node, awaited at every other pod of the network; and
 * one back to that source from a pod of the network, preferably on its node (castnet never reflects
 * a frame to its sender, so the source needs another's). Pods that the data plane no longer reaches
 * get no control: they are read once every other control arrived.
 */
export function planControls(pods: ControlPod[], sender: string): Control[] {
  const from = pods.find((p) => p.name === sender);
  if (!from) throw new Error(`sender ${sender} is not a pod of the lab`);
  const out: Control[] = [];
  for (const network of new Set(pods.map((p) => p.network))) {
    const reach = pods.filter((p) => p.network === network && p.reachable);
    if (reach.length < 2) continue;
    const near = (node: number) => (p: ControlPod) => (p.node === node ? 0 : 1);
    const byNode = (node: number) => (a: ControlPod, b: ControlPod) => near(node)(a) - near(node)(b);
    const first = reach.includes(from) ? from : [...reach].sort(byNode(from.node))[0]!;
    const others = reach.filter((p) => p !== first);
    out.push({ source: first.name, awaitAt: others.map((p) => p.name) });
    out.push({ source: [...others].sort(byNode(first.node))[0]!.name, awaitAt: [first.name] });
  }
  return out;
}
