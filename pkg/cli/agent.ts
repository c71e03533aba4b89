// `castnet agent`: the node agent. It loads the node's networks, reconciles endpoint state left by a
// previous run, starts the data plane when given a lookup service, then serves castnet-cni.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parseNonMasqueradeCidrs } from '../agent/unicast/egress-nat.js';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { errorMessage } from '../base/errors.js';
import { DisposableStore, toDisposable, type Disposable } from '../base/lifecycle.js';
import type { WireKey } from '../wire/index.js';
import { runUntilSignal } from './lifecycle.js';
import { intOption } from './options.js';
import { DEFAULT_AGENT_SOCKET } from '../cni/types.js';
import { createEndpointManager, type NodeEndpointManager } from '../endpoint/node-manager.js';
import { createLogger, type Logger } from '../log/log.js';
import type { NetworkSpec } from '../lookup/port.js';
import { describeZodError, networkSpec } from '../lookup/schema.js';
import { CniServer } from '../agent/cniserver/server.js';
import { crashHookFromEnv } from '../agent/crash-hook.js';
import { connectLookup } from '../agent/lookup-client.js';
import { loadWireKey, NodeAgent } from '../agent/node-agent.js';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { LookupService } from '../lookup/port.js';
import { probeAgent } from '../agent/cniserver/client.js';
import { firstDirectory, HANDOVER_TIMEOUT_MS, takeOverFrom } from '../agent/handover.js';
import { DEFAULT_HEALTH_PORT } from '../agent/health/prober.js';

export interface AgentOptions {
  socket: string;
  stateDir: string;
  nodeName: string;
  /** YAML list of NetworkSpec, for standalone use without a lookup service. */
  networks?: string;
  poolIndex: number;
  /** unix:PATH of the embedded lookup service, or kubernetes; absent: endpoint wiring only. */
  lookup?: string;
  /** With --lookup kubernetes: kubeconfig file (default: KUBECONFIG, ~/.kube/config, in-cluster). */
  kubeconfig?: string;
  /** With --lookup kubernetes: label selector of the VirtualNetworks and MulticastGroups to use. */
  networkSelector?: string;
  underlayAddress?: string;
  underlayPort: number;
  underlayMtu: number;
  wireKeyFile?: string;
  /** 2: per-pair keys with peers that advertise it; 1: version 1 only (unauthenticated without a key). */
  wireVersion: number;
  /** Seconds between key pair rotations (0: only on SIGHUP). */
  keyRotationInterval: number;
  /** Seconds a replaced key is still accepted. */
  keyGrace: number;
  statsSocket?: string;
  /** UDP control port of the underlay health probes; 0 turns them off. */
  healthPort: number;
  queryInterval?: number;
  fastLeave?: boolean;
  /** commander's --no-vm-group-handover: false. */
  vmGroupHandover: boolean;
  /** Seconds between sweeps releasing endpoints whose pod netns vanished without a DEL. */
  sweepInterval?: number;
  /** Names this process in /v1/healthz (the DaemonSet passes its pod's UID); default: random. */
  instance?: string;
  /** Primary mode: the VirtualNetwork that is the cluster network (pods' gateway, the node's routes). */
  primaryNetwork?: string;
  /** Primary mode: masquerade the pods' traffic leaving the network (unicast/egress-nat.ts). */
  masquerade?: boolean;
  /** Destinations that keep the pods' addresses (repeatable `--non-masquerade-cidr`). */
  nonMasqueradeCidr?: string[];
  /** How long to wait for a running agent to hand the node over (ms). */
  handoverTimeoutMs?: number;
}

