// The lab's default suite end to end: real agents in node namespaces, pods wired by the real
// castnet-cni, real IGMP from socat/mcfirst, tcpdump counting. Needs `make build` (make test does it).
import { execFile } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

interface Report {
  pass: boolean;
  guests: { pod: string; accelerator: string; boot_ms: number; datagrams_read: number }[];
  scenarios: {
    name: string;
    pass: boolean;
    failures: { step: number; what: string }[];
    join_latency_ms: number[];
    messages: {
      group: string;
      underlay_datagrams: number;
      remote_member_nodes: number;
      received: Record<string, number>;
    }[];
  }[];
}

function runLab(): Promise<{ code: number; report: Report; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      join(root, 'bin/castnet'),
      ['lab', 'run', '--json'],
      { timeout: 240000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        try {
          resolve({
            code: err ? ((err as { code?: number }).code ?? 1) : 0,
            report: JSON.parse(stdout) as Report,
            stderr,
          });
        } catch {
          reject(new Error(`castnet lab run printed no report: ${stderr}\n${stdout}`));
        }
      },
    );
  });
}

describe('castnet lab: the default suite', () => {
  let result: Awaited<ReturnType<typeof runLab>>;

  beforeAll(async () => {
    result = await runLab();
  }, 300000);

  it('passes every scenario and exits 0', () => {
    const failures = result.report.scenarios.flatMap((s) =>
      s.failures.map((f) => `${s.name} step ${f.step}: ${f.what}`),
    );
    expect(failures).toEqual([]);
    expect(result.report.pass).toBe(true);
    expect(result.code).toBe(0);
  });

  it('sends exactly one underlay datagram per remote member node, per message', () => {
    const messages = result.report.scenarios.flatMap((s) => s.messages);
    expect(messages.length).toBeGreaterThanOrEqual(9);
    for (const m of messages) expect(m.underlay_datagrams).toBe(m.remote_member_nodes);
  });

  it("runs real guests whose own counts are the VM pods' (scenario guests)", () => {
    // vm1's guest live-migrated into vm1-moved (scenario guest-migration), and vm1 was removed.
    expect(result.report.guests.map((g) => g.pod).sort()).toEqual(['vm1-moved', 'vm2']);
    for (const g of result.report.guests) {
      expect(['tcg', 'kvm']).toContain(g.accelerator);
      expect(g.boot_ms).toBeGreaterThan(0);
      expect(g.datagrams_read).toBeGreaterThan(0);
    }
    const guests = result.report.scenarios.find((s) => s.name === 'guests')!;
    const fromPod = guests.messages[0]!;
    expect(fromPod.received).toMatchObject({ vm1: 1, vm2: 1, g0: 0 });
    // Nothing outside the members: the other networks' pods included.
    const others = Object.entries(fromPod.received).filter(([pod]) => !['vm1', 'vm2'].includes(pod));
    expect(others.every(([, n]) => n === 0)).toBe(true);
    expect(others.length).toBeGreaterThan(10);
  });

  it("keeps a migrated guest's groups, on its target only (scenario guest-migration)", () => {
    const migration = result.report.scenarios.find((s) => s.name === 'guest-migration')!;
    expect(migration.pass).toBe(true);
    for (const m of migration.messages) {
      expect(m.received).toMatchObject({ 'vm1-moved': 1, vm2: 0, g0: 0 });
      expect(Object.values(m.received).reduce((a, b) => a + b, 0)).toBe(1);
    }
  });

  it('keeps the other tenant, non-members and the sender out', () => {
    const asm = result.report.scenarios.find((s) => s.name === 'asm')!;
    const blue = asm.messages[0]!;
    for (const pod of ['a1', 'c2', 'd1', 'r0', 'r1', 'r2']) expect(blue.received[pod]).toBe(0);
    for (const pod of ['a2', 'b1', 'b2', 'c1']) expect(blue.received[pod]).toBe(1);
  });
});
