import { CniErrorCode } from './types.js';
import { cniErrorOf } from '../../test/harness/cni-error.js';
import { decodeStdin, parseNetConf, parseValidAttachments, requestedMac, resolveVersion } from './netconf.js';

const base = { cniVersion: '1.1.0', name: 'blue', type: 'castnet' };

describe('parseNetConf', () => {
  it('fills defaults: network from name, the agent socket path', () => {
    const conf = parseNetConf({ ...base });
    expect(conf).toMatchObject({
      cniVersion: '1.1.0',
      network: 'blue',
      agentSocket: '/run/castnet/agent.sock',
    });
    expect(conf.raw).toEqual(base);
  });

  it('keeps what the user set, normalizing the MAC', () => {
    const conf = parseNetConf({
      ...base,
      network: 'tenant-a',
      agentSocket: '/tmp/a.sock',
      mtu: 1400,
      ipam: { type: 'host-local', ranges: [] },
      capabilities: { mac: true },
      runtimeConfig: { mac: '0A:00:00:00:00:01' },
    });
    expect(conf).toMatchObject({
      network: 'tenant-a',
      agentSocket: '/tmp/a.sock',
      mtu: 1400,
      ipam: { type: 'host-local', ranges: [] },
      runtimeConfig: { mac: '0a:00:00:00:00:01' },
    });
  });

  it.each([
    [{ ...base, name: undefined }, CniErrorCode.InvalidConfig, 'name: is required'],
    [{ ...base, name: 7 }, CniErrorCode.InvalidConfig, 'name: must be a string, not number 7'],
    [{ ...base, name: '-x' }, CniErrorCode.InvalidConfig, 'name: must start with a letter or digit'],
    [{ ...base, type: 'bridge' }, CniErrorCode.InvalidConfig, 'type: must be "castnet" (got "bridge")'],
    [{ ...base, mtu: 20 }, CniErrorCode.InvalidConfig, 'mtu: must be >= 68 (got 20)'],
    [{ ...base, mtu: 70000 }, CniErrorCode.InvalidConfig, 'mtu: must be <= 65535 (got 70000)'],
    [{ ...base, mtu: 1500.5 }, CniErrorCode.InvalidConfig, 'mtu: must be an integer'],
    [{ ...base, ipam: {} }, CniErrorCode.InvalidConfig, 'ipam.type: is required'],
    [{ ...base, ipam: 'host-local' }, CniErrorCode.InvalidConfig, 'ipam: must be an object'],
    [
      { ...base, agentSocket: 'run/x.sock' },
      CniErrorCode.InvalidConfig,
      'agentSocket: must be an absolute path',
    ],
    [
      { ...base, runtimeConfig: { mac: 'zz' } },
      CniErrorCode.InvalidMac,
      'runtimeConfig.mac: "zz" is not a MAC address',
    ],
    [
      { ...base, runtimeConfig: { mac: '01:00:5e:00:00:01' } },
      CniErrorCode.InvalidMac,
      'runtimeConfig.mac: "01:00:5e:00:00:01" is a multicast MAC address',
    ],
    [
      { ...base, runtimeConfig: { mac: 5 } },
      CniErrorCode.InvalidConfig,
      'runtimeConfig.mac: must be a string',
    ],
    [
      { ...base, prevResult: { ips: [{}] } },
      CniErrorCode.InvalidConfig,
      'prevResult.ips[0].address: is required',
    ],
    [
      { ...base, cniVersion: '0.3.1' },
      CniErrorCode.IncompatibleVersion,
      'cniVersion: "0.3.1" is not supported',
    ],
    [{ ...base, cniVersion: undefined }, CniErrorCode.InvalidConfig, 'cniVersion: is required'],
  ])('rejects %j with code %d naming the field', (raw, code, msg) => {
    const err = cniErrorOf(() => parseNetConf(raw as Record<string, unknown>));
    expect(err.code).toBe(code);
    expect(err.message).toContain(msg);
  });

  it('reads allowed address pairs from args.cni (Multus cni-args), canonical', () => {
    const pairs = [{ ipAddress: '10.40.200.1' }, { ipAddress: 'FD00:0::64' }];
    expect(parseNetConf({ ...base, args: { cni: { allowedAddressPairs: pairs, other: 1 } } })).toMatchObject({
      allowedAddresses: ['10.40.200.1', 'fd00::64'],
    });
    expect(parseNetConf({ ...base }).allowedAddresses).toEqual([]);
  });

  it.each([
    [[{ ipAddress: 'vip' }], 'args.cni.allowedAddressPairs[0].ipAddress: "vip" is not an IP address'],
    [
      [{ ipAddress: '10.0.0.0/24' }],
      'allowedAddressPairs[0].ipAddress: "10.0.0.0/24" must be an address without a prefix',
    ],
    [
      [{ ipAddress: '10.0.0.1', macAddress: '02:00:00:00:00:01' }],
      'allowedAddressPairs[0]: unknown field(s) "macAddress"',
    ],
    [[{}], 'allowedAddressPairs[0].ipAddress: is required'],
    ['10.0.0.1', 'args.cni.allowedAddressPairs: must be an array'],
    [
      [{ ipAddress: '10.0.0.1' }, { ipAddress: '10.0.0.1' }],
      'allowedAddressPairs: must not list an address twice',
    ],
    [
      Array.from({ length: 11 }, (_, i) => ({ ipAddress: `10.0.0.${i + 1}` })),
      'args.cni.allowedAddressPairs: must be <= 10',
    ],
  ])('rejects allowedAddressPairs %j naming the entry', (pairs, msg) => {
    const err = cniErrorOf(() => parseNetConf({ ...base, args: { cni: { allowedAddressPairs: pairs } } }));
    expect(err.code).toBe(CniErrorCode.InvalidConfig);
    expect(err.message).toContain(msg);
  });

  it('converts a 0.4.0 prevResult into the internal form', () => {
    const conf = parseNetConf({
      ...base,
      cniVersion: '0.4.0',
      prevResult: {
        cniVersion: '0.4.0',
        interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }],
        ips: [{ version: '4', address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 0 }],
        routes: [{ dst: '0.0.0.0/0' }],
      },
    });
    expect(conf.prevResult).toEqual({
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }],
      ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0' }],
    });
  });
});

