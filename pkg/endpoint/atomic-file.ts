// Small JSON state files replaced atomically: write a temporary file, rename it over the old one.
// Writes are synchronous (tens of microseconds, like the netlink calls around them), so concurrent
// requests never interleave one. fsync, which can take tens of milliseconds on a busy disk, may be
// deferred off the request path with DeferredSync.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errorMessage } from '../base/errors.js';

/** A state file that is not JSON (garbage, empty, cut short). */
export class CorruptFileError extends Error {}

/** The file's value, or undefined when it does not exist; throws CorruptFileError naming a corrupt file. */
export function readJson<T>(path: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    const why = text.trim() === '' ? 'it is empty' : errorMessage(e);
    throw new CorruptFileError(`state file ${path} is corrupt: ${why}`, { cause: e });
  }
}

/**
 * Moves a state file that cannot be used aside, into `dir` as `<name>.<UTC timestamp>`, so the agent
 * can start without it and a person can still see what it held. Returns the new path.
 */
export function quarantineFile(path: string, dir: string, now = new Date()): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  const target = join(dir, `${basename(path)}.${stamp}`);
  renameSync(path, target);
  return target;
}

/** Replaces `path` with `value`; a crash leaves the old or the new content. `durable` also fsyncs. */
export function writeJsonAtomic(path: string, value: unknown, durable: boolean): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(value));
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  if (durable) fsyncPath(dirname(path));
}

export function removeFile(path: string, durable: boolean): void {
  rmSync(path, { force: true });
  if (durable) fsyncPath(dirname(path));
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncs of files and directories written recently, batched and run in the background. */
export class DeferredSync {
  private readonly pending = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly delayMs = 200) {}

  /** Asks for `path` (and its directory) to be fsynced within the delay. */
  add(path: string): void {
    this.pending.add(path);
    this.pending.add(dirname(path));
    if (this.timer) return;
    this.timer = setTimeout(() => this.runNow(), this.delayMs);
    this.timer.unref();
  }

  /** Runs what is pending now and waits for it (shutdown, tests). */
  async flush(): Promise<void> {
    if (this.timer) this.runNow();
    await this.running;
  }

  private runNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const paths = [...this.pending];
    this.pending.clear();
    this.running = this.running.then(() => Promise.all(paths.map(fsyncQuietly)).then(() => undefined));
  }
}

/** Best effort: a file removed meanwhile, or a failing disk, leaves the atomically written state as is. */
async function fsyncQuietly(path: string): Promise<void> {
  try {
    const fh = await open(path, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // nothing more to do
  }
}
