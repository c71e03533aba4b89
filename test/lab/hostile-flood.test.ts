// A pod flooding broadcast and ARP, on real agents: the agent polices it per endpoint (the drops are
// counted against that endpoint and kind, and what its network's other node receives stays within
// the rate limit), while another tenant's multicast stream from the same node is delivered to every
// member exactly once, with nothing lost. Fails without the per-endpoint rate limits: nothing is
// policed and the whole flood is copied to the other node.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { buildArpReply, buildIPv4Frame } from '../../pkg/frame/build.js';
import { LIMITS } from '../../pkg/lookup/limits.js';
import { Lab } from '../../pkg/lab/runner.js';
import { parseLabFile } from '../../pkg/lab/scenario.js';

const root = join(import.meta.dirname, '../..');
const FLOOD_TOKEN = 'castnet-flood';
/** Frames per second of each kind the flooder offers: well above the default limits. */
const FLOOD_PPS = { broadcast: 5 * LIMITS.broadcastPpsDefault, arp: 10 * LIMITS.arpPpsDefault };

const labFile = parseLabFile(`
nodes: 2
networks:
  - { name: tenant-a, id: 110, subnets: [10.40.0.0/16] }
  - { name: tenant-b, id: 120, subnets: [10.41.0.0/16] }
pods:
  - { name: a-src, node: 0, network: tenant-a }
  - { name: a-local, node: 0, network: tenant-a }
  - { name: a-remote, node: 1, network: tenant-a }
  - { name: b-flood, node: 0, network: tenant-b }
  - { name: b-remote, node: 1, network: tenant-b }
scenarios:
  - name: victim-stream
    steps:
      - { join: { pod: a-local, group: 239.7.7.7 } }
      - { join: { pod: a-remote, group: 239.7.7.7 } }
      - { send: { from: a-src, to: 239.7.7.7, count: 60 } }
      - { expect: { received: { a-local: 1, a-remote: 1 } } }
`);

// Sends the frames (hex, one per line on stdin, each with its kind) out of the pod's eth0 at the
// given rates per kind, in 10 ms rounds, for the given seconds; prints how many of each it sent.
const FLOODER = `
import binascii, json, socket, sys, time
rates, seconds = json.loads(sys.argv[1]), float(sys.argv[2])
frames = {}
for line in sys.stdin:
    kind, hexed = line.split()
    frames[kind] = binascii.unhexlify(hexed)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
sent = {k: 0 for k in frames}
start = time.monotonic()
while time.monotonic() - start < seconds:
    t = time.monotonic() - start
    for k, f in frames.items():
        while sent[k] < rates[k] * t:
            try:
                s.send(f)
            except OSError:
                pass
            sent[k] += 1
    time.sleep(0.01)
print(json.dumps(sent))
`;

function floodFrames(pod: { mac: string; ip: string }): { broadcast: Uint8Array; arp: Uint8Array } {
  const payload = Buffer.alloc(8 + 64, 0x2e);
  payload.writeUInt16BE(40000, 0);
  payload.writeUInt16BE(9, 2);
  payload.writeUInt16BE(payload.length, 4);
  payload.write(FLOOD_TOKEN, 8);
  const broadcast = buildIPv4Frame({
    dstMac: 'ff:ff:ff:ff:ff:ff',
    srcMac: pod.mac,
    src: pod.ip,
    dst: '255.255.255.255',
    protocol: 17,
    ttl: 1,
    payload,
  });
  // A who-has for an address nobody holds (the ARP proxy cannot answer it: it is broadcast), built
  // as the reply to a request from ff:ff:ff:ff:ff:ff so that the sender fields are the pod's.
  const arp = buildArpReply(
    {
      op: 1,
      senderMac: 'ff:ff:ff:ff:ff:ff',
      senderIp: '10.41.255.254',
      targetMac: '00:00:00:00:00:00',
      targetIp: pod.ip,
    },
    pod.mac,
  );
  return { broadcast, arp };
}

/** Runs the flooder in the pod's namespace; resolves with what it sent once it is done. */
function flood(
  ns: string,
  frames: Record<string, Uint8Array>,
  seconds: number,
): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', ns, 'python3', '-c', FLOODER, JSON.stringify(FLOOD_PPS), String(seconds)],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as Record<string, number>)
        : reject(new Error(`flooder exited ${code}`)),
    );
    child.stdin.end(
      Object.entries(frames)
        .map(([k, f]) => `${k} ${Buffer.from(f).toString('hex')}\n`)
        .join(''),
    );
  });
}

interface Stats {
  dataplane: {
    remoteDeliveries: number;
    drops: Record<string, number>;
    policed?: Record<string, Record<string, number>>;
  };
}

describe('a pod flooding broadcast and ARP', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = new Lab(labFile, {
      castnetBin: join(root, 'bin/castnet'),
      cniBin: join(root, 'bin/castnet-cni'),
    });
    await lab.start();
  }, 120000);
  afterAll(async () => {
    await lab?.dispose();
  }, 60000);

  it('is policed per endpoint while another tenant’s stream from its node loses nothing', async () => {
    const flooder = lab.podInfo('b-flood');
    const before = (await lab.agentStats(1)) as unknown as Stats;
    const started = performance.now();
    const flooding = flood(flooder.ns, floodFrames(flooder), 6);
    const report = await lab.runScenario(labFile.scenarios.find((s) => s.name === 'victim-stream')!);
    const sent = await flooding;
    const seconds = (performance.now() - started) / 1000;

    // The victim: every message to each member exactly once, nothing to anyone else.
    expect(report.failures).toEqual([]);
    expect(report.pass).toBe(true);

    // The flood offered several times the limits and was policed, counted against its endpoint.
    expect(sent.broadcast).toBeGreaterThan(3 * LIMITS.broadcastBurstDefault);
    const s0 = (await lab.agentStats(0)) as unknown as Stats;
    const policed = s0.dataplane.policed?.[String(flooder.endpointId)] ?? {};
    expect(policed.broadcast).toBeGreaterThan(sent.broadcast / 2);
    expect(policed.arp).toBeGreaterThan(sent.arp / 2);
    expect(s0.dataplane.drops['policed:broadcast']).toBe(policed.broadcast);
    for (const [id, kinds] of Object.entries(s0.dataplane.policed ?? {}))
      if (id !== String(flooder.endpointId)) expect(kinds).toEqual({});

    // What crossed to the flooder's other node is within its bucket: burst plus rate over the time.
    const s1 = (await lab.agentStats(1)) as unknown as Stats;
    const remote = s1.dataplane.remoteDeliveries - before.dataplane.remoteDeliveries;
    const allowed =
      LIMITS.broadcastBurstDefault +
      LIMITS.arpBurstDefault +
      (LIMITS.broadcastPpsDefault + LIMITS.arpPpsDefault) * seconds;
    expect(remote).toBeLessThanOrEqual(allowed + 200);
    expect(lab.receivedBy('b-remote', FLOOD_TOKEN)).toBeLessThanOrEqual(
      LIMITS.broadcastBurstDefault + LIMITS.broadcastPpsDefault * seconds,
    );
  }, 120000);
});
