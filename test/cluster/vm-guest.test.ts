// A real qemu guest in a kubelet-started pod on the real cluster, attached to a castnet network
// through Multus, the way KubeVirt's virt-launcher runs one: the pod carries virt-launcher's labels
// (castnet asks the VirtualMachineInstance's status to confirm it, pkg/agent/identity.ts), its castnet
// interface net1 is rewired as KubeVirt's bridge binding does (pkg/lab/bridge-binding.ts: net1-nic
// enslaved to k6t-net1 beside tap1), and qemu (TCG) runs in the pod's container with the guest image
// (scripts/guest/build.sh) and the interface's original MAC and IP. The guest's own kernel joins a
// group (IGMPv3); a pod on another node sends N numbered datagrams, and the guest, counting over its
// serial console, must read each exactly once, while a pod beside it that is no member reads nothing.
//
// What plays KubeVirt here: a stand-in VMI CRD (test/k8s/fixtures.ts) whose status the test writes as
// virt-controller would, and the test itself as virt-handler (it reads the pod interface and hands
// the pod its wiring and qemu command line). KubeVirt itself does not run on this machine.
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { vmAddressName } from '../../pkg/k8s/resources.js';
import type { VMAddress } from '../../pkg/k8s/types.js';
import { launcherPodMeta } from '../../pkg/kubevirt/identity.js';
import { bindingNames, bridgeBindingScript, randomMac, shellQuote } from '../../pkg/lab/bridge-binding.js';
import { GUEST_READY, GuestConsole, qemuArgs } from '../../pkg/lab/guest.js';
import {
  apply,
  blockJoins,
  castnetTestbed,
  type CastnetTestbed,
  copies,
  imageRef,
  type Listen,
  net1Address,
  podExec,
  type PodInfo,
  type RealCluster,
  received,
  send,
  startReceivers,
  WAIT_FOR_START,
  waitFor,
  waitPods,
  workloadDeployment,
} from '../harness/cluster.js';
import { upstreamBin } from '../harness/upstream.js';
import { installVmiCrd } from '../k8s/fixtures.js';

jest.setTimeout(300_000);

const G: Listen = { group: '239.20.0.1', port: 5100 };
/** 239.20.0.1 as /proc/net/igmp prints it (host byte order, hex). */
const G_IGMP_HEX = '010014EF';
const N = 20;
const VM = 'vm0';
const VMI_CRD = 'virtualmachineinstances.kubevirt.io';
/** The image's guest kernel and initramfs (scripts/cluster/images.sh build_guest). */
const IMAGE = { kernel: '/guest/vmlinuz', initramfs: '/guest/initramfs.gz' };
/** The castnet interface Multus gives the pod, which the bridge binding hands to the guest. */
const POD_IF = 'net1';
/** The launcher container waits for its wiring and qemu command line, then becomes qemu. */
const LAUNCH_WAIT = 'while [ ! -f /tmp/launch ]; do sleep 0.2; done; exec sh /tmp/launch';

let bed: CastnetTestbed | undefined;
let c: RealCluster;
let ns = '';
let net = '';
let crdCreated = false;
let sender: PodInfo;
let nonmember: PodInfo;
let launcher: PodInfo;
let guest: GuestConsole | undefined;
/** The guest's console lines since the test attached to it. */
const lines: string[] = [];
/** The pod interface as castnet-cni configured it (the guest's from now on). */
let iface: { mac: string; mtu: number; addresses: string[] };

/** Datagrams carrying `token` the guest's castnet-guest printed. */
function guestReads(token: string): number {
  return lines.filter((l) => l.startsWith('castnet-guest rx ') && l.endsWith(`data=${token}`)).length;
}

