// The agent's keys for wire format version 2 (docs/wire-format.md "Keys", "Rotation"): its own X25519
// key pairs, the public keys the other nodes publish, and one pair state per (own key, peer key):
// the two direction keys, the next sequence number to send and the replay window of what was
// received. A rotation keeps the previous own key (and a peer's previous key) for a grace period,
// so datagrams in flight and peers that have not yet seen the new key keep working; after the grace
// the old epoch is refused. Everything is bounded: at most two keys per node, four pairs per peer.
import type { Logger } from '../../log/log.js';
import type { NodeRecord, WireKeyRecord } from '../../lookup/port.js';
import { err, fieldError, ok, type Result } from '../../frame/result.js';
import {
  derivePairKeys,
  generateNodeKeyPair,
  parsePublicKey,
  ReplayWindow,
  WIRE_VERSION_2,
  type NodeKeyPair,
  type PairSeal,
  type PeerPublicKey,
  type ReplayVerdict,
  type SealInfo,
  type SipKey,
  type WireError,
} from '../../wire/index.js';
import { errorMessage } from '../../base/errors.js';

/** A pair key's state: seals what goes to the peer, opens what comes from it. */
export class PairState implements PairSeal {
  readonly window = new ReplayWindow();
  /** The peer sent under this pair: it knows our key, so we may send with it. */
  heard = false;
  private seq = 0;

  constructor(
    readonly key: SipKey,
    readonly rx: SipKey,
    readonly senderEpoch: number,
    readonly receiverEpoch: number,
  ) {}

  nextSeq(): number {
    return this.seq++;
  }
}

interface OwnKey extends NodeKeyPair {
  createdAt: number;
  retiredAt?: number;
}

interface PeerKey extends PeerPublicKey {
  retiredAt?: number;
}

export interface KeyringOptions {
  node: string;
  /** How long a replaced key (ours or a peer's) is still accepted. */
  graceMs: number;
  now?: () => number;
  log?: Logger;
}

const KEYS_KEPT = 2;

export class Keyring {
  /** Newest first. */
  private own: OwnKey[] = [];
  /** Peers that advertise version 2 with a valid key, newest key first. */
  private readonly peers = new Map<string, PeerKey[]>();
  /** `peer|ownEpoch|peerEpoch` -> pair state; null: the peer's key does not derive (logged once). */
  private readonly pairs = new Map<string, PairState | null>();
  private readonly now: () => number;

  constructor(private readonly o: KeyringOptions) {
    this.now = o.now ?? Date.now;
    this.rotate();
  }

  /** What this node publishes in its record. */
  advertised(): WireKeyRecord {
    const k = this.own[0]!;
    return { epoch: k.epoch, publicKey: k.publicKey.toString('base64') };
  }

  /** A new key pair; the previous one stays accepted for the grace period. Returns the new record. */
  rotate(): WireKeyRecord {
    const now = this.now();
    const epoch = Math.max(Math.floor(now / 1000), (this.own[0]?.epoch ?? 0) + 1) >>> 0;
    if (this.own[0]) this.own[0].retiredAt = now;
    this.own = [{ ...generateNodeKeyPair(epoch), createdAt: now }, ...this.own].slice(0, KEYS_KEPT);
    this.prune();
    return this.advertised();
  }

  /** Follows the directory's node records: who speaks version 2, with which key. */
  setPeers(nodes: readonly NodeRecord[]): void {
    const now = this.now();
    const seen = new Set<string>();
    for (const n of nodes) {
      if (n.name === this.o.node || (n.wireVersion ?? 1) < WIRE_VERSION_2 || !n.wireKey) continue;
      const publicKey = parsePublicKey(n.wireKey.publicKey);
      if (publicKey instanceof Error) {
        this.o.log?.warn('node record with an unusable key: not spoken to in version 2', {
          node: n.name,
          error: publicKey.message,
        });
        continue;
      }
      seen.add(n.name);
      const keys = this.peers.get(n.name) ?? [];
      const current = keys[0];
      if (current?.epoch === n.wireKey.epoch) {
        if (current.publicKey.equals(publicKey)) continue;
        // The same epoch with another key: the peer restarted within a second; its old key is gone.
        this.peers.set(n.name, [{ epoch: n.wireKey.epoch, publicKey }]);
        for (const id of this.pairs.keys()) if (id.startsWith(`${n.name}|`)) this.pairs.delete(id);
        continue;
      }
      if (current) current.retiredAt ??= now;
      this.peers.set(n.name, [{ epoch: n.wireKey.epoch, publicKey }, ...keys].slice(0, KEYS_KEPT));
    }
    for (const name of this.peers.keys()) if (!seen.has(name)) this.peers.delete(name);
    this.prune();
  }

