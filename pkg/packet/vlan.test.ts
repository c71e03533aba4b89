import { VNET_HDR_LEN } from '../frame/vnet.js';
import { encodeVnetHeader, parseVnetHeader } from '../../test/harness/vnet.js';
import { withVlanTag } from './vlan.js';

function frame(flags: number, gsoType: number): Buffer {
  const vnet = encodeVnetHeader({ flags, gsoType, hdrLen: 42, gsoSize: 0, csumStart: 34, csumOffset: 6 });
  const eth = Buffer.from('01005e000001' + '020000000001' + '0800' + 'aabbcc', 'hex');
  return Buffer.concat([vnet, eth]);
}

describe('withVlanTag', () => {
  it('inserts the tag after the MAC addresses and keeps the rest', () => {
    const out = withVlanTag(frame(0, 0), 0x200a);
    expect(out.subarray(VNET_HDR_LEN).toString('hex')).toBe(
      '01005e000001020000000001' + '8100200a' + '0800aabbcc',
    );
  });

  it('uses the tag protocol it is given (802.1ad)', () => {
    expect(
      withVlanTag(frame(0, 0), 5, 0x88a8)
        .subarray(VNET_HDR_LEN + 12, VNET_HDR_LEN + 16)
        .toString('hex'),
    ).toBe('88a80005');
  });

  it('moves the checksum start and GSO header length by the tag, and only when they are in use', () => {
    const plain = parseVnetHeader(withVlanTag(frame(0, 0), 1));
    const offloaded = parseVnetHeader(withVlanTag(frame(1, 1), 1));
    expect(plain.ok && [plain.value.csumStart, plain.value.hdrLen]).toEqual([34, 42]);
    expect(offloaded.ok && [offloaded.value.csumStart, offloaded.value.hdrLen]).toEqual([38, 46]);
  });

  it('refuses a frame too short to tag', () => {
    expect(() => withVlanTag(Buffer.alloc(20), 1)).toThrow(
      'frame of 20 bytes: too short to carry a VLAN tag',
    );
  });
});
