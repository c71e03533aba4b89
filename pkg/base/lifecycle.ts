// One lifecycle for everything that holds a socket, a timer, a watch or a child process:
// constructors only store their arguments, start() does the I/O, dispose() undoes it. dispose() is
// idempotent and never throws for an already-released resource, so owners can dispose in any order.

/** Something holding resources that dispose() releases. */
export interface Disposable {
  dispose(): Promise<void> | void;
}

/** A Disposable that runs `release` once. */
export function toDisposable(release: () => Promise<void> | void): Disposable {
  let done = false;
  return {
    dispose() {
      if (done) return;
      done = true;
      return release();
    },
  };
}

/**
 * Owns several Disposables and releases them in reverse order of adding (last acquired, first
 * released), continuing past failures and then throwing the first one, so one failing release never
 * leaks the others.
 */
export class DisposableStore implements Disposable {
  private readonly items: Disposable[] = [];
  private disposed = false;

  /** Takes ownership of `item`; if the store is already disposed, releases it at once. */
  add<T extends Disposable>(item: T): T {
    if (this.disposed) void Promise.resolve(item.dispose()).catch(() => undefined);
    else this.items.push(item);
    return item;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    let first: unknown;
    for (const item of this.items.splice(0).reverse()) {
      try {
        await item.dispose();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }
}
