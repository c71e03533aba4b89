// keepalived (VRRP) on castnet, with the real keepalived: two instances on different nodes share a
// virtual IP that each pod declares as an allowed address pair, and a client on a third node reaches
// the VIP. What keepalived's users expect:
// - election: exactly one MASTER, and only it holds the VIP (a split brain fails);
// - failover: when the master dies (SIGKILL, no resignation), the backup takes over after VRRP's
//   master-down interval and the client reaches the VIP again, through the new master, never again
//   through the old one (which, killed, still has the VIP on its interface);
// - anti-spoofing stays on for every address that was not declared.
// The failover time (master killed -> first answer from the new master) is measured and logged; the
// test's deadline is generous, as a loaded machine is slow.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, waitFor } from '../../pkg/base/async.js';
import { toDisposable } from '../../pkg/base/lifecycle.js';
import { parseLabFile } from '../../pkg/lab/scenario.js';
import { runIn } from '../../pkg/sys/exec.js';
import { useLab } from '../harness/lab-fixture.js';

const VIP = '10.40.200.1';
/** An address no pod declared: using it must stay blocked. */
const UNDECLARED = '10.40.200.2';
const ECHO_PORT = 7000;
type Instance = 'ka1' | 'ka2';

// With broadcast off, the ARP proxy is the only way to resolve the VIP, and the new master's
// announcement is still flooded: both settings must fail over.
const labFile = (broadcast: boolean) =>
  parseLabFile(`
nodes: 3
networks:
  - { name: blue, id: 300, subnets: [10.40.0.0/16], broadcast: ${broadcast} }
pods:
  - { name: ka1, node: 0, network: blue, allowedAddressPairs: [${VIP}] }
  - { name: ka2, node: 1, network: blue, allowedAddressPairs: [${VIP}] }
  - { name: client, node: 2, network: blue }
  - { name: rogue, node: 1, network: blue }
scenarios: [{ name: none, steps: [{ sleep: 0 }] }]
`);

/** keepalived's configuration: both start BACKUP; the higher priority wins the election. */
function keepalivedConf(name: Instance, priority: number, dir: string): string {
  return `global_defs {
  router_id ${name}
  script_user root
  enable_script_security
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority ${priority}
  advert_int 1
  virtual_ipaddress {
    ${VIP}/16 dev eth0
  }
  notify ${join(dir, 'notify.sh')}
}
`;
}

interface Running {
  name: Instance;
  dir: string;
  keepalived: ChildProcess;
  echo: ChildProcess;
  log: string[];
}

