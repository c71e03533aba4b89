import { sleep, waitFor } from './async.js';
import { errorMessage } from './errors.js';
import { DisposableStore, toDisposable } from './lifecycle.js';

describe('errorMessage', () => {
  it('gives an Error its message and anything else its string form', () => {
    expect(errorMessage(new Error('boom'))).toBe('boom');
    expect(errorMessage('plain')).toBe('plain');
    expect(errorMessage(42)).toBe('42');
  });
});

describe('sleep', () => {
  it('rejects with the abort reason instead of waiting', async () => {
    const ac = new AbortController();
    const slept = sleep(60_000, ac.signal);
    ac.abort(new Error('stopping'));
    await expect(slept).rejects.toThrow('stopping');
  });
});

describe('waitFor', () => {
  it('resolves with the first value that is neither undefined nor false', async () => {
    let n = 0;
    await expect(
      waitFor(() => (++n >= 3 ? `probe ${n}` : false), { what: 'x', intervalMs: 1 }),
    ).resolves.toBe('probe 3');
  });

  it('retries a probe that throws, and names what it awaited, what it saw and the last error', async () => {
    let n = 0;
    const waited = waitFor(
      () => {
        throw new Error(`attempt ${++n}`);
      },
      { what: 'the answer', timeoutMs: 30, intervalMs: 5, observed: () => `state ${n}` },
    );
    await expect(waited).rejects.toThrow(
      new RegExp(
        `^timed out after 30 ms waiting for the answer; observed: state \\d+; last error: attempt \\d+$`,
      ),
    );
    expect(n).toBeGreaterThan(1);
  });

  it('with failFast, rejects with the probe’s own error at once', async () => {
    let n = 0;
    const waited = waitFor(
      () => {
        n++;
        throw new Error('the process exited');
      },
      { what: 'a process', failFast: true },
    );
    await expect(waited).rejects.toThrow(/^the process exited$/);
    expect(n).toBe(1);
  });

  it('does not wait past the deadline for a probe that never settles', async () => {
    const started = Date.now();
    const waited = waitFor(() => new Promise<boolean>(() => undefined), {
      what: 'a hung probe',
      timeoutMs: 50,
    });
    await expect(waited).rejects.toThrow(
      /waiting for a hung probe; last error: the last probe did not finish/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('DisposableStore', () => {
  it('releases in reverse order, past a failing release, then throws the first failure', async () => {
    const order: string[] = [];
    const store = new DisposableStore();
    store.add(toDisposable(() => void order.push('a')));
    store.add(
      toDisposable(() => {
        order.push('b');
        throw new Error('b failed');
      }),
    );
    store.add(toDisposable(() => void order.push('c')));
    await expect(store.dispose()).rejects.toThrow('b failed');
    expect(order).toEqual(['c', 'b', 'a']);
    await store.dispose();
    expect(order).toEqual(['c', 'b', 'a']);
  });

  it('releases what is added after it was disposed', async () => {
    const store = new DisposableStore();
    await store.dispose();
    let released = 0;
    store.add(toDisposable(() => void released++));
    await new Promise((r) => setImmediate(r));
    expect(released).toBe(1);
  });
});
