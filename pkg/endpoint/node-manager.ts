// The node agent's EndpointManager: wires pods into per-network bridges, runs IPAM (castnet's pools or
// a delegated plugin) and keeps the endpoint table. See docs/endpoints.md.
import { errorMessage } from '../base/errors.js';
import type { Disposable } from '../base/lifecycle.js';
import { existsSync } from 'node:fs';
import {
  attachmentKey,
  CniError,
  CniErrorCode,
  type CniIpConfig,
  type CniResult,
  type CniRoute,
} from '../cni/types.js';
import { allocateAddresses, poolsOf } from '../ipam/castnet.js';
import { execDelegate, formatCniArgs, type DelegateCall } from '../ipam/delegate.js';
import { DEFAULT_POOL_SIZES, type PoolSizes } from '../ipam/pool.js';
import { silentLogger, type Logger } from '../log/log.js';
import type { NetworkSpec, PodRef, VmRef } from '../lookup/port.js';
import { normalizeUnicastMac, randomLocalMac } from '../netaddr/mac.js';
import { attachRefusal } from '../resolve/tenancy.js';
import type { BridgePortFlags } from '../netlink/codec.js';
import { Rtnl } from '../netlink/rtnl.js';
import type {
  AddRequest,
  Attachment,
  CheckRequest,
  DelRequest,
  EndpointManager,
  GcRequest,
  NetConf,
} from './manager.js';
import { checkAllowedAddresses } from './allowed-addresses.js';
import { bridgeName, hostIfname, isHostIfname } from './names.js';
import { primaryPodRoutes } from './primary.js';
import { rebuildFromKernel, type Rebuilt } from './recover.js';
import {
  type Endpoint,
  EndpointTable,
  type EndpointListener,
  type EndpointSource,
  type IpamRecord,
} from './table.js';
import {
  configureContainer,
  configureHostPort,
  createVethPair,
  ensureNetworkBridge,
  findPodEnd,
  setBridgeSnooping as setSnooping,
  setPortFlooding,
} from './wiring.js';

/** The points of ADD after which progress is recorded; a test may freeze ADD at any of them. */
export type AddStep = 'reserved' | 'ipam' | 'veth' | 'port' | 'container';
/**
 * The points of releasing an endpoint (DEL, GC, reconcile): the host veth is deleted ('unlinked'),
 * then a delegated IPAM plugin released the addresses ('ipam-released'), then the record goes.
 */
export type ReleaseStep = 'unlinked' | 'ipam-released';
export type EndpointStep = AddStep | ReleaseStep;
export const ENDPOINT_STEPS: readonly EndpointStep[] = [
  'reserved',
  'ipam',
  'veth',
  'port',
  'container',
  'unlinked',
  'ipam-released',
];

/** CNI_ARGS key castnet reads a KubeVirt VMI name from (namespace: K8S_POD_NAMESPACE). */
export const VM_NAME_ARG = 'CASTNET_VM_NAME';

export interface EndpointManagerOptions {
  stateDir: string;
  nodeName: string;
  /** Index of this node's IPAM block in each network's subnets. */
  poolIndex: number;
  networks: NetworkSpec[];
  /**
   * The network that is the cluster network (primary mode): its pods with castnet IPAM get a default
   * route through their node's bridge (primary.ts).
   */
  primaryNetwork?: string;
  log?: Logger;
  poolSizes?: PoolSizes;
  /** Namespace of the node side (bridges, host veths): default the agent's own. The lab runs several. */
  hostNetns?: string;
  /**
   * fsync the table before answering ADD (default false: every write is atomic, which is what an agent
   * crash needs, and an fsync follows within 200 ms off the request path; see docs/endpoints.md).
   */
  durable?: boolean;
  /** Where pod network namespaces are named, to rebuild lost records from (default /var/run/netns). */
  netnsDir?: string;
  /** How often sweep() releases endpoints whose pod netns vanished without a DEL (default 30 s; 0: never). */
  sweepIntervalMs?: number;
  /**
   * Test hook awaited after each step of ADD and of a release; a promise that never settles freezes
   * the request there, and the agent's CASTNET_TEST_CRASH_AT kills the process there (crash-hook.ts).
   */
  afterStep?: (step: EndpointStep, a: Attachment) => void | Promise<void>;
}

