// MTU: a network configured larger than the underlay can carry gets endpoints clamped to what fits
// one datagram, and full-size multicast crosses nodes whole, in one datagram per member node.
import { runIn } from '../../pkg/sys/exec.js';
import { useLab } from '../harness/lab-fixture.js';

const { lab, pod, file } = useLab(`
nodes: 2
underlayMtu: 1500
networks:
  - { name: jumbo, id: 77, subnets: [10.50.0.0/16], mtu: 9000 }
pods:
  - { name: a, node: 0, network: jumbo }
  - { name: b, node: 1, network: jumbo }
  - { name: c, node: 1, network: jumbo }
scenarios:
  - name: full-size
    steps:
      - join: { pod: b, group: 239.8.8.8 }
      - join: { pod: c, group: 239.8.8.8 }
      - send: { from: a, to: 239.8.8.8, size: 1352 }
      - expect: { received: { b: 1, c: 1 }, underlayDatagrams: 1 }
`);

it('clamps endpoint MTU to the underlay and delivers full-size frames whole', async () => {
  const { stdout } = await runIn(pod('a').ns, 'cat', ['/sys/class/net/eth0/mtu']);
  // 1500 - 28 (IPv4+UDP) - 32 (version 2 header) - 4x4 (IDs) - 16 (tag) - 10 (virtio-net)
  // - 14 (Ethernet) - 4 (VLAN tag); the UDP payload of a full-size frame: 1380 - 28 = 1352.
  expect(Number(stdout.trim())).toBe(1380);
  const report = await lab().runScenario(file.scenarios[0]!);
  expect(report.failures).toEqual([]);
}, 120000);
