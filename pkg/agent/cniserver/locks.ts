// Ordering of concurrent CNI requests: one at a time per attachment (containerId, ifname), any
// number of different attachments in parallel, and GC alone (it decides what is stale, so no ADD
// may be half-done while it looks).

/** A promise-based lock table. Callers never wait on a lock they hold, so it cannot deadlock. */
export class AttachmentLocks {
  private readonly tails = new Map<string, Promise<void>>();
  private shared = 0;
  private exclusive: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  /** Runs `fn` once no other request for `key` and no GC is running. */
  async withAttachment<T>(key: string, fn: () => Promise<T>): Promise<T> {
    while (this.exclusive) await this.exclusive;
    this.shared++;
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    try {
      await previous;
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
      if (--this.shared === 0) this.drained?.();
    }
  }

  /** Runs `fn` alone: after the running attachment requests finish, holding new ones back. */
  async withAll<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusive) await this.exclusive;
    let release!: () => void;
    this.exclusive = new Promise<void>((resolve) => (release = resolve));
    try {
      if (this.shared > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      this.drained = undefined;
      return await fn();
    } finally {
      this.exclusive = undefined;
      release();
    }
  }
}