  /** Whether `peer` advertises version 2: it must be sent version 2 and is not heard in version 1. */
  speaksV2(peer: string): boolean {
    return this.peers.has(peer);
  }

  /**
   * How to seal a datagram to `peer`: undefined when the peer does not speak version 2. Our newest
   * key once the peer has used it, or once the grace period's first quarter has passed (the peer has
   * seen our new record by then); until then the previous one, which the peer surely knows.
   */
  sealFor(peer: string): PairState | undefined {
    const theirs = this.peers.get(peer)?.[0];
    if (!theirs) return undefined;
    const [newest, previous] = this.own;
    const fresh = this.pair(peer, newest!, theirs);
    if (
      !previous ||
      !this.live(previous) ||
      fresh?.heard ||
      this.now() - newest!.createdAt >= this.o.graceMs / 4
    )
      return fresh;
    return this.pair(peer, previous, theirs) ?? fresh;
  }

  /** The pair state a datagram from `peer` with these epochs was sealed under, or why there is none. */
  open(peer: string, info: SealInfo): Result<PairState, WireError> {
    const theirs = this.peers.get(peer);
    if (!theirs) return err(fieldError('unknown-key', 'sender_epoch', `${peer} publishes no version 2 key`));
    const mine = this.own.find((k) => k.epoch === info.receiverEpoch && this.live(k));
    if (!mine) return err(this.epochError('receiver_epoch', info.receiverEpoch, this.own[0]!.epoch));
    const their = theirs.find((k) => k.epoch === info.senderEpoch && this.live(k));
    if (!their) return err(this.epochError('sender_epoch', info.senderEpoch, theirs[0]!.epoch));
    const p = this.pair(peer, mine, their);
    return p ? ok(p) : err(fieldError('unknown-key', 'sender_epoch', `${peer}'s key does not derive`));
  }

  /** After the tag verified: records the sequence number, and that the peer uses this pair. */
  admit(pair: PairState, seq: number): ReplayVerdict {
    const v = pair.window.admit(seq);
    if (v === 'ok') pair.heard = true;
    return v;
  }

  private epochError(field: string, epoch: number, newest: number): WireError {
    return epoch < newest
      ? fieldError('stale-key', field, `epoch ${epoch} was replaced and its grace period is over`)
      : fieldError('unknown-key', field, `epoch ${epoch} is not a key this node knows`);
  }

  private live(k: { retiredAt?: number }): boolean {
    return k.retiredAt === undefined || this.now() - k.retiredAt < this.o.graceMs;
  }

  private pair(peer: string, mine: OwnKey, theirs: PeerKey): PairState | undefined {
    const id = `${peer}|${mine.epoch}|${theirs.epoch}`;
    let p = this.pairs.get(id);
    if (p === undefined) {
      try {
        const k = derivePairKeys(this.o.node, mine, peer, theirs);
        p = new PairState(k.tx, k.rx, mine.epoch, theirs.epoch);
      } catch (e) {
        this.o.log?.warn('cannot derive a pair key', { node: peer, error: errorMessage(e) });
        p = null;
      }
      this.pairs.set(id, p);
    }
    return p ?? undefined;
  }

  /** Forgets keys past their grace and the pair states that used them. */
  private prune(): void {
    this.own = this.own.filter((k) => this.live(k));
    for (const [name, keys] of this.peers)
      this.peers.set(
        name,
        keys.filter((k) => this.live(k)),
      );
    for (const id of this.pairs.keys()) {
      const [peer, mine, theirs] = id.split('|');
      if (
        !this.own.some((k) => String(k.epoch) === mine) ||
        !this.peers.get(peer!)?.some((k) => String(k.epoch) === theirs)
      )
        this.pairs.delete(id);
    }
  }
}
