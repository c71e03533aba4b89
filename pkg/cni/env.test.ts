import { parseCniArgs, parseEnv, podFromArgs } from './env.js';
import { CniErrorCode } from './types.js';
import { cniErrorOf } from '../../test/harness/cni-error.js';

const add = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/p1', CNI_IFNAME: 'eth0' };

describe('parseEnv', () => {
  it('accepts a complete ADD', () => {
    expect(parseEnv({ ...add, CNI_PATH: '/opt/cni/bin' })).toEqual({
      command: 'ADD',
      containerId: 'c1',
      netns: '/var/run/netns/p1',
      ifname: 'eth0',
      args: {},
      cniPath: '/opt/cni/bin',
    });
  });

  it('lets DEL go without a netns, and STATUS/GC without anything', () => {
    expect(parseEnv({ ...add, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }).netns).toBe('');
    expect(parseEnv({ CNI_COMMAND: 'STATUS' }).command).toBe('STATUS');
    expect(parseEnv({ CNI_COMMAND: 'GC' }).command).toBe('GC');
  });

  it.each([
    [{ ...add, CNI_COMMAND: undefined }, 'CNI_COMMAND: required but not set'],
    [{ ...add, CNI_COMMAND: 'UPDATE' }, 'CNI_COMMAND: unknown command "UPDATE"'],
    [{ ...add, CNI_CONTAINERID: undefined }, 'CNI_CONTAINERID: required for ADD'],
    [{ ...add, CNI_NETNS: '' }, 'CNI_NETNS: required for ADD'],
    [{ ...add, CNI_COMMAND: 'CHECK', CNI_IFNAME: undefined }, 'CNI_IFNAME: required for CHECK'],
    [{ ...add, CNI_COMMAND: 'DEL', CNI_IFNAME: undefined }, 'CNI_IFNAME: required for DEL'],
    [{ ...add, CNI_CONTAINERID: '-bad' }, 'CNI_CONTAINERID: "-bad" must start with a letter or digit'],
    [
      { ...add, CNI_IFNAME: 'averyveryverylongname' },
      'CNI_IFNAME: "averyveryverylongname" is longer than 15',
    ],
    [{ ...add, CNI_IFNAME: 'eth 0' }, 'CNI_IFNAME: "eth 0" must not contain'],
    [{ ...add, CNI_NETNS: 'netns/p1' }, 'CNI_NETNS: "netns/p1" must be an absolute path'],
  ])('rejects %j with code 4 naming the variable', (env, msg) => {
    const err = cniErrorOf(() => parseEnv(env));
    expect(err.code).toBe(CniErrorCode.InvalidEnvironment);
    expect(err.message).toContain(msg);
  });
});

describe('parseCniArgs', () => {
  it('reads containerd pod arguments and the MAC', () => {
    const args = parseCniArgs(
      'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u1;MAC=0A:00:00:00:00:09',
    );
    expect(args).toEqual({
      IgnoreUnknown: '1',
      K8S_POD_NAMESPACE: 'ns',
      K8S_POD_NAME: 'p',
      K8S_POD_INFRA_CONTAINER_ID: 'abc',
      K8S_POD_UID: 'u1',
      MAC: '0a:00:00:00:00:09',
    });
    expect(podFromArgs(args)).toEqual({ namespace: 'ns', name: 'p', uid: 'u1' });
  });

  it('rejects unknown keys with code 2 unless IgnoreUnknown is true', () => {
    const err = cniErrorOf(() => parseCniArgs('FOO=bar'));
    expect(err.code).toBe(CniErrorCode.UnsupportedField);
    expect(err.message).toContain('CNI_ARGS: unknown key "FOO"');
    expect(parseCniArgs('FOO=bar;IgnoreUnknown=true')).toEqual({ IgnoreUnknown: 'true' });
    expect(cniErrorOf(() => parseCniArgs('FOO=bar;IgnoreUnknown=0')).code).toBe(
      CniErrorCode.UnsupportedField,
    );
  });

  it('rejects a pair without "=" and a multicast MAC', () => {
    expect(cniErrorOf(() => parseCniArgs('K8S_POD_NAME')).message).toContain(
      '"K8S_POD_NAME" is not a KEY=VALUE pair',
    );
    const mac = cniErrorOf(() => parseCniArgs('MAC=03:00:00:00:00:01'));
    expect(mac.code).toBe(CniErrorCode.InvalidMac);
    expect(mac.message).toContain('CNI_ARGS: MAC: "03:00:00:00:00:01" is a multicast MAC address');
  });

  it('keeps "=" inside values', () => {
    expect(parseCniArgs('K8S_POD_NAME=a=b').K8S_POD_NAME).toBe('a=b');
  });
});
