// IPv6 end to end: MLDv2 joins from real sockets, leave, ff02::1 link-local, on a dual-stack network.
import { execFile } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

it('delivers IPv6 multicast to MLD members only, one datagram per remote member node', async () => {
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      join(root, 'bin/castnet'),
      ['lab', 'run', join(root, 'pkg/lab/scenarios/ipv6.yaml'), '--json'],
      { timeout: 240000, maxBuffer: 16 << 20 },
      (err, out, stderr) => (out ? resolve(out) : reject(new Error(`${err?.message}: ${stderr}`))),
    ),
  );
  const report = JSON.parse(stdout) as {
    pass: boolean;
    scenarios: {
      name: string;
      failures: unknown[];
      messages: { underlay_datagrams: number; remote_member_nodes: number }[];
    }[];
  };
  expect(report.scenarios.flatMap((s) => s.failures)).toEqual([]);
  expect(report.scenarios.map((s) => s.name)).toEqual(['mld', 'ipv6-link-local', 'ipv6-unicast']);
  for (const m of report.scenarios.flatMap((s) => s.messages))
    expect(m.underlay_datagrams).toBe(m.remote_member_nodes);
  expect(report.pass).toBe(true);
}, 300000);