/** A started endpoint manager: its state loaded and its netlink socket open (dispose() releases). */
export function createEndpointManager(opts: EndpointManagerOptions): NodeEndpointManager {
  const manager = new NodeEndpointManager(opts);
  manager.start();
  return manager;
}

const isDelegated = (conf: NetConf): boolean => conf.ipam !== undefined && conf.ipam.type !== 'castnet';

export class NodeEndpointManager implements EndpointManager, EndpointSource, Disposable {
  private elsewhere = new Map<string, Set<string>>();
  // Set by start(), before anything else is called.
  private table!: EndpointTable;
  private host!: Rtnl;
  private readonly log: Logger;
  private networks = new Map<string, NetworkSpec>();
  /** Attachments with an ADD or DEL in progress in this process: reconcile, sweep and GC leave them alone. */
  private readonly inflight = new Set<string>();
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Host veths whose record was quarantined and not yet rebuilt from the kernel. */
  private readonly lost = new Set<string>();

  constructor(private readonly opts: EndpointManagerOptions) {
    this.log = opts.log ?? silentLogger;
  }

  /** Loads the endpoint table, opens the host's netlink socket and starts the periodic sweep. */
  start(): void {
    this.table = EndpointTable.load(this.opts.stateDir);
    for (const q of this.table.quarantined)
      this.log.warn('quarantined an unusable state file; rebuilding from the kernel', { ...q });
    for (const name of this.table.lost) this.lost.add(name);
    this.host = Rtnl.open(this.opts.hostNetns);
    this.setNetworks(this.opts.networks);
    const every = this.opts.sweepIntervalMs ?? 30_000;
    if (every > 0) {
      this.sweepTimer = setInterval(() => {
        this.sweep().catch((e: unknown) => this.log.warn('sweep failed', { error: errorMessage(e) }));
      }, every);
      this.sweepTimer.unref();
    }
  }

  /** Replaces the networks this node serves (e.g. when the lookup service reports a change). */
  setNetworks(networks: NetworkSpec[]): void {
    this.networks = new Map(networks.map((n) => [n.name, n]));
    // A lost record's network may be known only now (from the lookup service, after reconcile).
    if (this.lost.size > 0) this.recoverLost();
  }

  /**
   * Addresses other nodes' endpoints hold, per network (from the directory). castnet IPAM skips them:
   * a VM that live-migrated keeps its IP on another node after its source pod here is gone.
   */
  setAddressesInUseElsewhere(byNetwork: Map<string, Set<string>>): void {
    this.elsewhere = byNetwork;
  }

  endpoints(): Endpoint[] {
    return this.table.endpoints();
  }

  subscribe(fn: EndpointListener): () => void {
    return this.table.subscribe(fn);
  }

  /** Multicast/broadcast flooding towards one endpoint's bridge port (the data plane takes these over). */
  setPortFlooding(
    a: Attachment,
    flags: Pick<BridgePortFlags, 'mcastFlood' | 'bcastFlood' | 'unicastFlood'>,
  ): void {
    const ep = this.table.get(a);
    if (!ep || ep.state !== 'ready') throw new Error(`no endpoint for ${describe(a)}`);
    setPortFlooding(this.host, ep.hostIfname, flags);
  }

  /**
   * IGMP/MLD snooping on a network's bridge. With snooping off every group is "unregistered", so each
   * port's mcast_flood flag alone decides where multicast goes.
   */
  setBridgeSnooping(network: string, on: boolean): void {
    const n = this.networks.get(network);
    if (!n)
      throw new Error(`network ${JSON.stringify(network)} is not a network of node ${this.opts.nodeName}`);
    setSnooping(this.host, ensureNetworkBridge(this.host, bridgeName(n.id)).name, on);
  }

  /** Stops the sweep, closes the netlink socket and waits for pending fsyncs. */
  async dispose(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.host?.dispose();
    await this.table?.flush();
  }

