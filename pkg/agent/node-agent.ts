// The data-plane half of `castnet agent`: joins the lookup service, publishes this node's endpoints,
// runs the IGMP/MLD querier and the multicast/broadcast data plane, and serves stats and metrics.
import { DisposableStore, toDisposable, type Disposable } from '../base/lifecycle.js';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer } from 'node:http';
import type { Endpoint } from '../endpoint/table.js';
import { toEndpointRecord } from '../endpoint/table.js';
import type { NodeEndpointManager } from '../endpoint/node-manager.js';
import type { Logger } from '../log/log.js';
import type {
  Directory,
  EndpointRecord,
  LookupService,
  NetworkSpec,
  NodeRecord,
  VmOwner,
} from '../lookup/port.js';
import type { AddRequest, EndpointManager } from '../endpoint/manager.js';
import { endpointMtu, makeWireKey, type WireKey } from '../wire/index.js';
import { isIPv6 } from 'node:net';
import { Dataplane } from './dataplane/dataplane.js';
import { Keyring } from './dataplane/keyring.js';
import { withVnetHeader } from './dataplane/dataplane.js';
import { Querier } from './membership/querier.js';
import { EgressNat } from './unicast/egress-nat.js';
import { NodeGateway } from './unicast/gateway.js';
import { UnicastOverlay, VXLAN_PORT } from './unicast/overlay.js';
import { UnderlayFilter } from './underlay/filter.js';
import { SourceGuard } from './unicast/source-guard.js';
import { checkUnique, confirmVmi } from './identity.js';
import { planVmAddresses } from './vm-address.js';
import { addressHolders, reservedAddresses, type AddressHolders } from '../ipam/reservations.js';
import { VM_NAME_ARG } from '../cni/env.js';
import type { MembershipConfig } from '../membership/index.js';
import { UnderlayProber } from './health/prober.js';
import { errorMessage } from '../base/errors.js';

export interface NodeAgentOptions {
  node: NodeRecord;
  underlayMtu: number;
  /** The cluster's version 1 datagram key (loadWireKey), for peers that speak only version 1. */
  wireKey?: WireKey;
  /**
   * 2 (default): per-pair keys with every peer that advertises version 2 (docs/wire-format.md).
   * 1: version 1 only, authenticated only with `wireKey` (before an upgrade; the benchmark's baseline).
   */
  wireVersion?: 1 | 2;
  /** How often the node's key pair is replaced (default a day; 0: only on rotateKey()). */
  keyRotationMs?: number;
  /** How long a replaced key is still accepted (default 2 minutes). */
  keyGraceMs?: number;
  statsSocket?: string;
  /** UDP control port of the underlay health probes, the same on every node; absent: no probes. */
  healthPort?: number;
  membership?: Partial<MembershipConfig>;
  /** false: a migrated VM's groups wait at its target for its own IGMP/MLD reports (vm-handoff). */
  vmGroupHandover?: boolean;
  /** How long an ADD waits for a VMI's status to name its virt-launcher pod (tests). */
  vmi?: { timeoutMs?: number };
  /** Combines the lookup service's networks with any the agent was given locally. */
  mergeNetworks?: (fromLookup: NetworkSpec[]) => NetworkSpec[];
  /** Primary mode: the cluster network, whose gateway and routes this node keeps (unicast/gateway.ts). */
  primaryNetwork?: string;
  /**
   * Primary mode: masquerade the pods' traffic to destinations outside the network, except to these
   * IPv4 CIDRs (unicast/egress-nat.ts). Absent: no masquerade.
   */
  masquerade?: { except: readonly string[] };
}

export function loadWireKey(file: string): WireKey {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new Error(`--wire-key-file ${file}: ${errorMessage(err)}`, { cause: err });
  }
  const text = raw.toString('utf8').trim();
  const secret = /^[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0 ? Buffer.from(text, 'hex') : raw;
  try {
    return makeWireKey(secret);
  } catch (err) {
    throw new Error(`--wire-key-file ${file}: ${errorMessage(err)}`, { cause: err });
  }
}

