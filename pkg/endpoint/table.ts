// The node's endpoint table: every attachment castnet wired (or is wiring), persisted in the state
// directory. It is the write-ahead log of ADD and the source of truth for castnet IPAM: an address is
// in use exactly when a record holds it. One file per endpoint keeps each write small however many
// endpoints the node has: <stateDir>/endpoints/<host ifname>.json, plus <stateDir>/endpoint-meta.json
// for the ID sequence and the IPAM cursors.
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DelegateCall } from '../ipam/delegate.js';
import type { EndpointRecord, PodRef, VmRef } from '../lookup/port.js';
import { attachmentKey } from '../cni/types.js';
import type { Attachment } from './manager.js';
import {
  CorruptFileError,
  DeferredSync,
  quarantineFile,
  readJson,
  removeFile,
  writeJsonAtomic,
} from './atomic-file.js';

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
  /** Allowed address pairs: addresses beyond `ips` it may use (canonical, no prefix). */
  allowedAddresses?: string[];
  createdAt: string;
  /**
   * Rebuilt from the kernel after its record was lost (quarantined): the runtime's containerId is
   * unknown, so CNI GC leaves it alone and it is released when its veth goes (DEL, or the pod's netns).
   */
  recovered?: true;
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

interface MetaFile {
  version: 1;
  nextEndpointId: number;
  /** Last address handed out per castnet pool, so released addresses are not reused at once. */
  cursors: Record<string, string>;
}

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
  if (e.allowedAddresses?.length) r.allowedAddresses = [...e.allowedAddresses];
  return r;
}

const MAX_ID = 0xffffffff;

/** A state file moved aside because it could not be used. */
export interface QuarantinedFile {
  file: string;
  movedTo: string;
  reason: string;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= MAX_ID;

/** Why `v` is not the meta file, or undefined. A newer version is not a problem here: it is refused. */
function metaProblem(v: unknown): string | undefined {
  if (!isObject(v)) return 'not a JSON object';
  if (!isId(v.nextEndpointId)) return `nextEndpointId ${JSON.stringify(v.nextEndpointId)} is not an ID`;
  if (!isObject(v.cursors) || !Object.values(v.cursors).every((c) => typeof c === 'string'))
    return 'cursors is not a map of addresses';
  return undefined;
}

/** Why `v` is not the record of the endpoint whose host veth is `name`, or undefined. */
function endpointProblem(v: unknown, name: string): string | undefined {
  if (!isObject(v)) return 'not a JSON object';
  for (const f of ['containerId', 'ifname', 'network', 'netns', 'mac', 'createdAt'])
    if (typeof v[f] !== 'string') return `${f} is not a string`;
  if (v.hostIfname !== name) return `hostIfname ${JSON.stringify(v.hostIfname)} is not the file's name`;
  if (!isId(v.endpointId)) return `endpointId ${JSON.stringify(v.endpointId)} is not an ID`;
  if (v.state !== 'adding' && v.state !== 'ready') return `state ${JSON.stringify(v.state)} is unknown`;
  if (!Array.isArray(v.ips) || !v.ips.every((ip) => typeof ip === 'string')) return 'ips is not a list';
  if (!isObject(v.ipam) || (v.ipam.type !== 'castnet' && v.ipam.type !== 'delegate'))
    return 'ipam is not castnet or delegate';
  return undefined;
}

export class EndpointTable implements EndpointSource {
  private readonly byKey = new Map<string, Endpoint>();
  private nextId = 1;
  readonly cursors = new Map<string, string>();
  private readonly listeners = new Set<EndpointListener>();
  private readonly dir: string;
  private readonly metaPath: string;
  /** Host ifnames whose file must be rewritten or removed at the next save. */
  private readonly dirty = new Set<string>();
  private metaDirty = false;
  private readonly deferred = new DeferredSync();
  /** Files that could not be used, moved to <stateDir>/quarantine/ (the caller logs them). */
  readonly quarantined: QuarantinedFile[] = [];
  /** Host veths whose record was quarantined: the caller may rebuild them from the kernel. */
  readonly lost = new Set<string>();

  private constructor(private readonly stateDir: string) {
    this.dir = join(stateDir, 'endpoints');
    this.metaPath = join(stateDir, 'endpoint-meta.json');
  }