  async add(req: AddRequest): Promise<CniResult> {
    const started = process.hrtime.bigint();
    const network = this.networkOf(req.conf);
    checkNamespace(network, req);
    const pod = openPodNetns(req.netns);
    const key = attachmentKey(req);
    this.inflight.add(key);
    let ep: Endpoint | undefined;
    try {
      if (pod.linkByName(req.ifname)) {
        throw new CniError(
          CniErrorCode.InterfaceExists,
          `CNI_IFNAME: interface ${JSON.stringify(req.ifname)} already exists in netns ${req.netns}`,
        );
      }
      checkAllowedAddresses(req.conf.allowedAddresses ?? [], network);
      const { mac, field } = chooseMac(req);
      const holder = this.table
        .all()
        .find((e) => e.network === network.name && e.mac === mac && attachmentKey(e) !== key);
      if (holder) {
        throw new CniError(
          CniErrorCode.InvalidMac,
          `${field}: ${mac} is already used by ${describe(holder)} on network ${JSON.stringify(network.name)}`,
        );
      }
      const stale = this.table.get(req);
      if (stale) {
        this.log.info('replacing a stale record of the same attachment', { endpoint: summary(stale) });
        await this.release(stale, req.cniPath);
      }

      // Write-ahead: the record (with castnet IPs reserved in the same tick) exists before any link.
      ep = this.intent(req, network, mac);
      this.table.put(ep);
      this.table.save(false);
      await this.step('reserved', req);
      if (ep.ipam.type === 'castnet' && req.claimAddresses) await req.claimAddresses(ep.ips);

      let ipConfigs: CniIpConfig[] = ep.ips.map((address) => ({ address }));
      let routes: CniRoute[] =
        network.name === this.opts.primaryNetwork ? primaryPodRoutes(network.subnets) : [];
      let dns: CniResult['dns'];
      if (ep.ipam.type === 'delegate') {
        const r = await execDelegate('ADD', ep.ipam.call);
        ipConfigs = (r?.ips ?? []).map((ip) =>
          ip.gateway ? { address: ip.address, gateway: ip.gateway } : { address: ip.address },
        );
        routes = r?.routes ?? [];
        dns = r?.dns;
        ep = this.update(ep, { ips: ipConfigs.map((ip) => ip.address) });
        await this.step('ipam', req);
      }

      const bridge = ensureNetworkBridge(this.host, bridgeName(network.id));
      const hostEnd = createVethPair(this.host, {
        bridgeIndex: bridge.index,
        hostIfname: ep.hostIfname,
        netns: req.netns,
        ifname: req.ifname,
        mac,
        mtu: ep.mtu,
      });
      ep = this.update(ep, { hostIfindex: hostEnd.index });
      await this.step('veth', req);
      configureHostPort(this.host, hostEnd.index, mac);
      // The cluster network: a pod reaching itself through its Service is DNATed back to itself, and
      // the bridge's netfilter hook forwards that frame out of the port it came in on (as kubenet).
      if (network.name === this.opts.primaryNetwork)
        this.host.setBridgePort(hostEnd.index, { hairpin: true });
      await this.step('port', req);
      configureContainer(pod, req.ifname, ipConfigs, routes);
      await this.step('container', req);

      ep = this.update(ep, { state: 'ready' });
      this.persist();
      this.log.info('endpoint added', { endpoint: summary(ep), ms: elapsedMs(started) });
      return buildResult(req, ep, hostEnd.mac, ipConfigs, routes, dns);
    } catch (e) {
      if (ep) await this.rollback(ep, req.cniPath, e);
      throw asCniError(e, `failed to add ${describe(req)} to network ${JSON.stringify(network.name)}`);
    } finally {
      this.inflight.delete(key);
      pod.dispose();
    }
  }

  async del(req: DelRequest): Promise<void> {
    const started = process.hrtime.bigint();
    const key = attachmentKey(req);
    this.inflight.add(key);
    try {
      const host = hostIfname(req.containerId, req.ifname);
      const ep = this.table.get(req) ?? this.table.all().find((e) => e.recovered && e.hostIfname === host);
      if (ep) {
        await this.release(ep, req.cniPath);
        this.log.info('endpoint deleted', { endpoint: summary(ep), ms: elapsedMs(started) });
        return;
      }
      // Unknown attachment: remove what a crashed ADD may have left, and let a delegated IPAM release.
      await this.host.deleteLinkByNameAsync(host);
      if (isDelegated(req.conf)) {
        await execDelegate('DEL', delegateCall(req.conf, req, req.netns ?? '', req.args, req.cniPath));
      }
    } finally {
      this.inflight.delete(key);
    }
  }