const RESTORE_TIMEOUT_MS = 5000;
export const DEFAULT_KEY_ROTATION_MS = 24 * 3600_000;
export const DEFAULT_KEY_GRACE_MS = 120_000;
/** Destination IDs that fit beside a full-size frame in one datagram (more are split, never cut). */
const IDS_PER_FULL_FRAME = 4;

/** network -> addresses held by endpoints of other nodes, and by every VM's address reservations. */
function addressesElsewhere(d: Directory, node: string, holders: AddressHolders): Map<string, Set<string>> {
  const out = reservedAddresses(holders);
  for (const e of d.endpoints) {
    if (e.node === node) continue;
    let set = out.get(e.network);
    if (!set) out.set(e.network, (set = new Set()));
    for (const ip of e.ips) set.add(ip);
  }
  return out;
}

export class NodeAgent implements Disposable {
  private readonly dataplane: Dataplane;
  private readonly querier: Querier;
  private readonly overlay: UnicastOverlay;
  private readonly gateway: NodeGateway | undefined;
  private readonly egressNat: EgressNat | undefined;
  private readonly filter: UnderlayFilter;
  private readonly guard: SourceGuard;
  private readonly health: UnderlayProber | undefined;
  private directory: Directory | undefined;
  /** Which VM's reservation holds each address (pkg/ipam/reservations.ts), from the directory. */
  private holders: AddressHolders = new Map();
  private readonly lifetime = new DisposableStore();
  private readonly snoopingOff = new Set<string>();
  private publishPending = false;
  private readonly activatedAt = new Map<number, number>();
  /** endpoint ID -> allowed address -> when the endpoint last took it over. */
  private readonly claims = new Map<number, Map<string, number>>();
  private readonly keyed: boolean;
  private readonly keyring: Keyring | undefined;

  constructor(
    private readonly o: NodeAgentOptions,
    private readonly manager: NodeEndpointManager,
    private readonly lookup: LookupService,
    private readonly log: Logger,
  ) {
    const key = o.wireKey;
    this.keyed = key !== undefined;
    this.keyring =
      o.wireVersion === 1
        ? undefined
        : new Keyring({
            node: o.node.name,
            graceMs: o.keyGraceMs ?? DEFAULT_KEY_GRACE_MS,
            log: log.with({ component: 'keys' }),
          });
    this.health =
      o.healthPort === undefined
        ? undefined
        : new UnderlayProber({
            node: o.node.name,
            address: o.node.address,
            port: o.healthPort,
            underlayMtu: o.underlayMtu,
            key,
            onReport: (r) => lookup.reportUnderlayHealth?.(r),
            log: log.with({ component: 'health' }),
          });
    this.filter = new UnderlayFilter({
      ports: [o.node.port, VXLAN_PORT, ...(o.healthPort === undefined ? [] : [o.healthPort])],
      log: log.with({ component: 'underlay-filter' }),
    });
    this.guard = new SourceGuard({ endpoints: manager, log: log.with({ component: 'source-guard' }) });
    this.overlay = new UnicastOverlay({
      node: o.node.name,
      underlayAddress: o.node.address,
      underlayMtu: o.underlayMtu,
      log: log.with({ component: 'unicast' }),
    });
    this.gateway =
      o.primaryNetwork === undefined
        ? undefined
        : new NodeGateway({
            node: o.node.name,
            network: o.primaryNetwork,
            underlayAddress: o.node.address,
            log: log.with({ component: 'gateway' }),
          });
    this.egressNat =
      o.primaryNetwork === undefined || !o.masquerade
        ? undefined
        : new EgressNat({
            network: o.primaryNetwork,
            keep: o.masquerade.except,
            log: log.with({ component: 'egress-nat' }),
          });
    this.dataplane = new Dataplane({
      node: o.node,
      underlayMtu: o.underlayMtu,
      sendKey: key,
      acceptKeys: key ? [key] : [],
      keyring: this.keyring,
      endpoints: manager,
      lookup,
      takeOverPort: (e) => this.takeOverPort(e),
      onMembershipFrame: (id, frame, bytes) => this.querier.handleFrame(id, frame, bytes),
      onActivation: (id) => this.activate(id),
      ...(o.vmGroupHandover === false ? { vmGroupHandover: false } : {}),
      onAnnounce: (id, address) => this.claim(id, address),
      localRecord: (e) => this.record(e),
      onDirectory: (d) => this.syncOverlay(d),
      log: log.with({ component: 'dataplane' }),
    });
    this.querier = new Querier({
      node: o.node.name,
      config: o.membership,
      endpoints: manager,
      lookup,
      inject: (id, frame) => this.dataplane.injectTo(id, [withVnetHeader(frame)]),
      onRecords: (records) => this.dataplane.setMemberships(records),
      log: log.with({ component: 'querier' }),
    });
  }