  /**
   * Loads the table from `stateDir`. A corrupt, empty or malformed file is quarantined rather than
   * fatal: the agent must start (a crash loop would leave every pod on the node without CNI), and
   * what the file held is rebuilt from the other records and the kernel. Only a newer meta version
   * stops it.
   */
  static load(stateDir: string): EndpointTable {
    const table = new EndpointTable(stateDir);
    table.loadFiles();
    return table;
  }

  private loadFiles(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const quarantineDir = join(this.stateDir, 'quarantine');
    const load = (path: string, problem: (v: unknown) => string | undefined): unknown => {
      let v: unknown;
      try {
        v = readJson<unknown>(path);
      } catch (e) {
        if (!(e instanceof CorruptFileError)) throw e;
        this.quarantined.push({
          file: path,
          movedTo: quarantineFile(path, quarantineDir),
          reason: e.message,
        });
        return undefined;
      }
      const why = v === undefined ? undefined : problem(v);
      if (!why) return v;
      const reason = `state file ${path} is malformed: ${why}`;
      this.quarantined.push({ file: path, movedTo: quarantineFile(path, quarantineDir), reason });
      return undefined;
    };
    const meta = load(this.metaPath, (v) => {
      const version = isObject(v) ? v.version : undefined;
      if (typeof version === 'number' && version !== 1)
        throw new Error(`${this.metaPath}: unknown version ${version}: written by a newer castnet?`);
      return version === 1 ? metaProblem(v) : 'version is not 1';
    }) as MetaFile | undefined;
    if (meta) {
      this.nextId = meta.nextEndpointId;
      for (const [k, v] of Object.entries(meta.cursors)) this.cursors.set(k, v);
    }
    for (const f of readdirSync(this.dir)) {
      const path = join(this.dir, f);
      if (!f.endsWith('.json')) {
        rmSync(path, { force: true }); // a temporary file of an interrupted write
        continue;
      }
      const name = f.slice(0, -'.json'.length);
      const e = load(path, (v) => endpointProblem(v, name)) as Endpoint | undefined;
      if (e) this.byKey.set(attachmentKey(e), e);
      else if (this.quarantined.at(-1)?.file === path) this.lost.add(name);
    }
    if (!meta && this.quarantined.some((q) => q.file === this.metaPath)) {
      // The ID sequence is lost: continue after the highest ID held. Cursors only spread reuse out.
      const held = [...this.byKey.values()].map((e) => e.endpointId);
      this.nextId = held.length ? (Math.max(...held) % MAX_ID) + 1 : 1;
      this.metaDirty = true;
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
    this.metaDirty = true;
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
    this.dirty.add(e.hostIfname);
    if (e.state === 'ready' && before?.state !== 'ready') this.emit({ type: 'ready', endpoint: e });
  }

  remove(a: Attachment): Endpoint | undefined {
    const key = attachmentKey(a);
    const e = this.byKey.get(key);
    if (!e) return undefined;
    this.byKey.delete(key);
    this.dirty.add(e.hostIfname);
    if (e.state === 'ready') this.emit({ type: 'removed', endpoint: e });
    return e;
  }

  /**
   * Writes what changed since the last save, each file atomically. `durable` fsyncs before returning;
   * otherwise the files are fsynced in the background within a moment.
   */
  save(durable: boolean): void {
    const live = new Map([...this.byKey.values()].map((e) => [e.hostIfname, e]));
    for (const name of this.dirty) {
      const path = join(this.dir, `${name}.json`);
      const e = live.get(name);
      if (e) writeJsonAtomic(path, e, durable);
      else removeFile(path, durable);
      if (!durable) this.deferred.add(path);
    }
    this.dirty.clear();
    if (this.metaDirty) {
      const meta: MetaFile = {
        version: 1,
        nextEndpointId: this.nextId,
        cursors: Object.fromEntries(this.cursors),
      };
      writeJsonAtomic(this.metaPath, meta, durable);
      if (!durable) this.deferred.add(this.metaPath);
      this.metaDirty = false;
    }
  }

  /** Waits for background fsyncs. */
  flush(): Promise<void> {
    return this.deferred.flush();
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
}
