// The work queue's ordering rules with handlers the test releases itself, and its backoff on jest's
// fake clock: no sleeps, no wall-clock bounds.
import { jest } from '@jest/globals';
import { waitFor } from '../base/async.js';
import { WorkQueue } from './workqueue.js';

afterEach(() => jest.useRealTimers());

test('a key is queued once, never handled twice at once, and re-run when re-added while running', async () => {
  const log: string[] = [];
  const release = new Map<string, () => void>();
  let running = 0;
  let maxRunning = 0;
  const q = new WorkQueue<string>(
    async (key) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      log.push(key);
      await new Promise<void>((r) => release.set(key, r));
      running--;
    },
    { id: String, workers: 4 },
  );
  q.add('a');
  q.add('a');
  q.add('b');
  await waitFor(() => release.has('a') && release.has('b'), { what: 'a and b to run' });
  expect(log).toEqual(['a', 'b']);
  q.add('a'); // while "a" runs: replayed after it finishes, not in parallel
  const first = release.get('a')!;
  release.delete('a');
  first();
  await waitFor(() => release.has('a'), { what: 'a to run again' });
  expect(log).toEqual(['a', 'b', 'a']);
  release.get('a')!();
  release.get('b')!();
  await q.idle();
  expect(maxRunning).toBe(2);
});

test('failures retry with exponential backoff until they succeed', async () => {
  jest.useFakeTimers({ now: 0 });
  const at: number[] = [];
  const retries: number[] = [];
  const q = new WorkQueue<string>(
    async () => {
      at.push(Date.now());
      if (at.length < 4) throw new Error('apiserver unavailable');
    },
    { id: String, baseDelayMs: 20, onRetry: (_k, _e, attempt) => retries.push(attempt) },
  );
  q.add('g');
  await jest.advanceTimersByTimeAsync(1_000);
  await q.idle();
  // Delays of base * 2^(attempt-1): 20, 40, 80 ms.
  expect(at).toEqual([0, 20, 60, 140]);
  expect(retries).toEqual([1, 2, 3]);
  expect(q.retries).toBe(3);
});

test('forget drops a pending retry', async () => {
  jest.useFakeTimers({ now: 0 });
  const calls = new Map<string, number>();
  const q = new WorkQueue<string>(
    async (key) => {
      calls.set(key, (calls.get(key) ?? 0) + 1);
      throw new Error('still failing');
    },
    { id: String, baseDelayMs: 50, maxDelayMs: 50 },
  );
  q.add('x');
  q.add('y'); // the control: not forgotten, so it is retried
  await jest.advanceTimersByTimeAsync(10);
  q.forget('x');
  await jest.advanceTimersByTimeAsync(1_000);
  q.dispose();
  expect(calls.get('x')).toBe(1);
  expect(calls.get('y')).toBe(1 + 1_000 / 50);
});