  async check(req: CheckRequest): Promise<void> {
    const fail = (why: string): CniError =>
      new CniError(CniErrorCode.WiringFailed, `CHECK ${describe(req)}: ${why}`);
    const network = this.networkOf(req.conf);
    const ep = this.table.get(req);
    if (!ep || ep.state !== 'ready') throw fail('castnet has no endpoint for this attachment');
    const hostEnd = this.host.linkByName(ep.hostIfname);
    if (!hostEnd) throw fail(`host veth ${ep.hostIfname} is missing`);
    const bridge = this.host.linkByName(bridgeName(network.id));
    if (!bridge || hostEnd.master !== bridge.index) {
      throw fail(`host veth ${ep.hostIfname} is not a port of bridge ${bridgeName(network.id)}`);
    }
    const pod = openPodNetns(req.netns);
    try {
      const podEnd = findPodEnd(pod, hostEnd);
      if (!podEnd) throw fail(`the peer of ${ep.hostIfname} is not in netns ${req.netns}`);
      // Enslaved inside the pod (KubeVirt bridge binding): the guest owns the MAC and addresses now.
      if (podEnd.master === undefined) {
        const reported = req.conf.prevResult?.interfaces?.find(
          (i) => i.name === req.ifname && i.sandbox,
        )?.mac;
        const wantMac = reported?.toLowerCase() ?? ep.mac;
        if (podEnd.mac !== wantMac)
          throw fail(`interface ${podEnd.name} has MAC ${podEnd.mac}, want ${wantMac}`);
        const have = new Set(pod.listAddresses(podEnd.index).map((a) => a.cidr));
        const missing = ep.ips.filter((ip) => !have.has(ip));
        if (missing.length > 0)
          throw fail(`interface ${podEnd.name} lacks address(es) ${missing.join(', ')}`);
      }
    } finally {
      pod.dispose();
    }
    if (ep.ipam.type === 'delegate') await execDelegate('CHECK', { ...ep.ipam.call, stdin: req.conf.raw });
  }

  async gc(req: GcRequest): Promise<void> {
    const valid = new Set(req.validAttachments.map(attachmentKey));
    const failures: string[] = [];
    for (const ep of this.table.all()) {
      const key = attachmentKey(ep);
      // A recovered endpoint's containerId is unknown: it goes with its veth (DEL or sweep), not by GC.
      if (ep.network !== req.conf.network || valid.has(key) || this.inflight.has(key) || ep.recovered)
        continue;
      try {
        await this.release(ep, req.cniPath);
        this.log.info('endpoint garbage-collected', { endpoint: summary(ep) });
      } catch (e) {
        failures.push(`${describe(ep)}: ${errorMessage(e)}`);
      }
    }
    // GC exists since CNI 1.1; a delegate speaking an older version would not know it.
    if (isDelegated(req.conf) && req.conf.cniVersion === '1.1.0') {
      try {
        await execDelegate(
          'GC',
          delegateCall(req.conf, { containerId: '', ifname: '' }, '', {}, req.cniPath),
        );
      } catch (e) {
        failures.push(errorMessage(e));
      }
    }
    if (failures.length > 0) {
      throw new CniError(
        CniErrorCode.WiringFailed,
        `GC of network ${JSON.stringify(req.conf.network)} left errors`,
        failures.join('; '),
      );
    }
  }

  /** STATUS; a delegated IPAM plugin is asked too when the config speaks 1.1.0 and CNI_PATH is known. */
  async status(conf: NetConf, cniPath = ''): Promise<void> {
    if (!this.networks.has(conf.network)) {
      throw new CniError(
        CniErrorCode.PluginNotAvailable,
        `network ${JSON.stringify(conf.network)} is not available on node ${this.opts.nodeName}`,
      );
    }
    if (isDelegated(conf) && conf.cniVersion === '1.1.0' && cniPath) {
      await execDelegate('STATUS', delegateCall(conf, { containerId: '', ifname: '' }, '', {}, cniPath));
    }
  }

