// The agent's multicast/broadcast data plane (README.md "The data plane", docs/dataplane-io.md):
// capture BUM frames from local endpoints, resolve and partition them, deliver local copies directly
// and send one datagram per remote node; deliver datagrams from the underlay to exactly the listed
// endpoints.
import { DisposableStore, toDisposable, type Disposable } from '../../base/lifecycle.js';
import { VNET_HDR_LEN } from '../../frame/vnet.js';
import type { Logger } from '../../log/log.js';
import type {
  Directory,
  EndpointRecord,
  LookupService,
  MembershipRecord,
  NodeRecord,
} from '../../lookup/port.js';
import { CaptureSet } from '../../packet/capture.js';
import { buildIndex, Resolver } from '../../resolve/index.js';
import type { IndexedEndpoint } from '../../resolve/directory-index.js';
import { ipFamily } from '../../netaddr/ip.js';
import { UnderlaySocket, type OutDatagram, type Peer } from '../../underlay/udp.js';
import { encapsulate, udpPayloadBudget, type WireKey } from '../../wire/index.js';
import { Counters, type DataplaneCounters } from './counters.js';
import { decideDatagram, decideLocalFrame, isAnnouncement, type Policing } from './forward.js';
import { macBytes } from '../../netaddr/mac.js';
import type { Keyring } from './keyring.js';
import { Policer } from './policer.js';
import { withLocalState } from './local-directory.js';
import type { Endpoint, EndpointSource } from '../../endpoint/table.js';
import { applyVmHandoff } from '../../resolve/vm-handoff.js';
import { holds } from '../../resolve/directory-index.js';
import type { ParsedFrame } from '../../frame/ethernet.js';
import { errorMessage } from '../../base/errors.js';

export interface DataplaneOptions {
  node: NodeRecord;
  underlayMtu: number;
  /** Version 1 key for outgoing datagrams; incoming ones must verify with one of `acceptKeys`. */
  sendKey?: WireKey;
  acceptKeys?: WireKey[];
  /** Wire format version 2 (per-pair keys) with the peers that advertise it; absent: version 1 only. */
  keyring?: Keyring;
  endpoints: EndpointSource;
  lookup: LookupService;
  /** Turns the bridge's own flooding towards an endpoint off, so the data plane alone delivers BUM. */
  takeOverPort: (e: Endpoint) => void;
  /** IGMP/MLD frames from endpoints go to the membership table. */
  onMembershipFrame: (endpointId: number, frame: ParsedFrame, bytes: Uint8Array) => void;
  /**
   * Called on a local endpoint's first announcement from its own MAC (forward.ts isAnnouncement):
   * its activation, see vm-handoff. After a live migration, QEMU's RARP for the guest.
   */
  onActivation: (endpointId: number) => void;
  /** A migrated VM's groups move to its live endpoint at once (default); see VmHandoffOptions. */
  vmGroupHandover?: boolean;
  /**
   * A local endpoint announced (gratuitous ARP, unsolicited NA) an allowed address that the
   * directory does not yet place on it: it takes the address over (resolve/address-pairs.ts).
   */
  onAnnounce: (endpointId: number, address: string) => void;
  /** This node's published view of a local endpoint (with its activation time). */
  localRecord: (e: Endpoint) => EndpointRecord;
  /** The directory the data plane resolves against, after every rebuild. */
  onDirectory?: (d: Directory) => void;
  log: Logger;
}

export class Dataplane implements Disposable {
  private readonly capture = new CaptureSet<number>();
  /** Opened by start(); every method that uses it runs after start() (callbacks it registers). */
  private underlay!: UnderlaySocket;
  private readonly lifetime = new DisposableStore();
  private readonly counters = new Counters();
  private readonly policer = new Policer();
  private directory: Directory = { networks: [], nodes: [], endpoints: [], groups: [], memberships: [] };
  private memberships: MembershipRecord[] = [];
  private resolver: Resolver;
  private nodesByAddress = new Map<string, NodeRecord>();
  private peers = new Map<string, Peer>();
  private localEndpoints = new Map<number, Endpoint>();
  private readonly budget: number;
  private rebuildPending = false;
  private lastRebuildMs = 0;
  /** Endpoints that announced themselves (activated), so later frames skip the check. */
  private readonly announced = new Set<number>();

  constructor(private readonly o: DataplaneOptions) {
    this.budget = udpPayloadBudget(o.underlayMtu, ipFamily(o.node.address, 'underlay address'));
    this.resolver = new Resolver(buildIndex(this.directory, o.node.name));
  }