beforeAll(async () => {
  bed = await castnetTestbed('vm');
  ({ c, ns } = bed);
  // castnet reads a VMI's status at a virt-launcher pod's ADD; without KubeVirt, a stand-in CRD.
  crdCreated = !(await c.kubectl(['get', 'crd', VMI_CRD, '--ignore-not-found', '-o', 'name'])).trim();
  if (crdCreated) await installVmiCrd(c);
  const network = bed.network({ suffix: 'net', networkID: 1201, subnet: '10.121.0.0/16' });
  net = network.name;
  const workload = await imageRef('workload');
  const guestImage = await imageRef('guest').catch((err: Error) => {
    throw new Error(`${err.message}: \`make guest-image\` builds the guest's kernel and initramfs first`);
  });
  const [node1, node2] = c.nodes;
  await apply(c, [
    ...network.objects,
    workloadDeployment({ namespace: ns, name: 'sender', node: node1, image: workload, networks: [net] }),
    // Beside the guest, the same socket on the same group, but its joins never reach castnet.
    workloadDeployment({
      namespace: ns,
      name: 'nonmember',
      node: node2,
      image: workload,
      networks: [net],
      script: WAIT_FOR_START,
    }),
    {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstance',
      metadata: { name: VM, namespace: ns },
      spec: {
        domain: { devices: { interfaces: [{ name: 'castnet', bridge: {} }] } },
        networks: [{ name: 'castnet', multus: { networkName: net } }],
      },
    },
  ]);

  // The virt-launcher pod, labelled as KubeVirt labels one; the VMI's status then names it active
  // (castnet's ADD waits for that, pkg/agent/identity.ts).
  const vmiUid = await c.kubectl([
    '-n',
    ns,
    'get',
    'virtualmachineinstances',
    VM,
    '-o',
    'jsonpath={.metadata.uid}',
  ]);
  const podName = `virt-launcher-${VM}-${randomBytes(3).toString('hex').slice(0, 5)}`;
  const meta = launcherPodMeta(ns, VM, podName, { vmiUid });
  await apply(c, [
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: podName,
        namespace: ns,
        labels: meta.labels,
        annotations: { ...meta.annotations, 'k8s.v1.cni.cncf.io/networks': net },
      },
      spec: {
        nodeSelector: { 'kubernetes.io/hostname': node2 },
        terminationGracePeriodSeconds: 1,
        // As virt-launcher's: a VM pod whose qemu ended is not restarted in place.
        restartPolicy: 'Never',
        containers: [
          {
            name: 'compute',
            image: guestImage,
            imagePullPolicy: 'IfNotPresent',
            command: ['/bin/sh', '-c', LAUNCH_WAIT],
            // qemu's serial console is the container's stdio: `kubectl attach -i` drives it.
            stdin: true,
            // KubeVirt splits this: virt-handler wires the pod from outside, virt-launcher gets the
            // tun device. Here the container does both.
            securityContext: { privileged: true },
          },
        ],
      },
    },
  ]);
  const podUid = await c.kubectl(['-n', ns, 'get', 'pod', podName, '-o', 'jsonpath={.metadata.uid}']);
  await c.kubectl([
    ...['-n', ns, 'patch', 'virtualmachineinstances', VM, '--type', 'merge', '-p'],
    JSON.stringify({ status: { phase: 'Scheduled', activePods: { [podUid]: node2 } } }),
  ]);
  [sender] = await waitPods(c, ns, 'app=sender', 1);
  [nonmember] = await waitPods(c, ns, 'app=nonmember', 1);
  [launcher] = await waitPods(c, ns, 'kubevirt.io=virt-launcher', 1);

  // virt-handler's part: read the pod interface, rewire it, start qemu with its MAC and IP.
  const [link] = JSON.parse(await podExec(c, ns, launcher.name, `ip -j addr show dev ${POD_IF}`)) as {
    address: string;
    mtu: number;
    addr_info: { local: string; prefixlen: number; scope: string }[];
  }[];
  iface = {
    mac: link!.address,
    mtu: link!.mtu,
    addresses: link!.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`),
  };
  const qemu = qemuArgs(
    {
      name: VM,
      tap: bindingNames(POD_IF).tap,
      mac: iface.mac,
      addresses: iface.addresses,
      memoryMiB: 192,
      mtu: iface.mtu,
    },
    'tcg',
    IMAGE,
  );
  const launch =
    bridgeBindingScript(POD_IF, { mtu: iface.mtu, nicMac: randomMac() }) +
    `exec qemu-system-x86_64 ${qemu.map(shellQuote).join(' ')}\n`;
  const started = Date.now();
  await podExec(
    c,
    ns,
    launcher.name,
    `echo ${Buffer.from(launch).toString('base64')} | base64 -d >/tmp/launch.new && mv /tmp/launch.new /tmp/launch`,
  );
  // The boot, on the container's log (nobody is attached yet).
  let log = '';
  await waitFor(
    async () => {
      log = await c.kubectl(['-n', ns, 'logs', launcher.name, '-c', 'compute']);
      return log.includes(GUEST_READY);
    },
    {
      what: `the guest in ${launcher.name} to boot`,
      timeoutMs: 120_000,
      intervalMs: 500,
      observed: () => log.slice(-1500),
    },
  );
  console.log(`guest booted in the pod ${Date.now() - started} ms after its launch script`);
  guest = new GuestConsole(VM);
  guest.onLine((l) => lines.push(l));
  guest.attach(
    spawn(
      path.join(upstreamBin, 'kubectl'),
      ['--kubeconfig', c.kubeconfigPath, '-n', ns, 'attach', '-i', '-c', 'compute', launcher.name],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    ),
    'kubectl attach',
  );
  await guest.run('true', 30_000);
}, 600_000);

afterAll(async () => {
  await guest?.dispose().catch(() => undefined);
  await bed?.dispose();
  if (process.env.CASTNET_TEST_KEEP) return;
  if (crdCreated) await c.kubectl(['delete', 'crd', VMI_CRD, '--ignore-not-found']).catch(() => undefined);
});

describe('a qemu guest in a virt-launcher pod attached through Multus', () => {
  test("boots behind the bridge binding with the pod interface's MAC and IP", async () => {
    const eth0 = await guest!.run('ip addr show dev eth0');
    expect(eth0).toContain(`link/ether ${iface.mac}`);
    for (const a of iface.addresses) expect(eth0).toContain(`inet ${a}`);
    expect(iface.addresses.map((a) => a.split('/')[0])).toEqual([net1Address(launcher)]);
    // The pod side: net1 renamed, no address, a port of k6t-net1 beside the tap qemu opened.
    const { bridge, nic, tap } = bindingNames(POD_IF);
    const ports = await podExec(c, ns, launcher.name, `ip -o link show master ${bridge}`);
    expect(ports).toMatch(new RegExp(`^\\d+: ${nic}[@:]`, 'm'));
    expect(ports).toMatch(new RegExp(`^\\d+: ${tap}:`, 'm'));
    expect(await podExec(c, ns, launcher.name, `ip -o addr show dev ${nic} scope global`)).toBe('');
    // castnet took the pod for VMI vm0 (whose status names it): the VM's address reservation.
    const reservation = await waitFor(
      async () => {
        const out = await c.kubectl([
          ...['-n', ns, 'get', 'vmaddresses.castnet.io', vmAddressName(VM, net)],
          ...['--ignore-not-found', '-o', 'json'],
        ]);
        return out.trim() ? (JSON.parse(out) as VMAddress) : undefined;
      },
      { what: `the VMAddress of ${VM} on ${net}`, timeoutMs: 30_000 },
    );
    expect(reservation.spec).toEqual({ network: net, vmi: VM, ips: [net1Address(launcher)] });
    expect(reservation.metadata.ownerReferences?.map((o) => `${o.kind}/${o.name}`)).toEqual([
      `VirtualMachineInstance/${VM}`,
    ]);
    // Unicast from a pod on another node reaches the guest (and its answer comes back).
    await podExec(c, ns, sender.name, `ping -c 1 -W 5 ${net1Address(launcher)}`);
  });

  test('the guest joins by IGMPv3 and reads each datagram from another node exactly once; a non-member pod nothing', async () => {
    await blockJoins(c, ns, nonmember);
    await startReceivers(c, ns, nonmember, [G]);
    await guest!.background(`castnet-guest recv -p ${G.port} -g ${G.group}`);
    await waitFor(async () => (await guest!.run('cat /proc/net/igmp')).includes(G_IGMP_HEX), {
      what: `the guest's kernel to join ${G.group}`,
    });
    expect(await guest!.run('cat /proc/net/igmp')).toMatch(/eth0\s+:\s+\d+\s+V3/);

    // Delivery starts once the guest's report reached castnet on every node.
    const joined = Date.now();
    let k = 0;
    await waitFor(
      async () => {
        const token = `warmup-${k++}`;
        await send(c, ns, sender, G, [token]);
        return guestReads(token) > 0 || lines.some((l) => /data=warmup-\d+$/.test(l)) || undefined;
      },
      { what: `a first delivery of ${G.group} to the guest`, timeoutMs: 120_000, intervalMs: 500 },
    );
    console.log(`guest joined → first delivery from another node: ${Date.now() - joined} ms`);

    const payloads = Array.from({ length: N }, (_, i) => `vm-${i}`);
    const control = `control-${Date.now()}`;
    await send(c, ns, sender, G, [...payloads, control]);
    await waitFor(() => guestReads(control) > 0 || undefined, {
      what: 'the control message at the guest',
      timeoutMs: 60_000,
    });
    const got = copies(
      lines
        .filter((l) => l.startsWith('castnet-guest rx ') && / data=vm-\d+$/.test(l))
        .map((l) => l.slice(l.lastIndexOf('data=') + 5)),
    );
    expect(payloads.map((p) => [p, got.get(p) ?? 0])).toEqual(payloads.map((p) => [p, 1]));
    expect([...got.keys()].sort()).toEqual([...payloads].sort());
    expect(guestReads(control)).toBe(1);
    // Not one message, not even a warm-up or the control, reached the non-member's socket.
    expect(await received(c, ns, nonmember.name, G.port)).toEqual([]);
  });
});
