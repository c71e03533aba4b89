// Cross-node unicast rides the kernel: per network, a VXLAN port (VNI = network ID) on the node's
// bridge, with static forwarding entries for every remote endpoint's MAC. No learning and no
// flooding through it: multicast and broadcast stay the castnet data plane's, which delivers exactly
// to members; the VXLAN port only carries unicast to MACs the directory places on another node.
// Changes are applied in one `ip -batch` and one `bridge -batch` per burst of directory updates.
import { bridgeName } from '../../endpoint/names.js';
import type { Logger } from '../../log/log.js';
import type { Directory } from '../../lookup/port.js';
import { ipFamily } from '../../netaddr/ip.js';
import { run } from '../../sys/exec.js';
import { diffRemoteMacs, remoteMacs, type RemoteMacs } from './plan.js';
import { errorMessage } from '../../base/errors.js';

export const VXLAN_PORT = 4789;

export const vxlanName = (networkId: number): string => 'cnvx' + networkId.toString(16).padStart(6, '0');

/**
 * The largest frame payload the VXLAN port carries without fragmenting on the underlay: its MTU less
 * the outer IP (20 or 40), UDP (8), VXLAN (8) and inner Ethernet (14) headers. The bridge takes its
 * ports' smallest MTU, so the node's own traffic into the network is sized for it too.
 */
export const vxlanMtu = (underlayMtu: number, underlayAddress: string): number =>
  underlayMtu - (ipFamily(underlayAddress, 'underlay address') === 6 ? 70 : 50);

export interface OverlayOptions {
  node: string;
  underlayAddress: string;
  underlayMtu: number;
  log: Logger;
}

export class UnicastOverlay {
  private applied: RemoteMacs = new Map();
  private devices = new Set<string>();
  private pending: { d: Directory; localNetworks: Set<string> } | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly o: OverlayOptions) {}

  /** Brings the kernel in line with `d` for the networks that have endpoints on this node. */
  sync(d: Directory, localNetworks: Set<string>): void {
    this.pending = { d, localNetworks };
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Resolves once every sync so far is applied (tests). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const { d, localNetworks } = this.pending;
      this.pending = undefined;
      try {
        await this.apply(d, localNetworks);
      } catch (err) {
        this.o.log.warn('unicast overlay not fully applied; retried on the next change', {
          error: errorMessage(err),
        });
      }
    }
  }

  private async apply(d: Directory, localNetworks: Set<string>): Promise<void> {
    const ids = new Map(d.networks.map((n) => [n.name, n.id]));
    const all = remoteMacs(d, this.o.node);
    const desired: RemoteMacs = new Map([...all].filter(([net]) => localNetworks.has(net) && ids.has(net)));
    const linkCmds: string[] = [];
    const portCmds: string[] = [];
    for (const net of desired.keys()) {
      const dev = vxlanName(ids.get(net)!);
      if (this.devices.has(dev)) continue;
      // `replace`-style idempotence: an existing device (agent restart) is reused as is.
      linkCmds.push(
        `link add ${dev} type vxlan id ${ids.get(net)} local ${this.o.underlayAddress} dstport ${VXLAN_PORT} nolearning`,
        `link set ${dev} mtu ${vxlanMtu(this.o.underlayMtu, this.o.underlayAddress)} master ${bridgeName(ids.get(net)!)} up`,
      );
      portCmds.push(`link set dev ${dev} learning off flood off mcast_flood off bcast_flood off`);
    }
    if (linkCmds.length) {
      await run('ip', ['-force', '-batch', '-'], { input: linkCmds.join('\n') + '\n' }).catch(
        (err: Error) => {
          // "File exists" for devices left by a previous run is expected; anything else surfaces below.
          if (!/File exists/.test(err.message)) throw err;
        },
      );
      for (const net of desired.keys()) this.devices.add(vxlanName(ids.get(net)!));
    }
    const fdb: string[] = [...portCmds];
    for (const c of diffRemoteMacs(this.applied, desired)) {
      const id = ids.get(c.network);
      if (id === undefined) continue;
      const dev = vxlanName(id);
      if (c.address) {
        fdb.push(`fdb replace ${c.mac} dev ${dev} dst ${c.address} self permanent`);
        fdb.push(`fdb replace ${c.mac} dev ${dev} master static`);
      } else {
        fdb.push(`fdb del ${c.mac} dev ${dev} self`, `fdb del ${c.mac} dev ${dev} master`);
      }
    }
    if (fdb.length)
      await run('bridge', ['-force', '-batch', '-'], { input: fdb.join('\n') + '\n' }).catch((err: Error) => {
        // Deleting an entry that is already gone is fine; -force applied the rest.
        if (!/No such file|Cannot find device/.test(err.message)) throw err;
      });
    this.applied = desired;
  }
}