  /**
   * Starts the data plane and the querier, follows the directory and the endpoints, registers the
   * node, probes the peers' underlay paths and serves stats. On a failure, what was started is released before the error is thrown.
   */
  async start(): Promise<void> {
    try {
      // First: the ports are closed to everyone until the first directory names the nodes.
      await this.lifetime.add(this.filter).start();
      // Before any endpoint's traffic is forwarded: unicast from a ready endpoint is checked.
      await this.lifetime.add(this.guard).start();
      if (this.egressNat) await this.lifetime.add(this.egressNat).start();
      this.lifetime.add(this.dataplane).start();
      this.lifetime.add(this.querier).start();
      this.followDirectory();
      this.lifetime.add(
        toDisposable(
          this.manager.subscribe((ev) => {
            if (ev.type === 'removed') {
              this.activatedAt.delete(ev.endpoint.endpointId);
              this.claims.delete(ev.endpoint.endpointId);
            } else if (this.isOnlyEndpointOfItsVm(ev.endpoint)) this.activate(ev.endpoint.endpointId);
            this.publishEndpoints();
          }),
        ),
      );
      await this.lookup.registerNode(this.nodeRecord());
      this.rotateEvery(this.o.keyRotationMs ?? DEFAULT_KEY_ROTATION_MS);
      this.publishEndpoints();
      if (this.health) await this.lifetime.add(this.health).start();
      if (this.o.statsSocket) await this.serveStats(this.o.statsSocket);
    } catch (err) {
      await this.lifetime.dispose().catch(() => undefined);
      throw err;
    }
  }

  /** This node's record: where it listens, and with version 2, its public key. */
  private nodeRecord(): NodeRecord {
    if (!this.keyring) return this.o.node;
    return { ...this.o.node, wireVersion: 2, wireKey: this.keyring.advertised() };
  }

  /**
   * Replaces the node's key pair and publishes the new public key; peers switch to it as they see
   * it, and both keys are accepted for the grace period (docs/wire-format.md "Rotation").
   */
  async rotateKey(): Promise<void> {
    if (!this.keyring) return;
    const k = this.keyring.rotate();
    this.log.info('key pair rotated', { epoch: k.epoch });
    await this.lookup.registerNode(this.nodeRecord());
  }

  private rotateEvery(ms: number): void {
    if (!this.keyring || ms <= 0) return;
    const timer = setInterval(() => {
      this.rotateKey().catch((err: unknown) =>
        this.log.warn('rotated key not published yet', { error: errorMessage(err) }),
      );
    }, ms);
    timer.unref();
    this.lifetime.add(toDisposable(() => clearInterval(timer)));
  }

  /** Stops forwarding and querying and closes the stats socket; the lookup service is the caller's. */
  dispose(): Promise<void> {
    return this.lifetime.dispose();
  }

