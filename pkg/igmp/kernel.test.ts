// Against the real kernel: Linux hosts' IGMPv3/MLDv2 reports parse (checksums included), our
// queries are accepted (the kernel answers them with current-state records), and the membership
// table built from those reports matches what the applications joined. Two namespaces joined by a
// veth: "host" runs a real joiner (python3 sockets), "querier" captures with tcpdump and injects.
import { once } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFrame } from '../frame/index.js';
import { readPcap } from '../lab/pcap.js';
import { MembershipTable } from '../membership/index.js';
import { run, runIn, spawnIn, stop } from '../sys/exec.js';
import { addNetns, delNetns, netnsTag } from '../../test/harness/netns.js';
import { waitFor } from '../base/async.js';
import { buildIgmpQuery, buildMldQuery, parseMembershipFrame, type IgmpReport } from './index.js';

const tag = netnsTag('ig');
const HOST = `${tag}h`;
const QUERIER = `${tag}q`;
const HOST_MAC = '02:00:00:99:00:01';
const QUERIER_MAC = '02:00:00:99:00:02';
const pcap = join(tmpdir(), `${tag}.pcap`);

const JOINER = `
import socket, struct, sys
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton('239.7.7.7') + socket.inet_aton('10.99.0.1'))
ssm = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ssm.setsockopt(socket.IPPROTO_IP, 39, socket.inet_aton('232.7.7.7') + socket.inet_aton('10.99.0.1') + socket.inet_aton('10.99.0.2'))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.inet_pton(socket.AF_INET6, 'ff05::7') + struct.pack('@I', socket.if_nametoindex('vh')))
print('joined', flush=True)
sys.stdin.read()
s4.close(); ssm.close(); s6.close()
print('left', flush=True)
`;

async function inject(frame: Uint8Array): Promise<void> {
  const py = `import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('vq', 0)); s.send(bytes.fromhex('${Buffer.from(frame).toString('hex')}'))`;
  await runIn(QUERIER, 'python3', ['-c', py]);
}

/** Host reports captured so far, as "TYPE group [sources]" lines (a partial last record is ignored). */
async function capturedRecords(): Promise<string[]> {
  const out: string[] = [];
  for (const p of readPcap(await readFile(pcap).catch(() => Buffer.alloc(0)))) {
    const f = parseFrame(p.data);
    if (!f.ok || f.value.srcMac !== HOST_MAC) continue;
    const m = parseMembershipFrame(f.value, p.data);
    if (m.ok && m.value.kind === 'report')
      out.push(...m.value.records.map((r) => `${r.type} ${r.group} [${r.sources.join(',')}]`));
  }
  return out;
}

/** Waits until a captured host record starts with `prefix` (the kernel's timers are randomised). */
async function captured(prefix: string): Promise<void> {
  await waitFor(
    async () => {
      const records = await capturedRecords();
      if (records.some((r) => r.startsWith(prefix))) return true;
      throw new Error(`captured so far: ${records.join('; ')}`);
    },
    { what: `a ${prefix} report`, intervalMs: 100 },
  );
}

beforeAll(async () => {
  await addNetns(HOST);
  await addNetns(QUERIER);
  await run('ip', [
    'link',
    'add',
    'vh',
    'netns',
    HOST,
    'address',
    HOST_MAC,
    'type',
    'veth',
    'peer',
    'vq',
    'netns',
    QUERIER,
    'address',
    QUERIER_MAC,
  ]);
  for (const [ns, dev, v4, v6] of [
    [HOST, 'vh', '10.99.0.1/24', 'fe80::1/64'],
    [QUERIER, 'vq', '10.99.0.2/24', 'fe80::2/64'],
  ]) {
    await run('ip', ['-n', ns, 'link', 'set', dev, 'addrgenmode', 'none']);
    await run('ip', ['-n', ns, 'addr', 'add', v4, 'dev', dev]);
    await run('ip', ['-n', ns, '-6', 'addr', 'add', v6, 'dev', dev, 'nodad']);
    await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  }
  // Unsolicited reports would be repeated for seconds; one is enough here.
  await runIn(HOST, 'sysctl', [
    '-qw',
    'net.ipv4.conf.vh.igmpv3_unsolicited_report_interval=100',
    'net.ipv6.conf.vh.mldv2_unsolicited_report_interval=100',
  ]);
});

