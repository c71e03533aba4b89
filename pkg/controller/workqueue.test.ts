import { WorkQueue } from './workqueue';

test('a key is queued once, never handled twice at once, and re-run when re-added while running', async () => {
  const log: string[] = [];
  let running = 0;
  let maxRunning = 0;
  const q = new WorkQueue(
    async (key) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      log.push(key);
      await new Promise((r) => setTimeout(r, 20));
      running--;
    },
    { workers: 4 },
  );
  q.add('a');
  q.add('a');
  q.add('b');
  await new Promise((r) => setTimeout(r, 5));
  q.add('a'); // while "a" runs: replayed after it finishes, not in parallel
  await q.idle();
  expect(log.sort()).toEqual(['a', 'a', 'b']);
  expect(maxRunning).toBe(2);
});

test('failures retry with exponential backoff until they succeed', async () => {
  const at: number[] = [];
  const retries: number[] = [];
  const q = new WorkQueue(
    async () => {
      at.push(Date.now());
      if (at.length < 4) throw new Error('apiserver unavailable');
    },
    { baseDelayMs: 20, onRetry: (_k, _e, attempt) => retries.push(attempt) },
  );
  q.add('g');
  await q.idle();
  expect(retries).toEqual([1, 2, 3]);
  const gaps = at.slice(1).map((t, i) => t - at[i]);
  expect(gaps[0]).toBeGreaterThanOrEqual(18);
  expect(gaps[1]).toBeGreaterThanOrEqual(38);
  expect(gaps[2]).toBeGreaterThanOrEqual(78);
  expect(q.retries).toBe(3);
});

test('forget drops a pending retry', async () => {
  let calls = 0;
  const q = new WorkQueue(
    async () => {
      calls++;
      throw new Error('still failing');
    },
    { baseDelayMs: 50 },
  );
  q.add('x');
  await new Promise((r) => setTimeout(r, 10));
  q.forget('x');
  await q.idle();
  await new Promise((r) => setTimeout(r, 80));
  expect(calls).toBe(1);
});
