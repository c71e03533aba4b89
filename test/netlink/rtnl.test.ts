// The rtnetlink client against the real kernel, inside namespaces this file creates.
import { execFileSync } from 'node:child_process';
import { Rtnl } from '../../pkg/netlink/rtnl.js';
import { isUp } from '../../pkg/netlink/codec.js';
import { NetlinkError } from '../../pkg/netlink/socket.js';

const tag = `cnnl${process.pid}`;
const nodeNs = `${tag}n`;
const podNs = `${tag}p`;
const nsPath = (n: string): string => `/var/run/netns/${n}`;
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

let node: Rtnl;
let pod: Rtnl;

beforeAll(() => {
  ip('netns', 'add', nodeNs);
  ip('netns', 'add', podNs);
  node = Rtnl.open(nsPath(nodeNs));
  pod = Rtnl.open(nsPath(podNs));
});

afterAll(() => {
  node?.dispose();
  pod?.dispose();
  for (const n of [nodeNs, podNs]) execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
});

describe('Rtnl', () => {
  it('builds a bridge and a veth whose peer is born in another namespace with its name, MAC and MTU', () => {
    const br = node.ensureBridge({ name: 'br0', up: true, noIpv6LinkLocal: true });
    expect(br.kind).toBe('bridge');
    expect(node.ensureBridge({ name: 'br0', up: true }).index).toBe(br.index);

    node.createVeth({
      name: 'hostv0',
      mtu: 1400,
      master: br.index,
      up: true,
      noIpv6LinkLocal: true,
      peer: { name: 'eth0', mac: '02:aa:bb:cc:dd:01', mtu: 1400, netns: nsPath(podNs) },
    });
    pod.setLink(pod.mustLink('eth0').index, { up: true });
    const host = node.mustLink('hostv0');
    expect(host).toMatchObject({ kind: 'veth', mtu: 1400, master: br.index });
    expect(isUp(host)).toBe(true);
    expect(host.bridgePort?.learning).toBe(true);

    const eth0 = pod.mustLink('eth0');
    expect(eth0).toMatchObject({ mac: '02:aa:bb:cc:dd:01', mtu: 1400, kind: 'veth' });
    expect(isUp(eth0)).toBe(true);
    // The host side's IFLA_LINK is the peer's index in the pod namespace: how CHECK finds a renamed peer.
    expect(host.link).toBe(eth0.index);
    expect(node.linkByName('eth0')).toBeUndefined();
    expect(ip('-n', nodeNs, '-6', 'addr', 'show', 'dev', 'hostv0')).not.toContain('inet6');
  });

  it('refuses to create a link whose name exists, with the kernel reason', () => {
    expect(() => node.createVeth({ name: 'hostv0', peer: { name: 'x0' } })).toThrow(
      /create veth "hostv0" with peer "x0": EEXIST/,
    );
  });

  it('sets bridge port flags and a static FDB entry', () => {
    const host = node.mustLink('hostv0');
    node.setBridgePort(host.index, { learning: false, mcastFlood: false, bcastFlood: false });
    expect(node.mustLink('hostv0').bridgePort).toEqual({
      learning: false,
      unicastFlood: true,
      mcastFlood: false,
      bcastFlood: false,
      // Read back since primary mode sets it (a pod reaching itself through its Service); off here.
      hairpin: false,
    });
    node.addFdb(host.index, '02:aa:bb:cc:dd:01');
    node.addFdb(host.index, '02:aa:bb:cc:dd:01'); // idempotent
    const bridgeOut = execFileSync('bridge', ['-n', nodeNs, '-j', 'fdb', 'show', 'dev', 'hostv0'], {
      encoding: 'utf8',
    });
    const entry = (JSON.parse(bridgeOut) as { mac: string; state?: string; flags?: string[] }[]).find(
      (e) => e.mac === '02:aa:bb:cc:dd:01',
    );
    expect(entry?.state).toBe('static');
    expect(entry?.flags ?? []).not.toContain('self');
    expect(node.listFdb()).toContainEqual(
      expect.objectContaining({ index: host.index, mac: '02:aa:bb:cc:dd:01' }),
    );
    expect(node.deleteFdb(host.index, '02:aa:bb:cc:dd:01')).toBe(true);
    expect(node.deleteFdb(host.index, '02:aa:bb:cc:dd:01')).toBe(false);
  });

  it('turns multicast snooping of a bridge off and on', () => {
    const br = node.mustLink('br0');
    const snooping = (): number =>
      (
        JSON.parse(ip('-d', '-j', '-n', nodeNs, 'link', 'show', 'br0')) as {
          linkinfo: { info_data: { mcast_snooping: number } };
        }[]
      )[0].linkinfo.info_data.mcast_snooping;
    expect(snooping()).toBe(1);
    node.setBridgeOptions(br.index, { mcastSnooping: false });
    expect(snooping()).toBe(0);
    node.setBridgeOptions(br.index, { mcastSnooping: true });
    expect(snooping()).toBe(1);
  });

  it('adds, lists and deletes IPv4 and IPv6 addresses and routes', () => {
    const eth0 = pod.mustLink('eth0');
    pod.addAddress(eth0.index, '10.9.0.5/24');
    pod.addAddress(eth0.index, 'fd00:9::5/64', { nodad: true });
    const addrs = pod.listAddresses(eth0.index).map((a) => a.cidr);
    expect(addrs).toEqual(expect.arrayContaining(['10.9.0.5/24', 'fd00:9::5/64']));
    expect(ip('-n', podNs, '-6', 'addr', 'show', 'dev', 'eth0')).toMatch(/fd00:9::5\/64 scope global nodad/);

    pod.addRoute({ dst: '0.0.0.0/0', gateway: '10.9.0.1', oif: eth0.index });
    pod.addRoute({ dst: '10.77.0.0/16', gateway: '10.9.0.1', oif: eth0.index, mtu: 1300 });
    const routes = pod.listRoutes(4);
    expect(routes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: '0.0.0.0/0', gateway: '10.9.0.1', oif: eth0.index }),
        expect.objectContaining({ dst: '10.77.0.0/16', mtu: 1300 }),
      ]),
    );
    expect(ip('-n', podNs, 'route', 'show', 'default')).toContain('via 10.9.0.1 dev eth0');
    expect(pod.deleteRoute({ dst: '10.77.0.0/16', gateway: '10.9.0.1', oif: eth0.index })).toBe(true);
    expect(pod.deleteRoute({ dst: '10.77.0.0/16', gateway: '10.9.0.1', oif: eth0.index })).toBe(false);

    expect(pod.deleteAddress(eth0.index, '10.9.0.5/24')).toBe(true);
    expect(pod.deleteAddress(eth0.index, '10.9.0.5/24')).toBe(false);
  });

  it('renames and deletes links; deleting one end of a veth removes both', () => {
    const host = node.mustLink('hostv0');
    node.setLink(host.index, { up: false });
    node.setLink(host.index, { name: 'hostv1' });
    expect(node.linkByName('hostv0')).toBeUndefined();
    expect(node.deleteLink(host.index)).toBe(true);
    expect(node.deleteLink(host.index)).toBe(false);
    expect(pod.linkByName('eth0')).toBeUndefined();
    expect(node.deleteLinkByName('nope0')).toBe(false);
  });

  it('deletes a veth pair from a worker thread, and reports a link already gone', async () => {
    node.createVeth({ name: 'async0', peer: { name: 'async1', netns: nsPath(podNs) } });
    expect(await node.deleteLinkByNameAsync('async0')).toBe(true);
    expect(node.linkByName('async0')).toBeUndefined();
    expect(pod.linkByName('async1')).toBeUndefined();
    expect(await node.deleteLinkByNameAsync('async0')).toBe(false);
  });

  it('reports an error for a bad request as a NetlinkError with errno', () => {
    let err: unknown;
    try {
      pod.addAddress(999999, '10.1.1.1/24');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkError);
    expect((err as NetlinkError).message).toMatch(/add address 10.1.1.1\/24 to link #999999: ENODEV/);
  });
});