afterAll(async () => {
  await delNetns(HOST);
  await delNetns(QUERIER);
  if (!process.env.KEEP_PCAP) await rm(pcap, { force: true });
});

it('parses the kernel’s reports, and the kernel answers castnet’s queries', async () => {
  const tcpdump = spawnIn(QUERIER, 'tcpdump', ['-i', 'vq', '-U', '-w', pcap, 'igmp or ip6']);
  let joiner: ReturnType<typeof spawnIn> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      tcpdump.stderr!.on('data', (d: Buffer) => d.toString().includes('listening on') && resolve());
      tcpdump.once('exit', (code) => reject(new Error(`tcpdump exited ${code}`)));
    });
    joiner = spawnIn(HOST, 'python3', ['-c', JOINER], { stdio: ['pipe', 'pipe', 'pipe'] });
    const [line] = (await once(joiner.stdout!, 'data')) as [Buffer];
    expect(line.toString()).toContain('joined');
    // The kernel has taken the joins once it announced them (unsolicited state-change reports).
    await captured('TO_EX 239.7.7.7');
    await captured('ALLOW 232.7.7.7');
    await captured('TO_EX ff05::7');
    const q = { querierMac: QUERIER_MAC, maxResponseMs: 500, robustness: 2, queryIntervalSec: 125 };
    await inject(buildIgmpQuery({ ...q, querierIp: '10.99.0.2' }));
    await inject(buildMldQuery({ ...q, querierIp: 'fe80::2' }));
    await captured('IS_IN 232.7.7.7');
    await captured('IS_EX ff05::7');
    joiner.stdin!.end();
    await once(joiner, 'exit');
    await captured('TO_IN 239.7.7.7');
  } finally {
    if (joiner) await stop(joiner);
    await stop(tcpdump);
  }

  const reports: IgmpReport[] = [];
  const table = new MembershipTable('n1', { fastLeave: true });
  table.addEndpoint({ network: 'red', endpointId: 1 }, 0);
  let now = 1;
  const snapshots: string[][] = [];
  for (const p of readPcap(await readFile(pcap))) {
    const f = parseFrame(p.data);
    expect(f.ok).toBe(true);
    if (!f.ok || f.value.srcMac !== HOST_MAC || (f.value.kind !== 'igmp' && f.value.kind !== 'mld')) continue;
    const m = parseMembershipFrame(f.value, p.data);
    if (!m.ok) throw new Error(`kernel ${f.value.kind} did not parse: ${m.error.field}: ${m.error.reason}`);
    if (m.value.kind !== 'report') continue;
    reports.push(m.value);
    table.handleFrame(1, f.value, p.data, now++);
    snapshots.push(
      table
        .records()
        .map((r) => `${r.group} ${r.filter.mode} [${r.filter.sources.join(',')}]`)
        .sort(),
    );
  }
  const records = reports.flatMap((r) =>
    r.records.map((x) => `${r.protocol} ${x.type} ${x.group} [${x.sources.join(',')}]`),
  );
  // Current-state records (IS_IN/IS_EX) are only sent in answer to a query: the kernel accepted ours.
  expect(records).toEqual(
    expect.arrayContaining([
      'igmp IS_EX 239.7.7.7 []',
      'igmp IS_IN 232.7.7.7 [10.99.0.2]',
      'mld IS_EX ff05::7 []',
      'igmp TO_IN 239.7.7.7 []',
    ]),
  );
  expect(snapshots).toContainEqual([
    '232.7.7.7 include [10.99.0.2]',
    '239.7.7.7 exclude []',
    'ff05::7 exclude []',
  ]);
  expect(table.records()).toEqual([]);
  // Solicited-node groups in the MLD reports are link-scope: ignored (the data plane floods them), never malformed.
  expect(Object.keys(table.counters()).filter((k) => k !== 'ignored-record')).toEqual([]);
}, 30_000);