  /**
   * Applies every directory to the endpoint manager and the querier. The first one (or none, after
   * RESTORE_TIMEOUT_MS) restores the memberships and activations this node had published.
   */
  private followDirectory(): void {
    const node = this.o.node.name;
    let restored = false;
    const restore = (d?: Directory) => {
      if (restored) return;
      restored = true;
      if (d) this.restoreActivations(d);
      // Selector memberships are the lookup service's to evaluate, not joins the querier heard.
      this.querier.restore(d ? d.memberships.filter((m) => m.node === node && !m.via) : []);
    };
    const timer = setTimeout(() => {
      if (restored) return;
      this.log.warn('no directory from the lookup service yet; starting with no restored memberships');
      restore();
    }, RESTORE_TIMEOUT_MS);
    timer.unref();
    this.lifetime.add(toDisposable(() => clearTimeout(timer)));
    this.lifetime.add(
      toDisposable(
        this.lookup.subscribe((d) => {
          restore(d);
          const networks = this.o.mergeNetworks ? this.o.mergeNetworks(d.networks) : d.networks;
          this.manager.setNetworks(networks);
          this.querier.setNetworks(networks);
          this.holders = addressHolders(networks, d.reservations ?? []);
          this.manager.setAddressesInUseElsewhere(addressesElsewhere(d, node, this.holders));
          this.quietSnooping(this.manager.endpoints());
          this.health?.setPeers(d.nodes);
          this.filter.sync(d.nodes);
          this.directory = d;
        }),
      ),
    );
  }

  snapshot(): Record<string, unknown> {
    return {
      node: this.o.node.name,
      ...this.dataplane.stats(),
      membership: { records: this.querier.records().length, drops: this.querier.counters() },
      endpoints: this.manager.endpoints().length,
      underlayFilter: this.filter.stats(),
      sourceGuard: this.guard.stats(),
      ...(this.egressNat ? { egressNat: this.egressNat.stats() } : {}),
      wire: this.keyring ? { version: 2, keyEpoch: this.keyring.advertised().epoch } : { version: 1 },
      ...(this.lookup.stats ? { lookup: this.lookup.stats } : {}),
    };
  }

  private syncOverlay(d: Directory): void {
    const networks = new Set(this.manager.endpoints().map((e) => e.network));
    if (!this.gateway) return this.overlay.sync(d, networks);
    // The primary network's bridge (the gateway makes it) and VXLAN port exist on every node, pods or not.
    networks.add(this.gateway.network);
    this.gateway.sync(d);
    this.egressNat?.sync(d);
    void this.gateway.settled().then(() => this.overlay.sync(d, networks));
  }

  private record(e: Endpoint): EndpointRecord {
    const r = toEndpointRecord(e, this.o.node.name);
    const at = this.activatedAt.get(e.endpointId);
    if (at !== undefined) r.activatedAt = at;
    const claims = this.claims.get(e.endpointId);
    if (claims?.size) r.claims = [...claims].map(([address, at]) => ({ address, at }));
    return r;
  }

  /** The endpoint took over a shared address: the directory follows it, here at once, elsewhere when published. */
  private claim(endpointId: number, address: string): void {
    let claims = this.claims.get(endpointId);
    if (!claims) this.claims.set(endpointId, (claims = new Map()));
    claims.set(address, Date.now());
    this.log.info('endpoint took over an allowed address', { endpointId, address });
    this.publishEndpoints();
    this.dataplane.scheduleRebuild();
  }

  /**
   * A VM's endpoint with no other of its VM in the directory is the VM (a start, not a migration
   * target): active at once, so that a later migration target only wins by announcing itself.
   */
  private isOnlyEndpointOfItsVm(e: Endpoint): boolean {
    const vm = e.vm;
    // Before the first directory (an agent restart) nothing is known: the published record decides.
    if (!vm || !this.directory || this.activatedAt.has(e.endpointId)) return false;
    return !this.directory.endpoints.some(
      (r) =>
        r.network === e.network &&
        r.vm?.namespace === vm.namespace &&
        r.vm.name === vm.name &&
        !(r.node === this.o.node.name && r.endpointId === e.endpointId),
    );
  }

  /** The endpoint announced itself for the first time: for a migrating VM, the moment it moves here. */
  private activate(endpointId: number): void {
    if (this.activatedAt.has(endpointId)) return;
    this.activatedAt.set(endpointId, Date.now());
    this.publishEndpoints();
    this.dataplane.scheduleRebuild();
  }

