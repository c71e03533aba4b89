// A watch cache that survives apiserver restarts and watch expiry: @kubernetes/client-node's informer
// re-lists on 410 Gone by itself but stops on any other error, so this restarts it with backoff.
import {
  makeInformer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { ApiClient } from './client';

export interface InformerOptions<T> {
  /** Called after every add, update and delete (and re-list differences). */
  onChange: () => void;
  onError?: (err: unknown, path: string) => void;
  /** Strips what the cache need not keep (e.g. a Pod's spec); mutates, keeps metadata.resourceVersion. */
  trim?: (obj: T) => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class ResilientInformer<T extends KubernetesObject> {
  private readonly inner;
  private stopped = false;
  private backoffMs: number;
  private timer?: NodeJS.Timeout;
  private syncedResolve!: () => void;
  /** Resolves after the first complete list. */
  readonly synced: Promise<void>;
  restarts = 0;
  private listed = false;

  constructor(
    kc: KubeConfig,
    client: ApiClient,
    readonly path: string,
    private readonly opts: InformerOptions<T>,
  ) {
    this.backoffMs = opts.minBackoffMs ?? 500;
    this.synced = new Promise((r) => (this.syncedResolve = r));
    this.inner = makeInformer<T>(kc, path, async () => {
      this.listed = false;
      const list = await client.list<T>(path);
      if (opts.trim) list.items.forEach(opts.trim);
      this.listed = true;
      return list as unknown as KubernetesListObject<T>;
    });
    // Registered first, so the cache holds the trimmed object before anyone sees it.
    const trim = opts.trim;
    if (trim) for (const verb of ['add', 'update'] as const) this.inner.on(verb, (o) => trim(o));
    this.inner.on('change', () => opts.onChange());
    this.inner.on('error', (err: unknown) => {
      this.opts.onError?.(err, path);
      this.scheduleRestart();
    });
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.run();
    await this.synced;
  }

  private async run(): Promise<void> {
    try {
      // start() resolves once the list is cached and the watch is open, or once a failed list has
      // been reported to the error handler (which schedules the retry).
      await this.inner.start();
      if (!this.listed) return;
      this.backoffMs = this.opts.minBackoffMs ?? 500;
      this.syncedResolve();
    } catch (err) {
      this.opts.onError?.(err, this.path);
      this.scheduleRestart();
    }
  }

  private scheduleRestart(): void {
    if (this.stopped || this.timer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 10_000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.restarts++;
      void this.run();
    }, delay);
  }

  list(): T[] {
    return [...this.inner.list()];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.inner.get(name, namespace);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inner.stop();
  }
}
