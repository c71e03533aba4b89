// A JSON file replaced atomically (write a temporary file, rename over), with group commit: while one
// write is in flight, every later save shares the next write, which snapshots the state at its start.
import { mkdirSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

interface Waiter {
  durable: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class AtomicJsonFile<T> {
  private writing = false;
  private waiters: Waiter[] = [];

  /** `snapshot` is called when a write starts and returns the value to write. */
  constructor(
    readonly path: string,
    private readonly snapshot: () => T,
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  }

  /** The file's value, or undefined when it does not exist. */
  read(): T | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new Error(`state file ${this.path} is corrupt: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Persists the current state. Always atomic, so a crashed process leaves the old or the new file.
   * `durable` also fsyncs file and directory, so the state survives a power loss.
   */
  save(durable: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ durable, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  /** The single writer: each round writes once for every save that arrived before it started. */
  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.waiters.length > 0) {
        const batch = this.waiters.splice(0);
        try {
          await this.write(batch.some((w) => w.durable));
          for (const w of batch) w.resolve();
        } catch (e) {
          for (const w of batch) w.reject(e);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private async write(durable: boolean): Promise<void> {
    const data = JSON.stringify(this.snapshot(), null, 1);
    const tmp = `${this.path}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    if (durable) {
      const dir = await open(dirname(this.path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
  }
}
