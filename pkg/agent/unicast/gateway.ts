// Primary mode: the node's side of the cluster network (pkg/endpoint/primary.ts), so the node itself,
// the kubelet's probes, kube-proxy's Services and hostNetwork pods reach the pods of every node, and
// the pods reach them:
// - the network's bridge, created here so that a node with no pod yet reaches the others' pods, holds
//   the pods' gateway address NODE_GATEWAY_V4/32 (a pod's ARP for it is a broadcast, which the bridge
//   itself always receives);
// - a route to each IPv4 subnet of the network through the bridge, from the node's underlay address
//   (what a pod replies to);
// - a permanent neighbour entry per endpoint address, on every node: the node's own ARP requests
//   would reach no pod (the data plane floods broadcast, and only what endpoints send), and the
//   directory knows every endpoint's MAC. A remote MAC leads to its node through the unicast
//   overlay's VXLAN port.
// Changes are applied in one `ip -batch` per burst of directory updates.
import { createHash } from 'node:crypto';
import { bridgeName } from '../../endpoint/names.js';
import { ipv4Subnets, NODE_GATEWAY_V4 } from '../../endpoint/primary.js';
import type { Logger } from '../../log/log.js';
import type { Directory } from '../../lookup/port.js';
import { ipFamily } from '../../netaddr/ip.js';
import { run } from '../../sys/exec.js';
import { errorMessage } from '../../base/errors.js';

export interface GatewayOptions {
  node: string;
  /** The VirtualNetwork that is the cluster network. */
  network: string;
  underlayAddress: string;
  log: Logger;
}

/** The gateway bridge's MAC on `node`: locally administered, the same across agent restarts. Pure. */
export function gatewayMac(node: string, networkId: number): string {
  const h = createHash('sha256').update(`${node}/${networkId}`).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** IPv4 address -> MAC of every endpoint of `network` in the directory, on any node. Pure. */
export function neighbours(d: Directory, network: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of d.endpoints) {
    if (e.network !== network) continue;
    for (const ip of e.ips) if (ipFamily(ip, 'endpoint address') === 4) out.set(ip, e.mac.toLowerCase());
  }
  return out;
}

/** The `ip -batch` lines turning the neighbour entries `have` into `want` on `dev`. Pure. */
export function neighbourCommands(
  dev: string,
  have: ReadonlyMap<string, string>,
  want: ReadonlyMap<string, string>,
): string[] {
  const out: string[] = [];
  for (const [ip, mac] of want)
    if (have.get(ip) !== mac) out.push(`neigh replace ${ip} lladdr ${mac} dev ${dev} nud permanent`);
  for (const ip of have.keys()) if (!want.has(ip)) out.push(`neigh del ${ip} dev ${dev}`);
  return out;
}

export class NodeGateway {
  private applied = new Map<string, string>();
  private bridge: string | undefined;
  private routes = '';
  private pending: Directory | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly o: GatewayOptions) {}

  get network(): string {
    return this.o.network;
  }

  /** Brings the node's gateway, routes and neighbour entries in line with `d`. */
  sync(d: Directory): void {
    this.pending = d;
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Resolves once every sync so far is applied. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const d = this.pending;
      this.pending = undefined;
      try {
        await this.apply(d);
      } catch (err) {
        this.o.log.warn('primary network gateway not fully applied; retried on the next change', {
          network: this.o.network,
          error: errorMessage(err),
        });
      }
    }
  }

  private async apply(d: Directory): Promise<void> {
    const net = d.networks.find((n) => n.name === this.o.network);
    if (!net) return;
    const dev = bridgeName(net.id);
    if (this.bridge !== dev) {
      // An existing bridge (the endpoint manager's, an agent restart) is kept as it is.
      await run('ip', ['link', 'add', dev, 'type', 'bridge']).catch((err: Error) => {
        if (!/File exists/.test(err.message)) throw err;
      });
      // A fixed MAC: a bridge otherwise takes its ports' lowest, so a pod's ADD or DEL could change it,
      // which flushes every neighbour entry of the bridge (permanent ones too) and leaves the pods'
      // cached gateway address stale.
      const mac = gatewayMac(this.o.node, net.id);
      // -force: the delete fails ("Address not found") when the address is not there yet.
      await run('ip', ['-force', '-batch', '-'], {
        input:
          [
            `link set dev ${dev} address ${mac} up`,
            // Link scope: the node never picks it as a source beyond the link. kube-proxy's MASQUERADE
            // (NodePorts, hairpins) takes the outgoing interface's first universe-scope address, and
            // would otherwise give pods 169.254.1.1 as the peer, which every node holds.
            `address del ${NODE_GATEWAY_V4}/32 dev ${dev}`,
            `address add ${NODE_GATEWAY_V4}/32 dev ${dev} scope link`,
          ].join('\n') + '\n',
      }).catch((err: Error) => {
        if (!/Address not found/.test(err.message)) throw err;
      });
      this.bridge = dev;
      this.applied = new Map();
      this.routes = '';
    }
    const cmds: string[] = [];
    const v4 = ipv4Subnets(net.subnets);
    const src =
      ipFamily(this.o.underlayAddress, 'underlay address') === 4 ? ` src ${this.o.underlayAddress}` : '';
    const routes = v4.map((s) => `route replace ${s} dev ${dev} proto static${src}`);
    if (routes.join('\n') !== this.routes) cmds.push(...routes);
    const want = neighbours(d, this.o.network);
    cmds.push(...neighbourCommands(dev, this.applied, want));
    if (cmds.length)
      await run('ip', ['-force', '-batch', '-'], { input: cmds.join('\n') + '\n' }).catch((err: Error) => {
        // Deleting an entry that is already gone is fine; -force applied the rest.
        if (!/No such file|Cannot find|does not exist/.test(err.message)) throw err;
      });
    this.routes = routes.join('\n');
    this.applied = want;
  }
}