  /**
   * After a restart, an endpoint keeps the activation time and the claims of shared addresses it had
   * published (a VRRP master that does not announce again still holds its VIP).
   */
  private restoreActivations(d: Directory): void {
    const mine = new Map(this.manager.endpoints().map((e) => [e.endpointId, e]));
    for (const r of d.endpoints) {
      const e = mine.get(r.endpointId);
      if (r.node !== this.o.node.name || !e || e.mac !== r.mac) continue;
      const allowed = new Set(e.allowedAddresses);
      const claims = r.claims?.filter((c) => allowed.has(c.address)) ?? [];
      if (claims.length && !this.claims.has(r.endpointId))
        this.claims.set(r.endpointId, new Map(claims.map((c) => [c.address, c.at])));
      if (r.activatedAt !== undefined)
        this.activatedAt.set(
          r.endpointId,
          Math.min(r.activatedAt, this.activatedAt.get(r.endpointId) ?? Infinity),
        );
    }
  }

  /**
   * Wraps the endpoint manager for the CNI server: an ADD learns the pod's KubeVirt identity from the
   * lookup service, and the target pod of a live migration takes over the VM's MAC and IPs.
   */
  cniManager(): EndpointManager {
    const m = this.manager;
    return {
      add: async (req) => m.add(await this.prepareAdd(req)),
      del: (req) => m.del(req),
      check: (req) => m.check(req),
      gc: (req) => m.gc(req),
      status: (conf) => m.status(conf),
      reconcile: () => m.reconcile(),
    };
  }

  /**
   * The largest endpoint MTU whose full-size frames still fit one underlay datagram with a few
   * destination IDs (and the tag), so a frame is never truncated or lost to the encapsulation.
   */
  private maxEndpointMtu(): number {
    return endpointMtu(this.o.underlayMtu, {
      family: isIPv6(this.o.node.address) ? 6 : 4,
      auth: this.keyring ? 'v2' : this.keyed,
      vnetHeader: true,
      vlanTags: 1,
      idsPerDatagram: IDS_PER_FULL_FRAME,
    });
  }

