// Micro-benchmark of the per-packet resolution path: ns per frame parse, per cached resolve, per
// uncached group expansion, against an in-run baseline (the same answer computed by scanning the
// directory without an index). Run: make bench-resolve. Writes bench/results/resolve.json.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildIPv4Frame, IPPROTO_UDP, parseFrame } from '../pkg/frame/index.js';
import type { Directory, EndpointRecord, MembershipRecord } from '../pkg/lookup/port.js';
import { buildIndex, checkSource, Resolver } from '../pkg/resolve/index.js';
import {
  decodeData,
  decodeDataV2,
  encapsulate,
  makeWireKey,
  ReplayWindow,
  SipKey,
  udpPayloadBudget,
} from '../pkg/wire/index.js';

const NODES = 3;
const DEFAULT_ENDPOINTS = 150;
const DEFAULT_GROUPS = 50;
const GROUPS = DEFAULT_GROUPS;
const FANOUT = 5;

function makeDirectory(endpointsPerNetwork = DEFAULT_ENDPOINTS, groupCount = DEFAULT_GROUPS): Directory {
  const nodes = Array.from({ length: NODES }, (_, i) => ({
    name: `n${i}`,
    address: `192.0.2.${i + 1}`,
    port: 4790,
    poolIndex: i,
  }));
  const networks = ['red', 'blue'].map((name, i) => ({
    name,
    id: i + 1,
    subnets: ['10.0.0.0/16'],
    mtu: 1400,
    multicast: true,
    broadcast: true,
  }));
  const endpoints: EndpointRecord[] = [];
  const memberships: MembershipRecord[] = [];
  for (const [n, network] of ['red', 'blue'].entries()) {
    for (let h = 0; h < endpointsPerNetwork; h++) {
      const hex = h.toString(16).padStart(4, '0');
      endpoints.push({
        network,
        node: `n${h % NODES}`,
        endpointId: n * 1000 + h,
        mac: `02:00:0${n}:00:${hex.slice(0, 2)}:${hex.slice(2)}`,
        ips: [`10.0.${h >> 8}.${h & 0xff}`],
      });
    }
    for (let g = 0; g < groupCount; g++) {
      for (let k = 0; k < FANOUT; k++) {
        const h = (g * 7 + k * 13 + 1) % endpointsPerNetwork;
        memberships.push({
          network,
          group: `239.1.0.${g}`,
          node: `n${h % NODES}`,
          endpointId: n * 1000 + h,
          filter: { mode: 'exclude', sources: [] },
        });
      }
    }
  }
  return { networks, nodes, endpoints, groups: [], memberships };
}

/** ns per call of `fn`, best of 5 rounds of `iterations` after a warm-up. */
function measure(iterations: number, fn: (i: number) => void): number {
  for (let i = 0; i < iterations; i++) fn(i);
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn(i);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / iterations);
  }
  return best;
}

