import { formatResult } from './result.js';
import type { CniResult } from './types.js';

const result: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cn1a2b', mac: '02:00:00:00:00:01', mtu: 1400 },
    { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1400, sandbox: '/var/run/netns/p' },
  ],
  ips: [
    { address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 1 },
    { address: 'fd00::5/64', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400 }],
  dns: {},
};

describe('formatResult', () => {
  it('renders 1.1.0 as is', () => {
    expect(formatResult(result, '1.1.0')).toEqual(result);
  });

  it('drops the 1.1-only interface and route fields for 1.0.0', () => {
    const out = formatResult(result, '1.0.0') as unknown as CniResult;
    expect(out.cniVersion).toBe('1.0.0');
    expect(out.interfaces?.[1]).toEqual({
      name: 'eth0',
      mac: '02:00:00:00:00:02',
      sandbox: '/var/run/netns/p',
    });
    expect(out.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.1.0.1' }]);
    expect(out.ips).toEqual(result.ips);
  });

  it('adds each IP version for 0.4.0', () => {
    const out = formatResult(result, '0.4.0') as { ips: Array<{ version: string }> };
    expect(out.ips.map((ip) => ip.version)).toEqual(['4', '6']);
  });
});
