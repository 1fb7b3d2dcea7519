import { ConcurrencyLimit } from '../../src/throttle/concurrency-limit.ts';

/* A task that runs until the test settles it; `held` is the promise it returned. */
function heldTask(started: string[], name: string) {
  let settle!: { resolve(value: string): void; reject(err: Error): void };
  let held!: Promise<string>;
  const task = () => {
    started.push(name);
    held = new Promise<string>((resolve, reject) => {
      settle = { resolve, reject };
    });
    return held;
  };
  return { task, settle: () => settle, held: () => held };
}

const turn = () => new Promise((resume) => setImmediate(resume));

describe('ConcurrencyLimit', () => {
  it('runs at most its slots at once and starts the others in the order they came', async () => {
    const limit = new ConcurrencyLimit(2);
    const started: string[] = [];
    const tasks = ['a', 'b', 'c', 'd'].map((name) => heldTask(started, name));
    const results = tasks.map(({ task }) => limit.run(task));
    await turn();
    expect(started).toEqual(['a', 'b']);
    expect([limit.running, limit.waiting]).toEqual([2, 2]);

    tasks[1]!.settle().resolve('B');
    await turn();
    expect(started).toEqual(['a', 'b', 'c']);
    expect([limit.running, limit.waiting]).toEqual([2, 1]);

    // A task arriving as a's slot frees (a's own promise settled, d not yet resumed) queues behind d:
    // a limit that let the slot go and had d take it again would start e here.
    const late = heldTask(started, 'e');
    let lateResult!: Promise<string>;
    const arrived = tasks[0]!.held().then(() => {
      lateResult = limit.run(late.task);
    });
    tasks[0]!.settle().resolve('A');
    await arrived;
    await turn();
    expect(started).toEqual(['a', 'b', 'c', 'd']);

    tasks[2]!.settle().resolve('C');
    tasks[3]!.settle().resolve('D');
    await turn();
    late.settle().resolve('E');
    expect(await Promise.all([...results, lateResult])).toEqual(['A', 'B', 'C', 'D', 'E']);
    expect([limit.running, limit.waiting]).toEqual([0, 0]);
  });

  it('gives the slot of a task that failed to the next, and passes the failure on', async () => {
    const limit = new ConcurrencyLimit(1);
    const started: string[] = [];
    const failing = heldTask(started, 'failing');
    const next = heldTask(started, 'next');
    const failed = limit.run(failing.task);
    const after = limit.run(next.task);
    await turn();
    failing.settle().reject(new Error('scrypt failed'));
    await expect(failed).rejects.toThrow('scrypt failed');
    await turn();
    expect(started).toEqual(['failing', 'next']);
    next.settle().resolve('ran');
    await expect(after).resolves.toBe('ran');
    expect(limit.running).toBe(0);
  });

  it('refuses a number of slots that is not a positive integer', () => {
    for (const slots of [0, -1, 1.5, Number.NaN]) expect(() => new ConcurrencyLimit(slots)).toThrow(RangeError);
  });
});
