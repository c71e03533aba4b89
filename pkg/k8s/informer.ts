// A watch cache (list, then watch from the list's resourceVersion) that survives apiserver restarts
// and watch expiry: a failed watch resumes from the last resourceVersion seen, and "410 Gone" (that
// version was compacted away) re-lists, diffing the new list against the cache so deletions that
// happened during the outage are noticed too.
import { ApiError, type ApiClient, type WatchEvent } from './client.js';

interface Meta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface InformerOptions<T> {
  /**
   * Called after every change to the cache: with the object and its previous version for a watch
   * event, and with nothing after a re-list (anything may have changed).
   */
  onChange: (obj?: T, previous?: T) => void;
  onError?: (err: unknown, path: string) => void;
  /** Strips what the cache need not keep (e.g. a Pod's spec); mutates in place. */
  trim?: (obj: T) => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

const keyOf = (o: Meta): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Informer<T extends Meta> {
  private readonly cache = new Map<string, T>();
  private resourceVersion = '';
  private abort?: AbortController;
  private stopped = true;
  private syncedResolve!: () => void;
  /** Resolves after the first complete list. */
  readonly synced: Promise<void>;
  /** Times the watch had to be re-established after an error. */
  restarts = 0;
  /** Times the cache was rebuilt from a full list. */
  relists = 0;

  constructor(
    private readonly api: ApiClient,
    readonly path: string,
    private readonly opts: InformerOptions<T>,
  ) {
    this.synced = new Promise((r) => (this.syncedResolve = r));
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(`${namespace ?? ''}/${name}`);
  }

  /** Starts the loop and resolves once the cache holds a complete list. */
  async start(): Promise<void> {
    this.stopped = false;
    void this.loop();
    await this.synced;
  }

  private async loop(): Promise<void> {
    let backoff = this.opts.minBackoffMs ?? 250;
    while (!this.stopped) {
      try {
        if (!this.resourceVersion) await this.relist();
        this.abort = new AbortController();
        await this.api.watch<T>(this.path, this.resourceVersion, (e) => this.apply(e), this.abort.signal);
        backoff = this.opts.minBackoffMs ?? 250;
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof ApiError && err.status === 410) this.resourceVersion = '';
        this.restarts++;
        this.opts.onError?.(err, this.path);
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, this.opts.maxBackoffMs ?? 5_000);
      }
    }
  }

  private async relist(): Promise<void> {
    const list = await this.api.list<T>(this.path);
    const fresh = new Map<string, T>();
    for (const o of list.items) {
      this.opts.trim?.(o);
      fresh.set(keyOf(o), o);
    }
    this.cache.clear();
    for (const [k, v] of fresh) this.cache.set(k, v);
    this.resourceVersion = list.metadata.resourceVersion ?? '';
    this.relists++;
    this.syncedResolve();
    this.opts.onChange();
  }

  private apply(e: WatchEvent<T>): void {
    if (e.type === 'ERROR') {
      const status = e.object as unknown as { code?: number; message?: string };
      if (status.code === 410) this.resourceVersion = '';
      throw new ApiError(
        status.code ?? 500,
        'WatchError',
        `watch ${this.path}: ${status.message ?? 'error event'}`,
      );
    }
    const rv = e.object.metadata?.resourceVersion;
    if (e.type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return;
    }
    this.opts.trim?.(e.object);
    const key = keyOf(e.object);
    const previous = this.cache.get(key);
    if (e.type === 'DELETED') this.cache.delete(key);
    else this.cache.set(key, e.object);
    if (rv) this.resourceVersion = rv;
    this.opts.onChange(e.type === 'DELETED' ? undefined : e.object, previous);
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}
