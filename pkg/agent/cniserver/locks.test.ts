import { AttachmentLocks } from './locks.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A task that records when it runs and finishes only when released. */
function gate(log: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  return {
    release,
    run: async () => {
      log.push(`start ${name}`);
      await done;
      log.push(`end ${name}`);
    },
  };
}

describe('AttachmentLocks', () => {
  it('serializes requests for one attachment and runs different attachments in parallel', async () => {
    const locks = new AttachmentLocks();
    const log: string[] = [];
    const a1 = gate(log, 'a1');
    const a2 = gate(log, 'a2');
    const b = gate(log, 'b');
    const runs = [
      locks.withAttachment('c1/eth0', a1.run),
      locks.withAttachment('c1/eth0', a2.run),
      locks.withAttachment('c2/eth0', b.run),
    ];
    await tick();
    expect(log).toEqual(['start a1', 'start b']);
    a1.release();
    await tick();
    expect(log).toContain('start a2');
    a2.release();
    b.release();
    await Promise.all(runs);
  });

  it('runs GC alone: after running requests, before later ones', async () => {
    const locks = new AttachmentLocks();
    const log: string[] = [];
    const a = gate(log, 'a');
    const gc = gate(log, 'gc');
    const b = gate(log, 'b');
    const runs = [locks.withAttachment('c1/eth0', a.run), locks.withAll(gc.run)];
    await tick();
    runs.push(locks.withAttachment('c2/eth0', b.run));
    await tick();
    expect(log).toEqual(['start a']);
    a.release();
    await tick();
    expect(log).toEqual(['start a', 'end a', 'start gc']);
    gc.release();
    await tick();
    await tick();
    expect(log).toEqual(['start a', 'end a', 'start gc', 'end gc', 'start b']);
    b.release();
    await Promise.all(runs);
  });

  it('releases the lock when a request fails', async () => {
    const locks = new AttachmentLocks();
    await expect(locks.withAttachment('c1/eth0', () => Promise.reject(new Error('boom')))).rejects.toThrow(
      'boom',
    );
    await expect(locks.withAttachment('c1/eth0', () => Promise.resolve(7))).resolves.toBe(7);
    await expect(locks.withAll(() => Promise.resolve(8))).resolves.toBe(8);
  });
});