  /**
   * Settles what a previous run left: half-built endpoints (state "adding") and endpoints whose veth
   * vanished (the pod's netns was deleted while the agent was down) are released; host veths with
   * castnet's name that no record owns are deleted. Addresses of castnet IPAM are free once their record is gone.
   */
  async reconcile(): Promise<void> {
    const present = new Set(this.host.listLinks().map((l) => l.name));
    for (const ep of this.table.all()) {
      if (ep.state === 'adding') await this.releaseQuietly(ep, 'half-built');
    }
    await this.releaseVanished(present);
    if (this.lost.size > 0) this.recoverLost();
    const owned = new Set([...this.table.all().map((e) => e.hostIfname), ...this.lost]);
    for (const link of this.host.listLinks()) {
      if (link.kind === 'veth' && isHostIfname(link.name) && !owned.has(link.name)) {
        await this.host.deleteLinkByNameAsync(link.name);
        this.log.info('reconcile: deleted unowned host veth', { link: link.name });
      }
    }
    this.persist();
  }

  /**
   * Rebuilds the records of quarantined state files from the kernel. One whose network is not known
   * yet stays pending, and its veth is kept; one that cannot be rebuilt is given up (reconcile then
   * deletes its veth as unowned).
   */
  private recoverLost(): void {
    for (const name of [...this.lost]) {
      let r: Rebuilt;
      try {
        r = rebuildFromKernel(this.host, name, this.networks.values(), this.opts.netnsDir);
      } catch (e) {
        r = { ok: false, retry: true, reason: errorMessage(e) };
      }
      if (r.ok) {
        const ep: Endpoint = { ...r.endpoint, endpointId: this.table.allocateId() };
        this.table.put(ep);
        this.lost.delete(name);
        this.log.warn('rebuilt an endpoint from the kernel: its state file was quarantined', {
          endpoint: summary(ep),
        });
      } else if (!r.retry) {
        this.lost.delete(name);
        this.log.warn('cannot rebuild an endpoint whose state file was quarantined', {
          hostIfname: name,
          reason: r.reason,
        });
      }
    }
    this.persist();
  }

  /**
   * Releases ready endpoints whose veth is gone: the kernel deletes a veth pair with its pod's netns,
   * and a secondary network (Multus) never gets GC, so a missed DEL would otherwise hold the address
   * until the agent restarts. One link dump; the agent runs it every `sweepIntervalMs`.
   */
  async sweep(): Promise<void> {
    await this.releaseVanished(new Set(this.host.listLinks().map((l) => l.name)));
  }

  private async releaseVanished(present: Set<string>): Promise<void> {
    for (const ep of this.table.all()) {
      if (ep.state === 'ready' && !present.has(ep.hostIfname))
        await this.releaseQuietly(ep, 'its veth is gone');
    }
  }

  /** Releases an endpoint no request is working on; failures are logged (the next pass retries). */
  private async releaseQuietly(ep: Endpoint, reason: string): Promise<void> {
    const key = attachmentKey(ep);
    if (this.inflight.has(key) || this.table.get(ep) !== ep) return;
    try {
      await this.release(ep, ep.ipam.type === 'delegate' ? ep.ipam.call.cniPath : '');
      this.log.info('released endpoint', { reason, endpoint: summary(ep) });
    } catch (e) {
      this.log.warn('cannot release endpoint', {
        reason,
        endpoint: summary(ep),
        error: errorMessage(e),
      });
    }
  }

  private networkOf(conf: NetConf): NetworkSpec {
    const n = this.networks.get(conf.network);
    if (!n) {
      const known = [...this.networks.keys()].join(', ') || 'none';
      throw new CniError(
        CniErrorCode.InvalidConfig,
        `network: ${JSON.stringify(conf.network)} is not a network of node ${this.opts.nodeName} (known: ${known})`,
      );
    }
    return n;
  }

