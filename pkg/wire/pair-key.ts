// Keys of wire format version 2 (docs/wire-format.md "Keys"): every node has an X25519 key pair and
// publishes the public half in its node record; two nodes derive their pair keys without a message
// exchange, X25519 then HKDF-SHA256 with both node names, both epochs and both public keys in the
// info, one key per direction (so a datagram cannot be reflected back to its sender).
import { createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { SIPHASH_KEY_LEN, SipKey } from './siphash.js';

export const PUBLIC_KEY_LEN = 32;
const SALT = Buffer.from('castnet wire v2');
const LABEL = Buffer.from('castnet pair key');

/** One generation of a node's key pair; `epoch` names it in datagram headers and node records. */
export interface NodeKeyPair {
  epoch: number;
  privateKey: KeyObject;
  /** The raw 32-byte public key, as published. */
  publicKey: Buffer;
}

/** A peer's published key. */
export interface PeerPublicKey {
  epoch: number;
  publicKey: Buffer;
}

export function generateNodeKeyPair(epoch: number): NodeKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const jwk = publicKey.export({ format: 'jwk' });
  return { epoch, privateKey, publicKey: Buffer.from(jwk.x!, 'base64url') };
}

/** A published public key (base64 of the raw 32 bytes), or an Error naming what is wrong. */
export function parsePublicKey(text: string): Buffer | Error {
  const raw = Buffer.from(text, 'base64');
  if (raw.length !== PUBLIC_KEY_LEN || raw.toString('base64') !== text)
    return new Error(`publicKey: not the base64 of ${PUBLIC_KEY_LEN} bytes`);
  return raw;
}

function lengthPrefixed(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** The key of datagrams from `from` to `to`, given the X25519 secret the two share. */
function directionKey(
  shared: Buffer,
  from: { name: string; epoch: number; publicKey: Buffer },
  to: { name: string; epoch: number; publicKey: Buffer },
): SipKey {
  const info = Buffer.concat([
    LABEL,
    lengthPrefixed(from.name),
    lengthPrefixed(to.name),
    u32(from.epoch),
    u32(to.epoch),
    from.publicKey,
    to.publicKey,
  ]);
  return new SipKey(Buffer.from(hkdfSync('sha256', shared, SALT, info, SIPHASH_KEY_LEN)));
}

/**
 * The pair keys of this node (`own`, key pair `mine`) and `peer` (its published key): `tx` seals
 * what this node sends to the peer, `rx` opens what the peer sends here. Throws on a public key that
 * is not a valid X25519 point or gives an all-zero secret (a low-order point).
 */
export function derivePairKeys(
  own: string,
  mine: NodeKeyPair,
  peer: string,
  theirs: PeerPublicKey,
): { tx: SipKey; rx: SipKey } {
  const publicKey = createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: theirs.publicKey.toString('base64url') },
    format: 'jwk',
  });
  const shared = diffieHellman({ privateKey: mine.privateKey, publicKey });
  if (shared.every((x) => x === 0)) throw new Error(`public key of ${peer}: a low-order point`);
  const me = { name: own, epoch: mine.epoch, publicKey: mine.publicKey };
  const them = { name: peer, epoch: theirs.epoch, publicKey: theirs.publicKey };
  return { tx: directionKey(shared, me, them), rx: directionKey(shared, them, me) };
}
