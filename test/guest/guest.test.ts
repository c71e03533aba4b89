// Real qemu guests (pkg/lab/guest.ts) on taps of a bridge in a namespace this file creates: each
// guest's own kernel joins (IGMPv3, MLDv2) and leaves, its castnet-guest counts what arrives, and a
// member reads each message exactly once while a guest that never joined reads nothing. Also the
// console protocol (exit statuses, QMP errors) and the stream receiver's counts.
import { isIPv6 } from 'node:net';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../pkg/base/async.js';
import { Guest } from '../../pkg/lab/guest.js';
import { run, runIn, spawnIn, stop } from '../../pkg/sys/exec.js';
import { addNetns, delNetns, netnsTag } from '../harness/netns.js';

const ns = netnsTag('gu');
const workRoot = join(tmpdir(), `${ns}-guests`);
const guests: Guest[] = [];
/** Console lines of each guest, from its start. */
const lines = new Map<Guest, string[]>();

function guest(name: string, tap: string, mac: string, addresses: string[]): Guest {
  const g = new Guest({
    name,
    netns: ns,
    tap,
    mac,
    addresses,
    memoryMiB: 192,
    workDir: join(workRoot, name),
  });
  const seen: string[] = [];
  lines.set(g, seen);
  g.onLine((l) => seen.push(l));
  guests.push(g);
  return g;
}

/** Datagrams carrying `token` that guest `g`'s printing castnet-guest read. */
function reads(g: Guest, token: string): number {
  return lines.get(g)!.filter((l) => l.startsWith('castnet-guest rx ') && l.endsWith(`data=${token}`)).length;
}

/** One datagram from the host side of the bridge. */
async function hostSend(to: string, port: number, payload: string): Promise<void> {
  const addr = isIPv6(to)
    ? `UDP6-DATAGRAM:[${to}]:${port},so-bindtodevice=br0`
    : `UDP4-DATAGRAM:${to}:${port},so-bindtodevice=br0,broadcast,ip-multicast-if=10.77.0.1`;
  await runIn(ns, 'socat', ['-u', 'STDIN', addr], { input: payload });
}

let g1: Guest;
let g2: Guest;

beforeAll(async () => {
  await addNetns(ns);
  const ip = (...a: string[]) => run('ip', ['-n', ns, ...a]);
  await ip('link', 'add', 'br0', 'type', 'bridge');
  await ip('addr', 'add', '10.77.0.1/24', 'dev', 'br0');
  await ip('addr', 'add', 'fd77::1/64', 'dev', 'br0', 'nodad');
  for (const tap of ['tap1', 'tap2']) {
    await ip('tuntap', 'add', 'dev', tap, 'mode', 'tap');
    await ip('link', 'set', tap, 'master', 'br0', 'up');
  }
  await ip('link', 'set', 'br0', 'up');
  await ip('route', 'add', '224.0.0.0/4', 'dev', 'br0');
  g1 = guest('g1', 'tap1', '02:00:00:77:00:02', ['10.77.0.2/24', 'fd77::2/64']);
  g2 = guest('g2', 'tap2', '02:00:00:77:00:03', ['10.77.0.3/24', 'fd77::3/64']);
  await Promise.all([g1.start(), g2.start()]);
}, 180000);

afterAll(async () => {
  for (const g of guests) await g.dispose().catch(() => undefined);
  await delNetns(ns);
  await rm(workRoot, { recursive: true, force: true });
});

it('boots with the given MAC and addresses', async () => {
  const link = await g1.run('ip addr show dev eth0');
  expect(link).toContain('link/ether 02:00:00:77:00:02');
  expect(link).toContain('inet 10.77.0.2/24');
  expect(link).toContain('inet6 fd77::2/64');
  await runIn(ns, 'ping', ['-c', '1', '-W', '5', '10.77.0.3']);
});

it('runs commands framed over the console, with their exit status and QMP errors', async () => {
  expect(await g2.run(`echo "it's"; echo two`)).toBe("it's\ntwo");
  await expect(g2.run('echo out; exit 3')).rejects.toThrow(/`echo out; exit 3` exited with status 3: out/);
  await expect(g2.run('echo a\necho b')).rejects.toThrow(/one line/);
  expect(await g2.qmp('query-status')).toMatchObject({ status: 'running' });
  await expect(g2.qmp('no-such-command')).rejects.toThrow(/QMP no-such-command: CommandNotFound/);
});

