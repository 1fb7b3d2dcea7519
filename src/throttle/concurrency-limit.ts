/**
 * At most `slots` tasks running at once; the rest wait in arrival order. A finishing task hands its
 * slot straight to the next waiter, so a late arrival cannot overtake the queue.
 */
export class ConcurrencyLimit {
  readonly slots: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(slots: number) {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`slots must be a positive integer, got ${slots}`);
    this.slots = slots;
  }

  /** Tasks holding a slot. */
  get running(): number {
    return this.#running;
  }

  /** Tasks queued for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `task` once a slot is free and settles as it does; the slot is freed however it ends. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running < this.slots) this.#running++;
    else await new Promise<void>((takeSlot) => this.#waiting.push(takeSlot));
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next === undefined) this.#running--;
      else next();
    }
  }
}
