// The data-plane half of `castnet agent`: joins the lookup service, publishes this node's endpoints,
// runs the IGMP/MLD querier and the multicast/broadcast data plane, and serves stats and metrics.
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Endpoint } from '../endpoint/table';
import { toEndpointRecord } from '../endpoint/table';
import type { NodeEndpointManager } from '../endpoint/node-manager';
import type { Logger } from '../log/log';
import type { Directory, LookupService, NetworkSpec, NodeRecord } from '../lookup/port';
import { makeWireKey, type WireKey } from '../wire';
import { Dataplane } from './dataplane/dataplane';
import { withVnetHeader } from './dataplane/dataplane';
import { Querier } from './membership/querier';
import { UnicastOverlay } from './unicast/overlay';
import type { MembershipConfig } from '../membership';

export interface NodeAgentOptions {
  node: NodeRecord;
  underlayMtu: number;
  /** File holding the cluster's datagram key (at least 16 bytes); absent: datagrams are not authenticated. */
  wireKeyFile?: string;
  statsSocket?: string;
  membership?: Partial<MembershipConfig>;
  /** Combines the lookup service's networks with any the agent was given locally. */
  mergeNetworks?: (fromLookup: NetworkSpec[]) => NetworkSpec[];
}

export function loadWireKey(file: string): WireKey {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new Error(`--wire-key-file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const text = raw.toString('utf8').trim();
  const secret = /^[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0 ? Buffer.from(text, 'hex') : raw;
  try {
    return makeWireKey(secret);
  } catch (err) {
    throw new Error(`--wire-key-file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

const RESTORE_TIMEOUT_MS = 5000;

export class NodeAgent {
  private readonly dataplane: Dataplane;
  private readonly querier: Querier;
  private readonly overlay: UnicastOverlay;
  private directory: Directory | undefined;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly snoopingOff = new Set<string>();
  private stats: Server | undefined;
  private publishPending = false;

  constructor(
    private readonly o: NodeAgentOptions,
    private readonly manager: NodeEndpointManager,
    private readonly lookup: LookupService,
    private readonly log: Logger,
  ) {
    const key = o.wireKeyFile ? loadWireKey(o.wireKeyFile) : undefined;
    this.dataplane = new Dataplane({
      node: o.node,
      underlayMtu: o.underlayMtu,
      sendKey: key,
      acceptKeys: key ? [key] : [],
      endpoints: manager,
      lookup,
      takeOverPort: (e) => this.takeOverPort(e),
      onMembershipFrame: (id, frame, bytes) => this.querier.handleFrame(id, frame, bytes),
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
    this.overlay = new UnicastOverlay({
      node: o.node.name,
      underlayAddress: o.node.address,
      underlayMtu: o.underlayMtu,
      log: log.with({ component: 'unicast' }),
    });
    let restored = false;
    const restore = (d?: Directory) => {
      if (restored) return;
      restored = true;
      this.querier.restore(d ? d.memberships.filter((m) => m.node === o.node.name) : []);
    };
    const timer = setTimeout(() => {
      if (restored) return;
      log.warn('no directory from the lookup service yet; starting with no restored memberships');
      restore();
    }, RESTORE_TIMEOUT_MS);
    timer.unref();
    this.unsubscribe.push(
      () => clearTimeout(timer),
      lookup.subscribe((d) => {
        restore(d);
        const networks = o.mergeNetworks ? o.mergeNetworks(d.networks) : d.networks;
        manager.setNetworks(networks);
        this.quietSnooping(manager.endpoints());
        this.directory = d;
        this.syncOverlay();
      }),
      manager.subscribe(() => {
        this.publishEndpoints();
        this.syncOverlay();
      }),
    );
  }

  async start(): Promise<void> {
    await this.lookup.registerNode(this.o.node);
    this.publishEndpoints();
    if (this.o.statsSocket) await this.serveStats(this.o.statsSocket);
  }

  async stop(): Promise<void> {
    for (const u of this.unsubscribe) u();
    this.querier.close();
    this.dataplane.close();
    if (this.stats) await new Promise((r) => this.stats!.close(r));
    await this.lookup.close();
  }

  snapshot(): Record<string, unknown> {
    return {
      node: this.o.node.name,
      ...this.dataplane.stats(),
      membership: { records: this.querier.records().length, drops: this.querier.counters() },
      endpoints: this.manager.endpoints().length,
    };
  }

  private syncOverlay(): void {
    if (this.directory)
      this.overlay.sync(this.directory, new Set(this.manager.endpoints().map((e) => e.network)));
  }

  private publishEndpoints(): void {
    if (this.publishPending) return;
    this.publishPending = true;
    queueMicrotask(() => {
      this.publishPending = false;
      const records = this.manager.endpoints().map((e) => toEndpointRecord(e, this.o.node.name));
      this.lookup
        .publishEndpoints(this.o.node.name, records)
        .catch((err: Error) =>
          this.log.warn('endpoint publication not accepted yet', { error: err.message }),
        );
    });
  }

  /**
   * The bridge keeps known unicast; multicast and broadcast become the data plane's alone, or local
   * members would get a second copy. Snooping off makes every multicast "unregistered", so the
   * per-port mcast_flood flag governs it all.
   */
  private takeOverPort(e: Endpoint): void {
    this.manager.setPortFlooding(e, { mcastFlood: false, bcastFlood: false });
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
          error: (err as Error).message,
        });
      }
    }
  }

  private async serveStats(path: string): Promise<void> {
    rmSync(path, { force: true });
    this.stats = createServer((req, res) => {
      if (req.url === '/v1/stats') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(this.snapshot()));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => this.stats!.listen(path, resolve));
  }
}