  private async prepareAdd(req: AddRequest): Promise<AddRequest> {
    const network = this.directory?.networks.find((n) => n.name === req.conf.network);
    const wanted = req.conf.mtu ?? network?.mtu;
    const max = this.maxEndpointMtu();
    if (wanted !== undefined && wanted > max) {
      this.log.warn('endpoint MTU clamped to fit the underlay', {
        network: req.conf.network,
        wanted,
        mtu: max,
      });
      req = { ...req, conf: { ...req.conf, mtu: max } };
    }
    if (req.args[VM_NAME_ARG] !== undefined) {
      // A VM identity is the VMI status's to give, never the request's (below).
      const args = { ...req.args };
      delete args[VM_NAME_ARG];
      req = { ...req, args };
    }
    const namespace = req.args.K8S_POD_NAMESPACE;
    const name = req.args.K8S_POD_NAME;
    let owner: VmOwner | undefined;
    if (!req.vm && namespace && name && this.lookup.podMetadata) {
      const meta = await this.lookup.podMetadata(namespace, name).catch((err: Error) => {
        this.log.warn('pod metadata unavailable; no KubeVirt identity', {
          namespace,
          name,
          error: err.message,
        });
        return undefined;
      });
      // Labels only say which VMI to ask; its status must name the pod (else a CniError).
      const vmi = meta && (await confirmVmi(meta, this.lookup.vmiPods?.bind(this.lookup), this.o.vmi));
      if (vmi) {
        req = { ...req, vm: vmi.vm };
        owner = vmi.status.owner;
      }
    }
    const vm = req.vm;
    const castnetIpam = !req.conf.ipam || req.conf.ipam.type === 'castnet';
    const running =
      vm && castnetIpam
        ? this.directory?.endpoints.find(
            (e) =>
              e.network === req.conf.network &&
              e.node !== this.o.node.name &&
              e.vm?.namespace === vm.namespace &&
              e.vm.name === vm.name,
          )
        : undefined;
    if (running) {
      this.log.info('live migration: the new pod takes over the VM endpoint', {
        vm: `${vm!.namespace}/${vm!.name}`,
        from: `${running.node}/${running.endpointId}`,
        mac: running.mac,
        ips: running.ips,
      });
      const rc = req.conf.runtimeConfig ?? {};
      req = {
        ...req,
        conf: {
          ...req.conf,
          runtimeConfig: { ...rc, mac: rc.mac ?? running.mac, ips: rc.ips ?? running.ips },
        },
      };
    }
    if (vm && castnetIpam) {
      // The VM's reserved addresses, or a reservation of what it gets (pkg/agent/vm-address.ts).
      const plan = await planVmAddresses({
        lookup: this.lookup,
        vm,
        owner,
        network: req.conf.network,
        requested: req.conf.runtimeConfig?.ips,
        holders: this.holders,
        subnets: network?.subnets,
        log: this.log,
      });
      if (plan.ips)
        req = { ...req, conf: { ...req.conf, runtimeConfig: { ...req.conf.runtimeConfig, ips: plan.ips } } };
      if (plan.reserve) req = { ...req, claimAddresses: plan.reserve };
    }
    const rc = req.conf.runtimeConfig;
    checkUnique(
      this.directory,
      {
        node: this.o.node.name,
        network: req.conf.network,
        mac: rc?.mac
          ? { field: 'runtimeConfig.mac', value: rc.mac }
          : req.args.MAC
            ? { field: 'CNI_ARGS MAC', value: req.args.MAC }
            : undefined,
        ips: rc?.ips,
        vm,
      },
      this.holders,
    );
    return req;
  }

  private publishEndpoints(): void {
    if (this.publishPending) return;
    this.publishPending = true;
    queueMicrotask(() => {
      this.publishPending = false;
      const records = this.manager.endpoints().map((e) => this.record(e));
      this.lookup
        .publishEndpoints(this.o.node.name, records)
        .catch((err: Error) =>
          this.log.warn('endpoint publication not accepted yet', { error: err.message }),
        );
    });
  }

  /**
   * The bridge keeps known unicast and never floods unknown unicast (ports of earlier versions are
   * fixed here too); multicast and broadcast become the data plane's alone, or local members would
   * get a second copy. Snooping off makes every multicast "unregistered", so the per-port
   * mcast_flood flag governs it all.
   */
  private takeOverPort(e: Endpoint): void {
    this.manager.setPortFlooding(e, { mcastFlood: false, bcastFlood: false, unicastFlood: false });
    this.quietSnooping([e]);
  }

  /** Snooping off on the bridges of these endpoints' networks, once each network is known. */
  private quietSnooping(endpoints: Endpoint[]): void {
    for (const e of endpoints) {
      if (this.snoopingOff.has(e.network)) continue;
      try {
        this.manager.setBridgeSnooping(e.network, false);
        this.snoopingOff.add(e.network);
      } catch (err) {
        // After a restart the networks arrive with the first directory; retried then.
        this.log.debug('bridge snooping not changed yet', {
          network: e.network,
          error: errorMessage(err),
        });
      }
    }
  }

  private async serveStats(path: string): Promise<void> {
    // The stats socket may start before the CNI server has made the shared socket directory.
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    rmSync(path, { force: true });
    const stats = createServer((req, res) => {
      if (req.url === '/v1/stats') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(this.snapshot()));
      } else if (req.url === '/v1/health' && this.health) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(this.health.snapshot()));
      } else if (req.url === '/v1/metrics' && this.health) {
        const registry = this.health.metrics;
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (err: Error) => res.writeHead(500).end(err.message),
        );
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => stats.once('error', reject).listen(path, resolve));
    this.lifetime.add(toDisposable(() => new Promise<void>((resolve) => stats.close(() => resolve()))));
  }
}