  /** Opens the underlay socket, captures every ready endpoint and follows endpoints and the directory. */
  start(): void {
    this.lifetime.add(this.capture);
    this.underlay = this.lifetime.add(
      UnderlaySocket.open({ address: this.o.node.address, port: this.o.node.port }),
    );
    this.capture.onFrames((b) => this.onLocalFrames(b.tag, b.frames));
    this.underlay.onDatagrams((batch) => {
      for (const d of batch) this.onDatagram(d.from, d.data);
      // Received frames are borrowed from the receive ring: inject them before returning.
      this.capture.flush();
    });
    for (const e of this.o.endpoints.endpoints()) this.attach(e);
    this.lifetime.add(
      toDisposable(
        this.o.endpoints.subscribe((ev) => {
          if (ev.type === 'ready') this.attach(ev.endpoint);
          else this.detach(ev.endpoint);
          this.scheduleRebuild();
        }),
      ),
    );
    this.lifetime.add(
      toDisposable(
        this.o.lookup.subscribe((d) => {
          this.directory = d;
          this.scheduleRebuild();
        }),
      ),
    );
    this.rebuild();
  }

  /** This node's memberships changed (from the membership table). */
  setMemberships(records: MembershipRecord[]): void {
    this.memberships = records;
    this.scheduleRebuild();
  }

  /** Injects frames (each starting with a virtio_net_hdr) into a local endpoint's link. */
  injectTo(endpointId: number, frames: Uint8Array[]): void {
    const e = this.localEndpoints.get(endpointId);
    if (e?.hostIfindex) this.capture.inject(e.hostIfindex, frames);
  }

  stats(): { dataplane: DataplaneCounters; capture: unknown; underlay: unknown; indexProblems: number } {
    return {
      dataplane: this.counters.snapshot(),
      capture: this.capture.counters(),
      underlay: this.underlay.counters(),
      indexProblems: this.resolver.index.problems.length,
    };
  }

  dispose(): Promise<void> {
    return this.lifetime.dispose();
  }

  private attach(e: Endpoint): void {
    if (!e.hostIfindex || this.localEndpoints.has(e.endpointId)) return;
    try {
      this.o.takeOverPort(e);
      this.capture.add(e.hostIfindex, e.endpointId);
      this.localEndpoints.set(e.endpointId, e);
    } catch (err) {
      this.o.log.warn('cannot attach endpoint to the data plane', {
        endpoint: e.endpointId,
        hostIfname: e.hostIfname,
        error: errorMessage(err),
      });
    }
  }

  private detach(e: Endpoint): void {
    if (!this.localEndpoints.delete(e.endpointId)) return;
    this.announced.delete(e.endpointId);
    this.policer.forget(e.endpointId);
    this.counters.forget(e.endpointId);
    if (e.hostIfindex) this.capture.remove(e.hostIfindex);
  }

  /** Local state the index depends on changed (e.g. an endpoint's activation). */
  scheduleRebuild(): void {
    if (this.rebuildPending) return;
    this.rebuildPending = true;
    const run = () => {
      this.rebuildPending = false;
      const started = performance.now();
      this.rebuild();
      this.lastRebuildMs = performance.now() - started;
    };
    // A small directory rebuilds at once. A large one (seconds at 100,000 endpoints) waits as long as
    // its last rebuild took, so a burst of changes coalesces and forwarding keeps at least half the CPU.
    if (this.lastRebuildMs < 5) queueMicrotask(run);
    else setTimeout(run, Math.min(this.lastRebuildMs, 2000));
  }

  /** A new index per change: the per-packet path only ever reads an immutable one. */
  private rebuild(): void {
    const local = [...this.localEndpoints.values()].map((e) => this.o.localRecord(e));
    const d = applyVmHandoff(withLocalState(this.directory, this.o.node.name, local, this.memberships), {
      moveMemberships: this.o.vmGroupHandover !== false,
    });
    const index = buildIndex(d, this.o.node.name);
    for (const p of index.problems) this.o.log.debug('directory problem', { ...p });
    this.resolver = new Resolver(index);
    this.nodesByAddress = new Map(d.nodes.map((n) => [n.address, n]));
    this.o.keyring?.setPeers(d.nodes);
    // Peers of nodes that left go too: the map follows the directory, not its history.
    const live = new Set(d.nodes.map((n) => peerKey(n)));
    for (const [key, p] of this.peers)
      if (!live.has(key)) {
        this.peers.delete(key);
        this.underlay.forget(p);
      }
    this.o.onDirectory?.(d);
  }

  private peer(n: NodeRecord): Peer {
    const key = peerKey(n);
    let p = this.peers.get(key);
    if (!p) this.peers.set(key, (p = this.underlay.peer(n.address, n.port)));
    return p;
  }

