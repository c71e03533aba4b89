import { CniError, CniErrorCode } from '../cni/types.js';
import { checkAllowedAddresses } from './allowed-addresses.js';

const network = {
  name: 'blue',
  id: 1,
  subnets: ['10.40.0.0/16', 'fd00::/64'],
  mtu: 1400,
  multicast: true,
  broadcast: true,
};

describe('checkAllowedAddresses', () => {
  it('accepts addresses inside the network’s subnets', () => {
    expect(() => checkAllowedAddresses(['10.40.200.1', 'fd00::64'], network)).not.toThrow();
    expect(() => checkAllowedAddresses([], network)).not.toThrow();
  });

  it('refuses an address outside them, naming the entry and the subnets', () => {
    let err: unknown;
    try {
      checkAllowedAddresses(['10.40.200.1', '192.168.1.1'], network);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(CniErrorCode.InvalidConfig);
    expect((err as CniError).message).toBe(
      'args.cni.allowedAddressPairs[1].ipAddress: 192.168.1.1 is not in a subnet of network "blue" (10.40.0.0/16, fd00::/64)',
    );
  });
});
