// A work queue in the manner of client-go's: a key is queued at most once, never processed by two
// workers at once (re-adds while it runs are replayed after), and failures retry with per-key
// exponential backoff until they succeed or are forgotten. Keys are any type; `id` says which keys
// are the same item.

export interface WorkQueueOptions<K> {
  /** The identity of a key: two keys with the same id are one item. */
  id: (key: K) => string;
  baseDelayMs?: number;
  maxDelayMs?: number;
  workers?: number;
  onRetry?: (key: K, err: unknown, attempt: number) => void;
}

export class WorkQueue<K> {
  private readonly queue: K[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirtyWhileProcessing = new Map<string, K>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private running = 0;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  retries = 0;

  constructor(
    private readonly handle: (key: K) => Promise<void>,
    private readonly opts: WorkQueueOptions<K>,
  ) {}

  get depth(): number {
    return this.queue.length;
  }

  add(key: K): void {
    if (this.stopped) return;
    const id = this.opts.id(key);
    if (this.processing.has(id)) {
      this.dirtyWhileProcessing.set(id, key);
      return;
    }
    if (this.queued.has(id)) return;
    this.queued.add(id);
    this.queue.push(key);
    this.pump();
  }

  /** Drops the key's backoff state (e.g. its object was deleted). */
  forget(key: K): void {
    const id = this.opts.id(key);
    this.failures.delete(id);
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  /** Resolves when nothing is queued, running or waiting to retry. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  dispose(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.running === 0 && this.timers.size === 0;
  }

  private pump(): void {
    const workers = this.opts.workers ?? 4;
    while (!this.stopped && this.running < workers && this.queue.length > 0) {
      const key = this.queue.shift()!;
      const id = this.opts.id(key);
      this.queued.delete(id);
      this.processing.add(id);
      this.running++;
      void this.process(key, id);
    }
    if (this.isIdle()) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async process(key: K, id: string): Promise<void> {
    try {
      await this.handle(key);
      this.failures.delete(id);
    } catch (err) {
      const attempt = (this.failures.get(id) ?? 0) + 1;
      this.failures.set(id, attempt);
      this.retries++;
      this.opts.onRetry?.(key, err, attempt);
      const delay = Math.min(
        (this.opts.baseDelayMs ?? 100) * 2 ** (attempt - 1),
        this.opts.maxDelayMs ?? 30_000,
      );
      if (!this.stopped && !this.timers.has(id)) {
        this.timers.set(
          id,
          setTimeout(() => {
            this.timers.delete(id);
            this.add(key);
          }, delay),
        );
      }
    } finally {
      this.processing.delete(id);
      this.running--;
      const readded = this.dirtyWhileProcessing.get(id);
      if (readded !== undefined) {
        this.dirtyWhileProcessing.delete(id);
        this.add(readded);
      }
      this.pump();
    }
  }
}