describe.each([true, false])(
  'keepalived (VRRP) with a VIP declared as an allowed address pair (broadcast %s)',
  (broadcast) => {
    const { lab, own } = useLab(labFile(broadcast));
    const running = new Map<Instance, Running>();

    const ns = (pod: string) => lab().podInfo(pod).ns;

    /** The VRRP state keepalived last reported through its notify script (MASTER, BACKUP, FAULT...). */
    const state = (name: Instance): string => {
      try {
        return readFileSync(join(running.get(name)!.dir, 'state'), 'utf8').trim();
      } catch {
        return 'NONE';
      }
    };

    /** When the pod's endpoint last claimed the VIP, as the directory publishes it. */
    const claimsOf = (pod: string): number | undefined => {
      const ip = lab().podInfo(pod).ip;
      const e = lab().directory.endpoints.find((r) => r.ips.includes(ip));
      return e?.claims?.find((c) => c.address === VIP)?.at;
    };

    const holdsVip = async (pod: string): Promise<boolean> => {
      const { stdout } = await runIn(ns(pod), 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      return stdout.includes(` ${VIP}/`);
    };

    /** One TCP connection from the client to the VIP: the name of the instance that answered. */
    const askVip = async (): Promise<string | undefined> => {
      try {
        const { stdout } = await runIn(
          ns('client'),
          'socat',
          ['-T', '2', '-', `TCP:${VIP}:${ECHO_PORT},connect-timeout=1`],
          { input: '', timeoutMs: 5000 },
        );
        return stdout.trim() || undefined;
      } catch {
        return undefined;
      }
    };

    function start(name: Instance, priority: number): void {
      const dir = mkdtempSync(join(tmpdir(), `castnet-vrrp-${name}-`));
      const notify = join(dir, 'notify.sh');
      // keepalived runs it with: TYPE NAME STATE PRIORITY.
      writeFileSync(
        notify,
        `#!/bin/sh\necho "$3" > ${join(dir, 'state.tmp')} && mv ${join(dir, 'state.tmp')} ${join(dir, 'state')}\n`,
      );
      chmodSync(notify, 0o700);
      const conf = join(dir, 'keepalived.conf');
      writeFileSync(conf, keepalivedConf(name, priority, dir));
      const log: string[] = [];
      // Its own mount namespace, so nothing it writes under /run is shared with the node or the other
      // instance; its own pid files; only the VRRP subsystem; in the foreground, logging to stderr.
      const keepalived = spawn('ip', [
        'netns',
        'exec',
        ns(name),
        'unshare',
        '-m',
        '--propagation',
        'private',
        'keepalived',
        '-n',
        '-l',
        '-D',
        '--vrrp',
        '-f',
        conf,
        '-p',
        join(dir, 'keepalived.pid'),
        '-r',
        join(dir, 'vrrp.pid'),
      ]);
      for (const s of [keepalived.stdout, keepalived.stderr])
        s.on('data', (c: Buffer) => log.push(c.toString()));
      // The service behind the VIP: answers every connection with the instance's name.
      const echo = spawn('ip', [
        'netns',
        'exec',
        ns(name),
        'socat',
        `TCP-LISTEN:${ECHO_PORT},fork,reuseaddr`,
        `SYSTEM:echo ${name}`,
      ]);
      const r: Running = { name, dir, keepalived, echo, log };
      running.set(name, r);
      own(toDisposable(() => stop(r)));
    }

    /** keepalived's processes (its parent and VRRP child), from their pid files. */
    const keepalivedPids = (r: Running): number[] =>
      ['vrrp.pid', 'keepalived.pid'].flatMap((f) => {
        try {
          return [Number(readFileSync(join(r.dir, f), 'utf8').trim())];
        } catch {
          return [];
        }
      });

    const signal = (pids: number[], sig: NodeJS.Signals) => {
      for (const pid of pids) {
        try {
          process.kill(pid, sig);
        } catch {
          // already gone
        }
      }
    };

    /**
     * Kills an instance as a crash would: stopped first, so neither process can act on the other's
     * death (the VRRP child would resign, sending priority 0), then killed.
     */
    function crash(r: Running): void {
      const pids = keepalivedPids(r);
      signal(pids, 'SIGSTOP');
      signal(pids, 'SIGKILL');
    }

    async function stop(r: Running): Promise<void> {
      crash(r);
      for (const p of [r.keepalived, r.echo]) {
        if (p.exitCode !== null || p.signalCode !== null) continue;
        const gone = new Promise((resolve) => p.once('exit', resolve));
        p.kill('SIGKILL');
        const done = new AbortController();
        await Promise.race([gone, sleep(5000, done.signal).catch(() => undefined)]);
        done.abort();
      }
      rmSync(r.dir, { recursive: true, force: true });
    }

    beforeAll(() => {
      start('ka1', 150);
      start('ka2', 100);
    });

    it('elects exactly one master, which alone holds the VIP and answers on it', async () => {
      await waitFor(() => state('ka1') === 'MASTER' && state('ka2') === 'BACKUP', {
        what: 'ka1 MASTER and ka2 BACKUP',
        timeoutMs: 30_000,
        observed: () => `ka1 ${state('ka1')}, ka2 ${state('ka2')}`,
      });
      expect(await holdsVip('ka1')).toBe(true);
      expect(await holdsVip('ka2')).toBe(false);
      expect(await waitFor(askVip, { what: `an answer from ${VIP}` })).toBe('ka1');
      // The directory places the VIP on the endpoint that announced it, and on no other.
      expect(claimsOf('ka1')).toBeGreaterThan(0);
      expect(claimsOf('ka2')).toBeUndefined();
    }, 60_000);

    it('fails over to the backup when the master dies, and the client follows the new master', async () => {
      const master = running.get('ka1')!;
      const killedAt = performance.now();
      // Dies without resigning (no priority-0 advertisement): the backup waits out master-down. The
      // killed master's VIP stays on its interface, as after a real crash.
      crash(master);
      const answer = await waitFor(async () => ((await askVip()) === 'ka2' ? 'ka2' : undefined), {
        what: `${VIP} answered by ka2`,
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      const failoverMs = performance.now() - killedAt;
      expect(answer).toBe('ka2');
      // keepalived runs its notify script after taking the VIP over.
      await waitFor(() => state('ka2') === 'MASTER', {
        what: 'ka2 MASTER',
        observed: () => `ka2 ${state('ka2')}`,
      });
      console.log(
        `keepalived failover (broadcast ${broadcast}): client reached ${VIP} through the new master ${Math.round(failoverMs)} ms after the master was killed (advert_int 1)`,
      );
      // From now on every connection reaches the new master, never the old one.
      for (let i = 0; i < 10; i++) expect(await askVip()).toBe('ka2');
      expect(claimsOf('ka2')).toBeGreaterThan(claimsOf('ka1')!);
    }, 60_000);

    describe('anti-spoofing stays on for addresses a pod did not declare', () => {
      const spoofedIp = async (node: number) =>
        ((await lab().agentStats(node)) as { dataplane: { drops: Record<string, number> } }).dataplane.drops[
          'spoofed-ip'
        ] ?? 0;

      /** Pod `rogue` puts `address` on its interface and announces it as keepalived would (3 GARPs). */
      async function announceFromRogue(address: string): Promise<void> {
        const rogue = lab().podInfo('rogue');
        const before = await spoofedIp(rogue.node);
        await runIn(rogue.ns, 'ip', ['addr', 'add', `${address}/16`, 'dev', 'eth0']);
        try {
          await runIn(rogue.ns, 'arping', ['-U', '-c', '3', '-I', 'eth0', address]);
          // Its agent dropped every announcement: the counter is the control (seen, and dropped).
          await waitFor(async () => (await spoofedIp(rogue.node)) >= before + 3, {
            what: `three spoofed-ip drops for ${address}`,
          });
          expect(await spoofedIp(rogue.node)).toBe(before + 3);
        } finally {
          await runIn(rogue.ns, 'ip', ['addr', 'del', `${address}/16`, 'dev', 'eth0']);
        }
      }

      it('a pod that did not declare the VIP cannot take it over', async () => {
        await announceFromRogue(VIP);
        // The client still reaches the VIP through its holder, which the directory still names.
        for (let i = 0; i < 5; i++) expect(await askVip()).toBe('ka2');
        const rogueIp = lab().podInfo('rogue').ip;
        expect(lab().directory.endpoints.find((e) => e.ips.includes(rogueIp))?.claims).toBeUndefined();
        expect(claimsOf('ka2')).toBeGreaterThan(claimsOf('ka1')!);
      }, 60_000);

      it('an address nobody declared is announced to no one', async () => {
        await announceFromRogue(UNDECLARED);
        const { stdout } = await runIn(ns('client'), 'ip', ['neigh', 'show', UNDECLARED]);
        expect(stdout.trim()).toBe('');
        expect(lab().directory.endpoints.some((e) => e.claims?.some((c) => c.address === UNDECLARED))).toBe(
          false,
        );
      }, 60_000);
    });
  },
);
