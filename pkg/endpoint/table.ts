// The node's endpoint table: every attachment castnet wired (or is wiring), persisted in the state
// directory. It is the write-ahead log of ADD and the source of truth for castnet IPAM: an address is
// in use exactly when a record holds it.
import { join } from 'node:path';
import type { DelegateCall } from '../ipam/delegate';
import type { EndpointRecord, PodRef, VmRef } from '../lookup/port';
import type { Attachment } from './manager';
import { AtomicJsonFile } from './atomic-file';

/** "adding": intent recorded, wiring in progress (or crashed). "ready": ADD succeeded. */
export type EndpointState = 'adding' | 'ready';

export type IpamRecord = { type: 'castnet' } | { type: 'delegate'; call: DelegateCall };

export interface Endpoint extends Attachment {
  /** Unique on this node; allocated monotonically, reused only after 2^32 allocations. */
  endpointId: number;
  state: EndpointState;
  network: string;
  netns: string;
  hostIfname: string;
  /** Known once the veth exists. */
  hostIfindex?: number;
  mac: string;
  mtu: number;
  /** Addresses on the container interface, address/prefix. */
  ips: string[];
  ipam: IpamRecord;
  pod?: PodRef;
  vm?: VmRef;
  createdAt: string;
}

export type EndpointEvent = { type: 'ready' | 'removed'; endpoint: Endpoint };
export type EndpointListener = (e: EndpointEvent) => void;

/** Read access to the ready endpoints, for the data plane and lookup publication. */
export interface EndpointSource {
  /** Ready endpoints (copies). */
  endpoints(): Endpoint[];
  /** Calls `fn` when an endpoint becomes ready or a ready one is removed. Returns an unsubscribe. */
  subscribe(fn: EndpointListener): () => void;
}

interface TableFile {
  version: 1;
  nextEndpointId: number;
  /** Last address handed out per castnet pool, so released addresses are not reused at once. */
  cursors: Record<string, string>;
  endpoints: Endpoint[];
}

export const attachmentKey = (a: Attachment): string => `${a.containerId}/${a.ifname}`;

/** The address without its prefix length. */
export const plainIp = (cidr: string): string => cidr.split('/')[0];

export function toEndpointRecord(e: Endpoint, node: string): EndpointRecord {
  const r: EndpointRecord = {
    network: e.network,
    node,
    endpointId: e.endpointId,
    mac: e.mac,
    ips: e.ips.map(plainIp),
  };
  if (e.pod) r.pod = { ...e.pod };
  if (e.vm) r.vm = { ...e.vm };
  return r;
}

const MAX_ID = 0xffffffff;

export class EndpointTable implements EndpointSource {
  private readonly byKey = new Map<string, Endpoint>();
  private nextId = 1;
  readonly cursors = new Map<string, string>();
  private readonly listeners = new Set<EndpointListener>();
  private readonly file: AtomicJsonFile<TableFile>;

  constructor(stateDir: string) {
    this.file = new AtomicJsonFile(join(stateDir, 'endpoints.json'), () => this.snapshot());
    const saved = this.file.read();
    if (saved) {
      if (saved.version !== 1) throw new Error(`${this.file.path}: unknown version ${String(saved.version)}`);
      this.nextId = saved.nextEndpointId;
      for (const [k, v] of Object.entries(saved.cursors)) this.cursors.set(k, v);
      for (const e of saved.endpoints) this.byKey.set(attachmentKey(e), e);
    }
  }

  get(a: Attachment): Endpoint | undefined {
    return this.byKey.get(attachmentKey(a));
  }

  /** Every record, in any state. */
  all(): Endpoint[] {
    return [...this.byKey.values()];
  }

  endpoints(): Endpoint[] {
    return this.all()
      .filter((e) => e.state === 'ready')
      .map((e) => structuredClone(e));
  }

  subscribe(fn: EndpointListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Addresses (plain) that castnet IPAM has handed out on `network`, in any state. */
  usedIps(network: string): Set<string> {
    const used = new Set<string>();
    for (const e of this.byKey.values()) {
      if (e.network === network && e.ipam.type === 'castnet') for (const ip of e.ips) used.add(plainIp(ip));
    }
    return used;
  }

  /** The owner of a castnet-IPAM address on `network`. */
  ownerOf(network: string, ip: string): Endpoint | undefined {
    return this.all().find(
      (e) => e.network === network && e.ipam.type === 'castnet' && e.ips.some((c) => plainIp(c) === ip),
    );
  }

  /** A fresh endpoint ID: the next in sequence not held by a record, skipping 0. */
  allocateId(): number {
    const held = new Set([...this.byKey.values()].map((e) => e.endpointId));
    for (let i = 0; i < MAX_ID; i++) {
      const id = this.nextId;
      this.nextId = id >= MAX_ID ? 1 : id + 1;
      if (!held.has(id)) return id;
    }
    throw new Error('no free endpoint ID');
  }

  /** Inserts or replaces a record; listeners hear when it turns ready. */
  put(e: Endpoint): void {
    const key = attachmentKey(e);
    const before = this.byKey.get(key);
    this.byKey.set(key, e);
    if (e.state === 'ready' && before?.state !== 'ready') this.emit({ type: 'ready', endpoint: e });
  }

  remove(a: Attachment): Endpoint | undefined {
    const key = attachmentKey(a);
    const e = this.byKey.get(key);
    if (!e) return undefined;
    this.byKey.delete(key);
    if (e.state === 'ready') this.emit({ type: 'removed', endpoint: e });
    return e;
  }

  /** Persists the table (atomically; `durable` also fsyncs). Concurrent saves share writes. */
  save(durable: boolean): Promise<void> {
    return this.file.save(durable);
  }

  private emit(ev: EndpointEvent): void {
    const copy: EndpointEvent = { type: ev.type, endpoint: structuredClone(ev.endpoint) };
    for (const fn of this.listeners) {
      try {
        fn(copy);
      } catch {
        // A listener's failure must not break endpoint bookkeeping.
      }
    }
  }

  private snapshot(): TableFile {
    return {
      version: 1,
      nextEndpointId: this.nextId,
      cursors: Object.fromEntries(this.cursors),
      endpoints: this.all(),
    };
  }
}