function main(): void {
  const d = makeDirectory();
  const index = buildIndex(d, 'n0');
  const resolver = new Resolver(index);
  const senders = index.endpoints
    .filter((e) => e.node === 'n0' && e.network.spec.name === 'red')
    .slice(0, 10);
  const frames = Array.from({ length: GROUPS }, (_, g) => {
    const s = senders[g % senders.length];
    return {
      sender: s,
      bytes: buildIPv4Frame({
        dstMac: `01:00:5e:01:00:${g.toString(16).padStart(2, '0')}`,
        srcMac: s.mac,
        src: s.ips[0],
        dst: `239.1.0.${g}`,
        protocol: IPPROTO_UDP,
        ttl: 1,
        payload: new Uint8Array(108),
      }),
    };
  });
  const parsed = frames.map((f) => {
    const r = parseFrame(f.bytes);
    if (!r.ok) throw new Error(r.error.reason);
    return r.value;
  });
  let sink = 0;
  const N = 200_000;

  const parseNs = measure(N, (i) => {
    const r = parseFrame(frames[i % GROUPS].bytes);
    if (r.ok) sink += r.value.l3Offset;
  });
  const cachedNs = measure(N, (i) => {
    const k = i % GROUPS;
    const r = resolver.resolveFrame(frames[k].sender, parsed[k], frames[k].bytes);
    if (r.ok) sink += r.value.local.length;
  });
  const uncachedNs = measure(N / 4, (i) => {
    const k = i % GROUPS;
    const r = resolver.resolveAddresses(frames[k].sender, [parsed[k].ip!.dst], parsed[k].ip!.src);
    if (r.ok) sink += r.value.local.length;
  });
  // Baseline: the same answer by scanning the directory's memberships, de-duplicating with a Set and
  // grouping by node with a Map: what the per-packet path would cost without the index.
  const baselineNs = measure(N / 4, (i) => {
    const k = i % GROUPS;
    const s = frames[k].sender;
    const group = parsed[k].ip!.dst;
    const seen = new Set<string>();
    const byNode = new Map<string, number[]>();
    for (const m of d.memberships) {
      if (m.network !== s.network.spec.name || m.group !== group) continue;
      const key = `${m.node}/${m.endpointId}`;
      if (seen.has(key) || (m.node === s.node && m.endpointId === s.endpointId)) continue;
      seen.add(key);
      const list = byNode.get(m.node);
      if (list) list.push(m.endpointId);
      else byNode.set(m.node, [m.endpointId]);
    }
    sink += byNode.size;
  });
  const checkNs = measure(N, (i) => {
    const k = i % GROUPS;
    if (checkSource(frames[k].sender, parsed[k])) sink++;
  });
  const key = makeWireKey(Buffer.alloc(32, 1));
  const budget = udpPayloadBudget(1500, 4);
  const message = (k: number) => ({
    networkId: 1,
    sourceEndpointId: 1,
    destinations: [1, 2],
    vnetHeader: false,
    frame: frames[k].bytes,
  });
  const encapNs = measure(N, (i) => {
    const r = encapsulate(message(i % GROUPS), budget);
    if (r.ok) sink += r.value.length;
  });
  const encapTagNs = measure(N / 4, (i) => {
    const r = encapsulate(message(i % GROUPS), budget, key);
    if (r.ok) sink += r.value.length;
  });
  const tagged = frames.map((_, k) => {
    const r = encapsulate(message(k), budget, key);
    if (!r.ok) throw new Error(r.error.reason);
    return r.value[0];
  });
  const decodeTagNs = measure(N / 4, (i) => {
    const r = decodeData(tagged[i % GROUPS], [key]);
    if (r.ok) sink += r.value.destinations.length;
  });
  // Wire format version 2: SipHash-2-4-128 under a pair key, sequence number, replay window.
  let seq = 0;
  const pair = { key: new SipKey(Buffer.alloc(16, 1)), rx: new SipKey(Buffer.alloc(16, 1)) };
  const seal = { key: pair.key, senderEpoch: 1, receiverEpoch: 2, nextSeq: () => seq++ };
  const encapV2Ns = measure(N / 4, (i) => {
    const r = encapsulate(message(i % GROUPS), budget, seal);
    if (r.ok) sink += r.value.length;
  });
  const sealed = Array.from({ length: N / 4 }, (_, i) => {
    const r = encapsulate(message(i % GROUPS), budget, seal);
    if (!r.ok) throw new Error(r.error.reason);
    return r.value[0];
  });
  const window = new ReplayWindow();
  const decodeV2Ns = measure(N / 4, (i) => {
    const r = decodeDataV2(sealed[i]!, () => ({ ok: true, value: pair }));
    if (r.ok && window.admit(r.value.seal.seq) === 'ok') sink += r.value.message.destinations.length;
  });
  // Index build: paid once per directory change (e.g. every membership report in the cluster).
  const large = makeDirectory(5000, 2000);
  const buildSmallUs = measure(200, () => void buildIndex(d, 'n0')) / 1000;
  const buildLargeMs = measure(3, () => void buildIndex(large, 'n0')) / 1e6;
  const result = {
    directory: {
      nodes: NODES,
      endpoints: index.endpoints.length,
      groups: GROUPS * 2,
      fanout: FANOUT,
      memberships: d.memberships.length,
    },
    parse_frame_ns: Math.round(parseNs),
    resolve_cached_ns: Math.round(cachedNs),
    parse_plus_resolve_cached_ns: Math.round(parseNs + cachedNs),
    resolve_uncached_ns: Math.round(uncachedNs),
    check_source_ns: Math.round(checkNs),
    encapsulate_ns: Math.round(encapNs),
    encapsulate_hmac_ns: Math.round(encapTagNs),
    decode_hmac_ns: Math.round(decodeTagNs),
    encapsulate_v2_ns: Math.round(encapV2Ns),
    decode_v2_with_replay_window_ns: Math.round(decodeV2Ns),
    datagram_bytes: tagged[0]!.length,
    baseline_directory_scan_ns: Math.round(baselineNs),
    build_index_us: Math.round(buildSmallUs),
    build_index_large_ms: Number(buildLargeMs.toFixed(1)),
    large_directory: { endpoints: large.endpoints.length, memberships: large.memberships.length },
    ratio_baseline_over_cached: Number((baselineNs / cachedNs).toFixed(1)),
    ratio_baseline_over_uncached: Number((baselineNs / uncachedNs).toFixed(1)),
  };
  const dir = join(
    import.meta.dirname.includes('.cache') ? process.cwd() : join(import.meta.dirname, '..'),
    'bench',
    'results',
  );
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'resolve.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
  if (sink === -1) console.log(sink);
}

main();
