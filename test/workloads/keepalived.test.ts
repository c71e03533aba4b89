// keepalived (VRRP) on castnet, with the real keepalived: two instances on different nodes share a
// virtual IP that each pod declares as an allowed address pair, and a client on a third node reaches
// the VIP. What keepalived's users expect:
// - election: exactly one MASTER, and only it holds the VIP (a split brain fails);
// - failover: when the master dies (SIGKILL, no resignation), the backup takes over after VRRP's
//   master-down interval and the client reaches the VIP again, through the new master, never again
//   through the old one (which, killed, still has the VIP on its interface);
// - the VIP stays with its holder when the agent on the holder's node restarts;
// - anti-spoofing stays on for every address that was not declared.
// The failover time (master killed -> first answer from the new master) is measured and logged; the
// test's deadline is generous, as a loaded machine is slow.
import { sleep, waitFor } from '../../pkg/base/async.js';
import { parseLabFile } from '../../pkg/lab/scenario.js';
import { runIn } from '../../pkg/sys/exec.js';
import { useLab } from '../harness/lab-fixture.js';
import { inNetns } from '../harness/where.js';
import { askName, Keepalived } from './keepalived.js';

const VIP = '10.40.200.1';
/** An address no pod declared: using it must stay blocked. */
const UNDECLARED = '10.40.200.2';
const ECHO_PORT = 7000;
/** keepalived's default delay before its second set of gratuitous ARPs as master. */
const GARP_MASTER_DELAY_MS = 5_000;
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

describe.each([true, false])(
  'keepalived (VRRP) with a VIP declared as an allowed address pair (broadcast %s)',
  (broadcast) => {
    const { lab, own } = useLab(labFile(broadcast));
    const running = new Map<Instance, Keepalived>();

    const ns = (pod: string) => lab().podInfo(pod).ns;
    const state = (name: Instance): string => running.get(name)?.state() ?? 'NONE';

    /** When the pod's endpoint last claimed the VIP, as the directory publishes it. */
    const claimsOf = (pod: string): number | undefined => {
      const ip = lab().podInfo(pod).ip;
      const e = lab().directory.endpoints.find((r) => r.ips.includes(ip));
      return e?.claims?.find((c) => c.address === VIP)?.at;
    };

    const holdsVip = (pod: Instance): Promise<boolean> => running.get(pod)!.holdsVip();

    /** One TCP connection from the client to the VIP: the name of the instance that answered. */
    const askVip = (): Promise<string | undefined> => askName(inNetns(ns('client')), VIP, ECHO_PORT);

    function start(name: Instance, priority: number): void {
      const k = own(
        new Keepalived(name, inNetns(ns(name)), {
          priority,
          iface: 'eth0',
          vip: VIP,
          prefixLen: 16,
          echoPort: ECHO_PORT,
        }),
      );
      running.set(name, k);
      k.start();
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
      master.crash();
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

    it("keeps the VIP with its holder when the holder's node's agent restarts", async () => {
      // keepalived sends its second set of gratuitous ARPs 5 s after becoming master
      // (garp_master_delay), which claims the VIP again; after that it announces nothing more, so the
      // claim it has then is the one the restarted agent must keep.
      await sleep(Math.max(0, claimsOf('ka2')! + GARP_MASTER_DELAY_MS + 1_000 - Date.now()));
      const claimed = claimsOf('ka2');
      // The restarted agent must take ka2's claim back from the directory it had published to: with it
      // lost, the directory would place the VIP on ka1 again (the older claim) and, with broadcast
      // off, the ARP proxy would answer with the dead master's MAC.
      await lab().restartAgent(1);
      await waitFor(() => claimsOf('ka2') === claimed, {
        what: "ka2's claim of the VIP republished by its restarted agent",
        observed: () => `ka2 ${claimsOf('ka2')}, ka1 ${claimsOf('ka1')}, before ${claimed}`,
      });
      expect(claimsOf('ka2')).toBeGreaterThan(claimsOf('ka1')!);
      // The client resolves the VIP afresh, and still reaches ka2, every time.
      await runIn(ns('client'), 'ip', ['neigh', 'flush', 'dev', 'eth0']);
      expect(await waitFor(askVip, { what: `an answer from ${VIP} after the restart` })).toBe('ka2');
      for (let i = 0; i < 5; i++) expect(await askVip()).toBe('ka2');
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