  /** The ADD intent record; castnet IPAM allocates here, synchronously, so concurrent ADDs never collide. */
  private intent(req: AddRequest, network: NetworkSpec, mac: string): Endpoint {
    const ipam: IpamRecord = isDelegated(req.conf)
      ? { type: 'delegate', call: delegateCall(req.conf, req, req.netns, req.args, req.cniPath) }
      : { type: 'castnet' };
    const ips =
      ipam.type === 'castnet'
        ? allocateAddresses({
            network,
            pools: poolsOf(network, this.opts.poolIndex, this.opts.poolSizes ?? DEFAULT_POOL_SIZES),
            // Requested addresses (a migrating VM's own) are checked against this node only.
            used: req.conf.runtimeConfig?.ips?.length
              ? this.table.usedIps(network.name)
              : this.usedIps(network.name),
            cursors: this.table.cursors,
            requested: req.conf.runtimeConfig?.ips,
            poolIndex: this.opts.poolIndex,
          })
        : [];
    const ep: Endpoint = {
      containerId: req.containerId,
      ifname: req.ifname,
      endpointId: this.table.allocateId(),
      state: 'adding',
      network: network.name,
      netns: req.netns,
      hostIfname: hostIfname(req.containerId, req.ifname),
      mac,
      mtu: req.conf.mtu ?? network.mtu,
      ips,
      ipam,
      createdAt: new Date().toISOString(),
    };
    if (req.conf.allowedAddresses?.length) ep.allowedAddresses = [...req.conf.allowedAddresses];
    const pod = podOf(req);
    if (pod) ep.pod = pod;
    const vm = vmOf(req);
    if (vm) ep.vm = vm;
    return ep;
  }

  private usedIps(network: string): Set<string> {
    const here = this.table.usedIps(network);
    const there = this.elsewhere.get(network);
    return there?.size ? new Set([...here, ...there]) : here;
  }

  private persist(): void {
    this.table.save(this.opts.durable ?? false);
  }

  private update(ep: Endpoint, change: Partial<Endpoint>): Endpoint {
    const next = { ...ep, ...change };
    this.table.put(next);
    return next;
  }

  private async step(step: EndpointStep, a: Attachment): Promise<void> {
    await this.opts.afterStep?.(step, a);
  }

  /** Removes an endpoint's veth (the kernel takes the pod end with it), its addresses and its record. */
  private async release(ep: Endpoint, cniPath: string): Promise<void> {
    await this.host.deleteLinkByNameAsync(ep.hostIfname);
    await this.step('unlinked', ep);
    if (ep.ipam.type === 'delegate') {
      try {
        await execDelegate('DEL', { ...ep.ipam.call, cniPath: cniPath || ep.ipam.call.cniPath });
      } catch (e) {
        // A ready endpoint's DEL must reach its IPAM (the runtime retries). An ADD that never
        // completed (its delegate missing or failing) must not pin the attachment forever.
        if (ep.state === 'ready') throw e;
        this.log.warn('delegated IPAM DEL of an unfinished ADD failed; dropping the record', {
          endpoint: summary(ep),
          error: errorMessage(e),
        });
      }
      await this.step('ipam-released', ep);
    }
    this.table.remove(ep);
    this.persist();
  }

  /** Undoes a failed ADD; its own failures are logged, the ADD's error is what the runtime sees. */
  private async rollback(ep: Endpoint, cniPath: string, cause: unknown): Promise<void> {
    const current = this.table.get(ep) ?? ep;
    try {
      await this.release(current, cniPath);
    } catch (e) {
      this.log.error('rollback of a failed ADD is incomplete; reconcile will finish it', {
        endpoint: summary(current),
        cause: errorMessage(cause),
        error: errorMessage(e),
      });
    }
  }
}

function openPodNetns(netns: string): Rtnl {
  if (!netns || !existsSync(netns)) {
    throw new CniError(
      CniErrorCode.ContainerUnknown,
      `CNI_NETNS: netns ${JSON.stringify(netns)} does not exist`,
    );
  }
  try {
    return Rtnl.open(netns);
  } catch (e) {
    throw new CniError(
      CniErrorCode.ContainerUnknown,
      `CNI_NETNS: cannot enter netns ${JSON.stringify(netns)}: ${errorMessage(e)}`,
    );
  }
}