  private onLocalFrames(endpointId: number, frames: Buffer[]): void {
    const sender = this.resolver.index.localEndpoint(endpointId);
    const out: OutDatagram[] = [];
    const policing: Policing = { policer: this.policer, nowMs: performance.now() };
    for (const bytes of frames) {
      this.counters.c.framesCaptured++;
      if (!this.announced.has(endpointId)) this.activateOnAnnouncement(endpointId, bytes);
      const a = decideLocalFrame(this.resolver, sender, bytes, policing);
      if (a.announced && !holds(this.resolver.index, sender!, a.announced))
        this.o.onAnnounce(endpointId, a.announced);
      switch (a.kind) {
        case 'drop':
          if (a.policed) this.counters.policed(endpointId, a.policed);
          else this.counters.drop(a.reason);
          break;
        case 'membership':
          this.counters.c.membershipMessages++;
          this.o.onMembershipFrame(endpointId, a.frame, bytes);
          break;
        case 'arp-reply':
          this.counters.c.arpReplies++;
          this.injectTo(endpointId, [withVnetHeader(a.reply)]);
          break;
        case 'forward':
          this.deliverLocal(a.delivery.local, bytes);
          if (a.delivery.unreachable) this.counters.drop('unreachable-node', a.delivery.unreachable);
          for (const batch of a.delivery.remote)
            this.encapsulateTo(sender!, batch.node, batch.endpointIds, bytes, out);
          break;
      }
    }
    if (out.length) this.counters.c.datagramsSent += this.underlay.send(out);
  }

  /** A superseded VM endpoint is not in the index (vm-handoff), so its own record says its MAC. */
  private activateOnAnnouncement(endpointId: number, bytes: Uint8Array): void {
    const e = this.localEndpoints.get(endpointId);
    if (!e || !isAnnouncement(bytes, macBytes(e.mac))) return;
    this.announced.add(endpointId);
    this.o.onActivation(endpointId);
  }

  private deliverLocal(ids: readonly number[], frame: Uint8Array): void {
    for (const id of ids) {
      const e = this.localEndpoints.get(id);
      if (!e?.hostIfindex) {
        this.counters.drop('local-endpoint-gone');
        continue;
      }
      // Queued per interface; the capture set sends each interface's batch in one sendmmsg when the
      // handler returns (kernel drops show in the capture counters' injectDropped).
      this.capture.queue(e.hostIfindex, frame);
      this.counters.c.localDeliveries++;
    }
  }

  private encapsulateTo(
    sender: IndexedEndpoint,
    node: NodeRecord,
    ids: readonly number[],
    bytes: Uint8Array,
    out: OutDatagram[],
  ): void {
    const r = encapsulate(
      {
        networkId: sender.network.spec.id,
        sourceEndpointId: sender.endpointId,
        destinations: [...ids],
        vnetHeader: true,
        frame: bytes,
      },
      this.budget,
      this.o.keyring?.sealFor(node.name) ?? this.o.sendKey,
    );
    if (!r.ok) {
      this.counters.drop(`encapsulate:${r.error.code}`);
      return;
    }
    const to = this.peer(node);
    for (const data of r.value) out.push({ to, data });
  }

  private onDatagram(from: { address: string; port: number }, data: Uint8Array): void {
    this.counters.c.datagramsReceived++;
    const a = decideDatagram(
      this.resolver,
      this.nodesByAddress,
      from,
      data,
      this.o.acceptKeys ?? [],
      this.o.keyring,
    );
    if (a.kind === 'drop') {
      this.counters.drop(a.reason, a.count);
      return;
    }
    if (a.sealed) this.counters.c.datagramsAuthenticated++;
    if (a.rejectedIds) this.counters.drop('rejected-endpoint-id', a.rejectedIds);
    const frame = a.vnetHeader ? a.frame : withVnetHeader(a.frame);
    for (const t of a.targets) {
      const e = this.localEndpoints.get(t.endpointId);
      if (!e?.hostIfindex) {
        this.counters.drop('local-endpoint-gone');
        continue;
      }
      this.capture.queue(e.hostIfindex, frame);
      this.counters.c.remoteDeliveries++;
    }
  }
}

const peerKey = (n: NodeRecord): string => `${n.address}|${n.port}`;

/** Frames the agent builds itself carry finished checksums: an all-zero virtio_net_hdr. */
export function withVnetHeader(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(VNET_HDR_LEN + frame.length);
  out.set(frame, VNET_HDR_LEN);
  return out;
}