describe('resolveVersion', () => {
  it('takes the highest supported entry of a cniVersions list', () => {
    expect(resolveVersion(undefined, ['0.3.1', '1.0.0', '0.4.0', '2.0.0'])).toBe('1.0.0');
  });
  it('rejects a list with no supported version with code 1', () => {
    expect(cniErrorOf(() => resolveVersion(undefined, ['0.2.0'])).code).toBe(
      CniErrorCode.IncompatibleVersion,
    );
  });
});

describe('decodeStdin', () => {
  it.each(['', '{', 'null', '[1]', '"x"'])('rejects %j with code 6', (text) => {
    const err = cniErrorOf(() => decodeStdin(text));
    expect(err.code).toBe(CniErrorCode.DecodeFailure);
    expect(err.message).toMatch(/^stdin: /);
  });
});

describe('parseValidAttachments', () => {
  it('reads cni.dev/valid-attachments', () => {
    expect(
      parseValidAttachments({ 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] }),
    ).toEqual([{ containerId: 'c1', ifname: 'eth0' }]);
  });
  it('treats an absent list as "none is valid" and reads the early-draft key', () => {
    expect(parseValidAttachments({})).toEqual([]);
    expect(parseValidAttachments({ 'cni.dev/attachments': [{ containerID: 'c2', ifname: 'net1' }] })).toEqual(
      [{ containerId: 'c2', ifname: 'net1' }],
    );
  });
  it('names the bad entry', () => {
    const err = cniErrorOf(() =>
      parseValidAttachments({ 'cni.dev/valid-attachments': [{ containerID: 'c1' }] }),
    );
    expect(err.message).toContain('cni.dev/valid-attachments[0].ifname: is required');
  });
});

describe('requestedMac', () => {
  it('prefers runtimeConfig.mac over CNI_ARGS MAC', () => {
    const conf = parseNetConf({ ...base, runtimeConfig: { mac: '02:00:00:00:00:01' } });
    expect(requestedMac(conf, { MAC: '02:00:00:00:00:02' })).toBe('02:00:00:00:00:01');
    expect(requestedMac(parseNetConf(base), { MAC: '02:00:00:00:00:02' })).toBe('02:00:00:00:00:02');
  });
});