/** runtimeConfig.mac, then CNI_ARGS MAC=, else a random locally administered one; `field` names the source. */
function chooseMac(req: AddRequest): { mac: string; field: string } {
  const sources: [string, string | undefined][] = [
    ['runtimeConfig.mac', req.conf.runtimeConfig?.mac],
    ['CNI_ARGS MAC', req.args.MAC],
  ];
  for (const [field, value] of sources) {
    if (value === undefined) continue;
    try {
      return { mac: normalizeUnicastMac(value), field };
    } catch (e) {
      throw new CniError(CniErrorCode.InvalidMac, `${field}: ${errorMessage(e)}`);
    }
  }
  return { mac: randomLocalMac(), field: 'generated MAC' };
}

/** Refuses, before anything is reserved or wired, an ADD from a namespace the network does not allow. */
function checkNamespace(network: NetworkSpec, req: AddRequest): void {
  const why = attachRefusal(network, req.args.K8S_POD_NAMESPACE ?? req.pod?.namespace);
  if (why) throw new CniError(CniErrorCode.NamespaceNotAllowed, `CNI_ARGS K8S_POD_NAMESPACE: ${why}`);
}

function podOf(req: AddRequest): PodRef | undefined {
  if (req.pod) return { ...req.pod };
  const namespace = req.args.K8S_POD_NAMESPACE;
  const name = req.args.K8S_POD_NAME;
  if (!namespace || !name) return undefined;
  const pod: PodRef = { namespace, name };
  if (req.args.K8S_POD_UID) pod.uid = req.args.K8S_POD_UID;
  return pod;
}

function vmOf(req: AddRequest): VmRef | undefined {
  if (req.vm) return { ...req.vm };
  const name = req.args[VM_NAME_ARG];
  const namespace = req.args.K8S_POD_NAMESPACE ?? req.pod?.namespace;
  return name && namespace ? { namespace, name } : undefined;
}

function delegateCall(
  conf: NetConf,
  a: Attachment,
  netns: string,
  args: Record<string, string>,
  cniPath: string,
): DelegateCall {
  return {
    type: conf.ipam?.type ?? '',
    stdin: conf.raw,
    containerId: a.containerId,
    netns,
    ifname: a.ifname,
    args: formatCniArgs(args),
    cniPath,
  };
}

/** The ADD result: prevResult's entries first (chaining), then the host and pod ends of this endpoint. */
function buildResult(
  req: AddRequest,
  ep: Endpoint,
  hostMac: string | undefined,
  ips: CniIpConfig[],
  routes: CniRoute[],
  dns: CniResult['dns'],
): CniResult {
  const prev = req.conf.prevResult;
  const interfaces = [
    ...(prev?.interfaces ?? []),
    hostMac ? { name: ep.hostIfname, mac: hostMac } : { name: ep.hostIfname },
    { name: req.ifname, mac: ep.mac, mtu: ep.mtu, sandbox: req.netns },
  ];
  const podIndex = interfaces.length - 1;
  const result: CniResult = {
    cniVersion: req.conf.cniVersion,
    interfaces,
    ips: [...(prev?.ips ?? []), ...ips.map((ip) => ({ ...ip, interface: podIndex }))],
  };
  const allRoutes = [...(prev?.routes ?? []), ...routes];
  if (allRoutes.length > 0) result.routes = allRoutes;
  const d = dns ?? prev?.dns;
  if (d) result.dns = d;
  return result;
}

function asCniError(e: unknown, context: string): CniError {
  if (e instanceof CniError) return e;
  return new CniError(CniErrorCode.WiringFailed, `${context}: ${errorMessage(e)}`);
}

const elapsedMs = (since: bigint): number => Math.round(Number(process.hrtime.bigint() - since) / 1e4) / 100;

const describe = (a: Attachment): string => `container ${a.containerId} interface ${a.ifname}`;

const summary = (e: Endpoint): Record<string, unknown> => ({
  id: e.endpointId,
  network: e.network,
  containerId: e.containerId,
  ifname: e.ifname,
  hostIfname: e.hostIfname,
  ips: e.ips,
  mac: e.mac,
  state: e.state,
});
