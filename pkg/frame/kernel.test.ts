// Against the real kernel: a Linux host's ARP request parses, and the reply castnet builds for it
// is accepted (the host's neighbour table learns the answered MAC). Two namespaces on a veth: the
// "host" pings an address nobody owns; the "agent" side answers it from "its directory".
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { run, runIn, spawnIn, stop } from '../sys/exec';
import { addNetns, delNetns, netnsTag } from '../../test/harness/netns';
import { buildArpReply, parseFrame } from './index';

const tag = netnsTag('fr');
const HOST = `${tag}h`;
const AGENT = `${tag}a`;
const ANSWERED_MAC = '02:00:00:98:00:05';

// Prints the first ARP request seen on "va" as hex, then sends each hex line read from stdin.
const RESPONDER = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(('va', 0))
while True:
    f = s.recv(2048)
    if f[12:14] == b'\\x08\\x06' and f[20:22] == b'\\x00\\x01':
        print(f.hex(), flush=True)
        break
for line in sys.stdin:
    s.send(bytes.fromhex(line.strip()))
    print('sent', flush=True)
`;

beforeAll(async () => {
  await addNetns(HOST);
  await addNetns(AGENT);
  await run('ip', ['link', 'add', 'vh', 'netns', HOST, 'type', 'veth', 'peer', 'va', 'netns', AGENT]);
  await run('ip', ['-n', HOST, 'addr', 'add', '10.98.0.1/24', 'dev', 'vh']);
  await run('ip', ['-n', HOST, 'link', 'set', 'vh', 'up']);
  await run('ip', ['-n', AGENT, 'link', 'set', 'va', 'up']);
});

afterAll(async () => {
  await delNetns(HOST);
  await delNetns(AGENT);
});

it('answers a real ARP request with a reply the kernel accepts', async () => {
  const responder = spawnIn(AGENT, 'python3', ['-c', RESPONDER], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    await new Promise((r) => setTimeout(r, 300)); // let the responder bind before the host asks
    const ping = runIn(HOST, 'ping', ['-c', '3', '-i', '0.5', '-W', '1', '10.98.0.5']).catch(() => undefined);
    const lines = createInterface({ input: responder.stdout! });
    const [hex] = (await once(lines, 'line')) as [string];
    const request = Buffer.from(hex, 'hex');
    const f = parseFrame(request);
    if (!f.ok) throw new Error(f.error.reason);
    expect(f.value.arp).toMatchObject({ op: 1, senderIp: '10.98.0.1', targetIp: '10.98.0.5' });
    expect(f.value.dstMac).toBe('ff:ff:ff:ff:ff:ff');
    responder.stdin!.write(Buffer.from(buildArpReply(f.value.arp!, ANSWERED_MAC)).toString('hex') + '\n');
    await once(lines, 'line');
    await ping;
    const { stdout } = await run('ip', ['-n', HOST, 'neigh', 'show', '10.98.0.5', 'dev', 'vh']);
    expect(stdout).toContain(`lladdr ${ANSWERED_MAC}`);
  } finally {
    await stop(responder);
  }
}, 20_000);
