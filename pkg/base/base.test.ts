import { sleep } from './async.js';
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