it('delivers to the member guest exactly once and nothing to the guest that never joined', async () => {
  // The lab's layout: a printing receiver per guest, and a separate joining one (-x).
  for (const g of [g1, g2]) await g.background('castnet-guest recv -p 5000');
  const joiner = await g1.background('castnet-guest recv -x -p 5000 -g 239.5.5.5 -g ff15::5');
  await waitFor(async () => (await g1.run('cat /proc/net/igmp')).includes('050505EF'), {
    what: "g1's kernel to join 239.5.5.5",
  });
  // IGMPv3 and MLDv2 from the guest's kernel: its IGMP version and its MLD listener.
  expect(await g1.run('cat /proc/net/igmp')).toMatch(/eth0\s+:\s+\d+\s+V3/);
  expect(await g1.run('cat /proc/net/igmp6')).toMatch(/eth0\s+ff150000000000000000000000000005/);
  expect(await g1.run('cat /proc/sys/net/ipv6/conf/eth0/force_mld_version')).toBe('0');

  const tokens = ['cg-v4-0', 'cg-v4-1', 'cg-v6-0'];
  await hostSend('239.5.5.5', 5000, 'cg-v4-0\n');
  await hostSend('239.5.5.5', 5000, 'cg-v4-1\n');
  await hostSend('ff15::5', 5000, 'cg-v6-0\n');
  await waitFor(() => tokens.every((t) => reads(g1, t) >= 1), { what: 'g1 to read every message' });
  // A broadcast after them reaches both: once it is in, g2's silence on the group is real.
  await hostSend('10.77.0.255', 5000, 'cg-bcast\n');
  await waitFor(() => reads(g2, 'cg-bcast') === 1 && reads(g1, 'cg-bcast') === 1, {
    what: 'both guests to read the broadcast',
  });
  expect(tokens.map((t) => reads(g1, t))).toEqual([1, 1, 1]);
  expect(tokens.map((t) => reads(g2, t))).toEqual([0, 0, 0]);

  // Leaving: the joining process ends, the guest's kernel leaves, and later messages do not arrive.
  await g1.run(`kill ${joiner}`);
  await waitFor(async () => !(await g1.run('cat /proc/net/igmp')).includes('050505EF'), {
    what: "g1's kernel to leave 239.5.5.5",
  });
  await hostSend('239.5.5.5', 5000, 'cg-after-leave\n');
  await hostSend('10.77.0.255', 5000, 'cg-bcast-2\n');
  await waitFor(() => reads(g1, 'cg-bcast-2') === 1, { what: 'g1 to read the second broadcast' });
  expect(reads(g1, 'cg-after-leave')).toBe(0);
}, 60000);

it('sends from the guest to a group the host joined, with the TTL asked for', async () => {
  const tcpdump = spawnIn(ns, 'tcpdump', ['-i', 'br0', '-c', '1', '-n', '-v', 'udp port 5001']);
  let stdout = '';
  tcpdump.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  const exited = new Promise((r) => tcpdump.once('exit', r));
  try {
    await new Promise<void>((resolve) =>
      tcpdump.stderr!.on('data', (c: Buffer) => c.toString().includes('listening on') && resolve()),
    );
    await g2.run('castnet-guest send -d 239.6.6.6 -p 5001 -t 7 -m cg-from-guest');
    await exited;
  } finally {
    await stop(tcpdump);
  }
  expect(stdout).toMatch(/ttl 7,.*\n.*10\.77\.0\.3\.\d+ > 239\.6\.6\.6\.5001: UDP, length 14/);
});

it('counts a sequenced stream: duplicates, reordering and gaps', async () => {
  const streamer = await g2.background('castnet-guest stream -p 6000');
  // 0 1 2 4 3 3 6: one duplicate (3), one reordered (3 after 4), one lost (5).
  await runIn(ns, 'python3', [
    '-c',
    `import socket,struct
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
for n in [0,1,2,4,3,3,6]: s.sendto(struct.pack('>Q',n)+b'x',('10.77.0.3',6000))`,
  ]);
  const stats = async () => {
    const line = g2.waitForLine((l) => l.startsWith('castnet-guest stream '), 10000);
    await g2.run(`kill -USR1 ${streamer}`);
    return JSON.parse((await line).slice('castnet-guest stream '.length)) as Record<string, number>;
  };
  const s = await waitFor(
    async () => {
      const now = await stats();
      return now.received === 7 && now;
    },
    { what: 'the stream receiver to count 7 datagrams' },
  );
  expect(s).toMatchObject({
    received: 7,
    distinct: 6,
    duplicates: 1,
    reordered: 1,
    lost: 1,
    first: 0,
    last: 6,
  });
}, 60000);
