// Against the real kernel: a Linux host's ARP request parses, and the reply castnet builds for it
// is accepted (the host's neighbour table learns the answered MAC). Two namespaces on a veth: the
// "host" pings an address nobody owns; the "agent" side answers it from "its directory".
import { createInterface } from 'node:readline';
import { run, runIn, spawnIn, stop } from '../sys/exec.js';
import { addNetns, delNetns, netnsTag } from '../../test/harness/netns.js';
import { buildArpReply, parseFrame, type ParsedFrame } from './index.js';

const tag = netnsTag('fr');
const HOST = `${tag}h`;
const AGENT = `${tag}a`;
const ANSWERED_MAC = '02:00:00:98:00:05';

// Prints "ready" once bound, then the first ARP request seen on "va" as hex, then sends each hex
// line read from stdin.
const RESPONDER = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(('va', 0))
print('ready', flush=True)
def wanted(f):
    return f[12:14] == b'\\x08\\x06' and f[20:22] == b'\\x00\\x01'
while True:
    f = s.recv(2048)
    if wanted(f):
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

/** Lets the host ask (`ask`), captures the question, injects `answer(question)`, returns the host's neighbour entry. */
async function answerRealQuestion(
  ask: string[],
  neighbour: string,
  answer: (q: ParsedFrame) => Uint8Array,
): Promise<string> {
  const responder = spawnIn(AGENT, 'python3', ['-c', RESPONDER], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    // An iterator buffers lines, so none is lost between two reads.
    const lines = createInterface({ input: responder.stdout! })[Symbol.asyncIterator]();
    const line = async (): Promise<string> => {
      const next = await lines.next();
      if (next.done) throw new Error('the responder exited early');
      return next.value;
    };
    expect(await line()).toBe('ready'); // bound before the host asks
    const asking = runIn(HOST, ask[0], ask.slice(1)).catch(() => undefined);
    const hex = await line();
    const f = parseFrame(Buffer.from(hex, 'hex'));
    if (!f.ok) throw new Error(f.error.reason);
    responder.stdin!.write(Buffer.from(answer(f.value)).toString('hex') + '\n');
    expect(await line()).toBe('sent');
    await asking;
    return (await run('ip', ['-n', HOST, 'neigh', 'show', neighbour, 'dev', 'vh'])).stdout;
  } finally {
    await stop(responder);
  }
}

it('answers a real ARP request with a reply the kernel accepts', async () => {
  const entry = await answerRealQuestion(
    ['ping', '-c', '3', '-i', '0.5', '-W', '1', '10.98.0.5'],
    '10.98.0.5',
    (q) => {
      expect(q.arp).toMatchObject({ op: 1, senderIp: '10.98.0.1', targetIp: '10.98.0.5' });
      expect(q.dstMac).toBe('ff:ff:ff:ff:ff:ff');
      return buildArpReply(q.arp!, ANSWERED_MAC);
    },
  );
  expect(entry).toContain(`lladdr ${ANSWERED_MAC}`);
}, 20_000);
