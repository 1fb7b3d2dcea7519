import { residentBreakdown } from '../../bench/servers/resident-memory.ts';

/*
 * The soak's account of what its RSS is made of (bench/servers/resident-memory.ts): the kinds add up to
 * the process's RSS, and a WebAssembly memory's touched pages are counted as WebAssembly memory (the
 * kind that the embedded database's compiled Postgres lives in), not as anonymous memory.
 */
const linux = process.platform === 'linux';
// The project's TypeScript libraries (no DOM) do not declare the WebAssembly global Node has.
const { Memory } = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } } }).WebAssembly;

(linux ? describe : describe.skip)("the soak's RSS breakdown", () => {
  const total = (b: NonNullable<ReturnType<typeof residentBreakdown>>) =>
    b.webAssemblyMemoryMiB + b.jitCodeMiB + b.mallocBrkMiB + b.filesMiB + b.otherAnonymousMiB;

  it("adds up to the process's RSS", () => {
    const before = process.memoryUsage().rss / 2 ** 20;
    const breakdown = residentBreakdown();
    const after = process.memoryUsage().rss / 2 ** 20;
    expect(breakdown).toBeDefined();
    expect(total(breakdown!)).toBeGreaterThan(Math.min(before, after) * 0.95);
    expect(total(breakdown!)).toBeLessThan(Math.max(before, after) * 1.05);
  });

  it('counts the touched pages of a WebAssembly memory as WebAssembly memory', () => {
    const before = residentBreakdown()!;
    const memory = new Memory({ initial: 1024, maximum: 4096 }); // 64 MiB, up to 256
    new Uint8Array(memory.buffer).fill(1);
    const after = residentBreakdown()!;
    expect(after.webAssemblyMemoryMiB - before.webAssemblyMemoryMiB).toBeGreaterThan(60);
    expect(after.otherAnonymousMiB - before.otherAnonymousMiB).toBeLessThan(16);
    expect(memory.buffer.byteLength).toBe(64 * 2 ** 20);
  });
});

if (!linux) it.skip('the RSS breakdown reads /proc/self/smaps: Linux only', () => {});
