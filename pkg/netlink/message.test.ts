import fc from 'fast-check';
import { NLA_F_NESTED, NLMSG_ERROR, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSGERR_ATTR_MSG } from './constants.js';
import { attr, encodeAttrs, encodeMessage, parseAttrs, parseError, parseMessages } from './message.js';

describe('netlink attributes', () => {
  it('encodes TLVs with 4-byte alignment, NUL-terminated strings and nesting', () => {
    expect(encodeAttrs([attr.str(3, 'eth0')])).toEqual(
      Buffer.from([9, 0, 3, 0, 0x65, 0x74, 0x68, 0x30, 0, 0, 0, 0]),
    );
    expect(encodeAttrs([attr.u32(4, 1400)])).toEqual(Buffer.from([8, 0, 4, 0, 0x78, 0x05, 0, 0]));
    expect(encodeAttrs([attr.nested(12, [attr.u8(8, 0)])])).toEqual(
      Buffer.from([12, 0, 12, 0x80, 5, 0, 8, 0, 0, 0, 0, 0]),
    );
  });

  it('parses back what it encodes, masking the nested flag', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ type: fc.integer({ min: 1, max: 0x3fff }), value: fc.uint8Array({ maxLength: 40 }) }),
          {
            maxLength: 8,
          },
        ),
        (list) => {
          const unique = [...new Map(list.map((a) => [a.type, a])).values()];
          const parsed = parseAttrs(
            encodeAttrs(unique.map((a) => attr.bytes(a.type | NLA_F_NESTED, Buffer.from(a.value)))),
          );
          expect([...parsed.keys()]).toEqual(unique.map((a) => a.type));
          for (const a of unique) expect([...(parsed.get(a.type) ?? [])]).toEqual([...a.value]);
        },
      ),
    );
  });

  it('stops at a truncated attribute instead of reading past the buffer', () => {
    const b = encodeAttrs([attr.u32(1, 7), attr.u32(2, 9)]);
    expect([...parseAttrs(b.subarray(0, 10)).keys()]).toEqual([1]);
  });
});

describe('netlink messages', () => {
  it('encodes the header (length without padding) and splits a datagram into messages', () => {
    const m = encodeMessage({ type: 16, flags: 0x405, seq: 7, pid: 0 }, Buffer.from([1, 2, 3]));
    expect(m.readUInt32LE(0)).toBe(19);
    expect(m.length).toBe(20);
    const two = parseMessages(
      Buffer.concat([m, encodeMessage({ type: 3, flags: 2, seq: 8, pid: 5 }, Buffer.alloc(4))]),
    );
    expect(two.map((x) => [x.type, x.flags, x.seq, x.pid, x.payload.length])).toEqual([
      [16, 0x405, 7, 0, 3],
      [3, 2, 8, 5, 4],
    ]);
    expect(() => parseMessages(m.subarray(0, 17))).toThrow(/truncated/);
  });

  it('reads errno and the extended-ACK message from an NLMSG_ERROR', () => {
    const payload = Buffer.alloc(4 + 16);
    payload.writeInt32LE(-17, 0);
    payload.writeUInt32LE(40, 4); // the original request's header, capped
    const tlv = encodeAttrs([attr.str(NLMSGERR_ATTR_MSG, 'File exists')]);
    const m = {
      type: NLMSG_ERROR,
      flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
      seq: 1,
      pid: 0,
      payload: Buffer.concat([payload, tlv]),
    };
    expect(parseError(m)).toEqual({ errno: 17, message: 'File exists' });
    expect(parseError({ ...m, flags: 0, payload: Buffer.alloc(20) })).toEqual({ errno: 0 });
  });
});
