// The floating-point "code" encodings of IGMPv3 (RFC 9776 4.1.1, 4.1.7) and MLDv2 (RFC 9777 5.1.3).

/** IGMPv3 Max Resp Code / QQIC: below 128 the value itself, else 1|exp(3)|mant(4) = (mant|0x10) << (exp+3). */
export function encodeCode8(value: number): number {
  const v = Math.max(0, Math.floor(value));
  if (v < 128) return v;
  for (let exp = 0; exp < 8; exp++) {
    const mant = (v >> (exp + 3)) - 0x10;
    if (mant >= 0 && mant < 0x10) return 0x80 | (exp << 4) | mant;
  }
  return 0xff; // the largest representable value (31744)
}

export function decodeCode8(code: number): number {
  return code < 128 ? code : ((code & 0x0f) | 0x10) << (((code >> 4) & 0x07) + 3);
}

/** MLDv2 Maximum Response Code (ms): below 32768 the value, else 1|exp(3)|mant(12). */
export function encodeCode16(value: number): number {
  const v = Math.max(0, Math.floor(value));
  if (v < 32768) return v;
  for (let exp = 0; exp < 8; exp++) {
    const mant = Math.floor(v / 2 ** (exp + 3)) - 0x1000;
    if (mant >= 0 && mant < 0x1000) return 0x8000 | (exp << 12) | mant;
  }
  return 0xffff;
}

export function decodeCode16(code: number): number {
  return code < 32768 ? code : ((code & 0x0fff) | 0x1000) * 2 ** (((code >> 12) & 0x07) + 3);
}
