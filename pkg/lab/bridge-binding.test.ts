import {
  bindingNames,
  bridgeBindingCommands,
  bridgeBindingScript,
  randomMac,
  shellQuote,
} from './bridge-binding.js';
import { qemuArgs } from './guest.js';

describe('bridge binding commands', () => {
  it("uses KubeVirt's names for the pod interface", () => {
    expect(bindingNames('eth0')).toEqual({ bridge: 'k6t-eth0', nic: 'eth0-nic', tap: 'tap0' });
    expect(bindingNames('net1')).toEqual({ bridge: 'k6t-net1', nic: 'net1-nic', tap: 'tap1' });
  });

  it('renames and enslaves the interface, then makes the tap and the bridge', () => {
    const cmds = bridgeBindingCommands('net1', { mtu: 1400, nicMac: '02:00:00:00:00:01' }).map((c) =>
      c.join(' '),
    );
    expect(cmds[0]).toBe('ip link set net1 down');
    expect(cmds).toContain('ip link set net1 name net1-nic');
    expect(cmds).toContain('ip link add k6t-net1 mtu 1400 type bridge');
    expect(cmds).toContain('ip link set tap1 mtu 1400 master k6t-net1 up');
    expect(cmds).toContain('sysctl -qw net.ipv6.conf.net1-nic.disable_ipv6=1');
    expect(cmds[cmds.length - 1]).toBe('ip link set net1-nic type bridge_slave learning off');
  });

  it('renders a script a POSIX shell runs as is', () => {
    const script = bridgeBindingScript('eth0', { mtu: 1500, nicMac: '02:00:00:00:00:01' });
    expect(script.split('\n')[0]).toBe('set -e');
    expect(script).toContain('\nip link set eth0-nic address 02:00:00:00:00:01\n');
    expect(shellQuote("console=ttyS0 it's")).toBe(`'console=ttyS0 it'\\''s'`);
    expect(shellQuote('tap,id=net0,ifname=tap1')).toBe('tap,id=net0,ifname=tap1');
    const args = qemuArgs(
      { name: 'vm', tap: 'tap1', mac: '02:00:00:00:00:02', addresses: ['10.0.0.2/16'], memoryMiB: 128 },
      'tcg',
      { kernel: '/guest/vmlinuz', initramfs: '/guest/initramfs.gz' },
    );
    expect(args.map(shellQuote).join(' ')).toContain(
      "-append 'console=ttyS0 quiet loglevel=1 panic=-1 castnet.ip=10.0.0.2/16'",
    );
    expect(args).not.toContain('-qmp');
  });

  it('makes locally administered unicast MACs', () => {
    for (let i = 0; i < 20; i++) expect(parseInt(randomMac().slice(0, 2), 16) & 0x03).toBe(0x02);
  });
});