/** Reads a YAML (or JSON) list of networks, naming the file, entry and field on error. */
export async function loadNetworks(file: string): Promise<NetworkSpec[]> {
  const parsed = z.array(networkSpec).safeParse(parseYaml(await readFile(file, 'utf8')));
  if (!parsed.success) throw new Error(`--networks ${file}: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

export interface RunningAgent extends Disposable {
  /** The endpoint table's owner; the data plane subscribes to its endpoints. */
  manager: NodeEndpointManager;
  dataplane?: NodeAgent;
  dispose(): Promise<void>;
}

/**
 * Starts the agent: when another agent already serves the node (a rolling update's surge pod), first
 * everything that leaves the node alone (the lookup service's directory), then the handover, then
 * reconcile, the data plane and the CNI socket: the node is never forwarded by both. A failure
 * part-way releases what was started, in reverse order.
 */
export async function startAgent(
  opts: AgentOptions,
  log: Logger = createLogger('agent'),
): Promise<RunningAgent> {
  const networks = opts.networks ? await loadNetworks(opts.networks) : [];
  if (opts.masquerade && !opts.primaryNetwork)
    throw new Error('--masquerade: only in primary mode (--primary-network)');
  const masquerade = opts.masquerade
    ? { except: parseNonMasqueradeCidrs(opts.nonMasqueradeCidr ?? []) }
    : undefined;
  const wireKey = opts.wireKeyFile ? loadWireKey(opts.wireKeyFile) : undefined;
  // Everything that acts on the node; a handover to a successor releases it, the CNI socket aside.
  const node = new DisposableStore();
  try {
    const lookup = opts.lookup ? await openLookup(opts, log) : undefined;
    if (lookup) node.add(toDisposable(() => lookup.dispose()));
    const predecessor = await probeAgent(opts.socket, 1000).then(
      () => true,
      () => false,
    );
    if (predecessor) {
      if (lookup) await firstDirectory(lookup, opts.handoverTimeoutMs ?? HANDOVER_TIMEOUT_MS);
      await takeOverFrom(opts.socket, opts.handoverTimeoutMs ?? HANDOVER_TIMEOUT_MS, log);
    }
    const manager = node.add(
      createEndpointManager({
        stateDir: opts.stateDir,
        nodeName: opts.nodeName,
        poolIndex: opts.poolIndex,
        networks,
        ...(opts.primaryNetwork ? { primaryNetwork: opts.primaryNetwork } : {}),
        log: log.with({ component: 'endpoint' }),
        ...(opts.sweepInterval ? { sweepIntervalMs: opts.sweepInterval * 1000 } : {}),
        afterStep: crashHookFromEnv(),
      }),
    );
    // Reconcile before serving: endpoints half-built or deleted while the agent was down are settled
    // before the first ADD, so a crash between any two steps leaks nothing.
    await manager.reconcile();
    const dataplane = lookup
      ? node.add(await startDataplane(opts, wireKey, manager, lookup, networks, masquerade, log))
      : undefined;
    const server = new CniServer(
      dataplane ? dataplane.cniManager() : manager,
      opts.socket,
      log.with({ component: 'cniserver' }),
      { instance: opts.instance ?? randomUUID(), ...(dataplane ? { handOver: () => node.dispose() } : {}) },
    );
    await server.start();
    log.info('agent started', {
      node: opts.nodeName,
      networks: networks.map((n) => n.name),
      stateDir: opts.stateDir,
      ...(predecessor ? { tookOver: true } : {}),
    });
    return {
      manager,
      dataplane,
      dispose: async () => {
        // After a handover everything on the node is the successor's.
        if (server.handedOverToSuccessor) return;
        await server.dispose();
        await node.dispose();
      },
    };
  } catch (err) {
    await node
      .dispose()
      .catch((e: unknown) => log.warn('releasing a half-started agent', { error: errorMessage(e) }));
    throw err;
  }
}

function openLookup(opts: AgentOptions, log: Logger): Promise<LookupService> {
  if (!opts.underlayAddress) throw new Error('--underlay-address: required with --lookup');
  if (opts.healthPort === opts.underlayPort)
    throw new Error(`--health-port ${opts.healthPort}: must differ from --underlay-port`);
  return connectLookup(opts.lookup!, {
    kubeconfig: opts.kubeconfig,
    selector: opts.networkSelector,
    node: opts.nodeName,
    onError: (err, what) => log.warn('lookup service', { what, error: errorMessage(err) }),
  });
}

async function startDataplane(
  opts: AgentOptions,
  wireKey: WireKey | undefined,
  manager: NodeEndpointManager,
  lookup: LookupService,
  fileNetworks: NetworkSpec[],
  masquerade: { except: string[] } | undefined,
  log: Logger,
): Promise<NodeAgent> {
  // Networks from a --networks file stay, alongside the lookup service's VirtualNetworks.
  const merged = (d: NetworkSpec[]) => [
    ...fileNetworks.filter((f) => !d.some((n) => n.name === f.name)),
    ...d,
  ];
  const agent = new NodeAgent(
    {
      node: {
        name: opts.nodeName,
        address: opts.underlayAddress!, // checked by openLookup
        port: opts.underlayPort,
        poolIndex: opts.poolIndex,
      },
      underlayMtu: opts.underlayMtu,
      wireKey,
      wireVersion: opts.wireVersion === 1 ? 1 : 2,
      keyRotationMs: opts.keyRotationInterval * 1000,
      keyGraceMs: opts.keyGrace * 1000,
      statsSocket: opts.statsSocket ?? join(dirname(opts.socket), 'stats.sock'),
      ...(opts.healthPort ? { healthPort: opts.healthPort } : {}),
      membership: {
        ...(opts.queryInterval ? { queryIntervalMs: opts.queryInterval * 1000 } : {}),
        ...(opts.fastLeave ? { fastLeave: true } : {}),
      },
      ...(opts.vmGroupHandover === false ? { vmGroupHandover: false } : {}),
      mergeNetworks: merged,
      ...(opts.primaryNetwork ? { primaryNetwork: opts.primaryNetwork } : {}),
      ...(masquerade ? { masquerade } : {}),
    },
    manager,
    lookup,
    log,
  );
  await agent.start();
  return agent;
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the node agent: endpoint wiring for castnet-cni on a unix socket')
    .option('--socket <path>', 'unix socket castnet-cni forwards to', DEFAULT_AGENT_SOCKET)
    .option('--state-dir <dir>', 'where the endpoint table and IPAM state persist', '/var/lib/castnet')
    .option('--node-name <name>', "this node's name", hostname())
    .option('--networks <file>', 'YAML list of networks (standalone use, without a lookup service)')
    .option(
      '--pool-index <n>',
      "index of this node's IPAM block in each network's subnets",
      intOption('--pool-index', 0, 65535),
      0,
    )
    .option(
      '--lookup <spec>',
      'lookup service: unix:PATH (embedded) or kubernetes (CRDs); enables the data plane',
    )
    .option(
      '--kubeconfig <file>',
      'with --lookup kubernetes (default: KUBECONFIG, ~/.kube/config, in-cluster)',
    )
    .option(
      '--network-selector <labels>',
      'with --lookup kubernetes: only VirtualNetworks and MulticastGroups with these labels',
    )
    .option('--underlay-address <ip>', "this node's underlay address (the data plane binds it)")
    .option(
      '--underlay-port <port>',
      'UDP port of the data plane',
      intOption('--underlay-port', 1, 65535),
      4790,
    )
    .option('--underlay-mtu <bytes>', 'MTU of the underlay', intOption('--underlay-mtu', 1280, 9216), 1500)
    .option(
      '--wire-key-file <file>',
      'cluster key authenticating underlay datagrams (>= 16 bytes, hex or raw)',
    )
    .option(
      '--wire-version <n>',
      '2: authenticate datagrams with per-node-pair keys where the peer speaks it; 1: version 1 only',
      intOption('--wire-version', 1, 2),
      2,
    )
    .option(
      '--key-rotation-interval <s>',
      'seconds between rotations of the node key pair (0: only on SIGHUP)',
      intOption('--key-rotation-interval', 0, 2_000_000),
      86400,
    )
    .option(
      '--key-grace <s>',
      "seconds a replaced key (this node's or a peer's) is still accepted",
      intOption('--key-grace', 1, 86400),
      120,
    )
    .option('--stats-socket <path>', 'unix socket serving /v1/stats (default: beside --socket)')
    .option(
      '--health-port <port>',
      'UDP control port of the underlay health probes, the same on every node (0: off)',
      intOption('--health-port', 0, 65535),
      DEFAULT_HEALTH_PORT,
    )
    .option('--query-interval <s>', 'IGMP/MLD query interval', intOption('--query-interval', 2, 3600))
    .option('--fast-leave', 'drop a membership as soon as its endpoint leaves (one host per link)')
    .option(
      '--no-vm-group-handover',
      "a migrated VM's groups wait at its target for the guest's own IGMP/MLD reports (comparison only)",
    )
    .option(
      '--sweep-interval <s>',
      'how often endpoints whose pod netns vanished without a DEL are released (default 30)',
      intOption('--sweep-interval', 1, 3600),
    )
    .option(
      '--primary-network <name>',
      "primary mode: the VirtualNetwork that is the cluster network (the pods' default gateway, the node's routes to pods)",
    )
    .option(
      '--masquerade',
      "primary mode: pods' traffic to destinations outside the network leaves with the node's address",
    )
    .option(
      '--non-masquerade-cidr <cidr>',
      "with --masquerade: an IPv4 destination that keeps the pods' addresses (repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--instance <id>', 'names this process in /v1/healthz (agent-ready --instance checks it)')
    .action(async (opts: AgentOptions) => {
      const log = createLogger('agent');
      const agent = await startAgent(opts, log);
      // SIGHUP: a new key pair now (wire format version 2), as the periodic rotation does.
      process.on('SIGHUP', () => {
        agent.dataplane
          ?.rotateKey()
          .catch((err: unknown) => log.warn('key rotation', { error: errorMessage(err) }));
      });
      await runUntilSignal(() => agent.dispose(), log);
    });
}
