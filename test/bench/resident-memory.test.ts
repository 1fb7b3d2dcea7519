import { classifySmaps, residentBreakdown } from '../../bench/servers/resident-memory.ts';

/*
 * The soak's account of what its RSS is made of (bench/servers/resident-memory.ts): each kind of
 * mapping told apart on a fixed smaps listing, and, in this process, a touched WebAssembly memory
 * (the kind the embedded database's compiled Postgres lives in) counted as WebAssembly memory.
 */

// One mapping of each kind, as Linux lists them (only the fields the classifier reads besides Rss).
const SMAPS = [
  ['00400000-00746000 r--p 00000000 fe:00 16039968   /usr/bin/node', 3000],
  ['28372000-29bc6000 rw-p 00000000 00:00 0          [heap]', 20000],
  // A WebAssembly memory: 64 MiB accessible, then the rest of its 8 GiB reservation.
  ['7f0000000000-7f0004000000 rw-p 00000000 00:00 0 ', 50000],
  ['7f0004000000-7f0200000000 ---p 00000000 00:00 0 ', 0],
  // A glibc arena: accessible part and a reserve of 64 MiB in all, far below a WebAssembly reservation.
  ['7f8cb8000000-7f8cb9983000 rw-p 00000000 00:00 0 ', 25000],
  ['7f8cb9983000-7f8cbc000000 ---p 00000000 00:00 0 ', 0],
  // V8's WebAssembly code space.
  ['7f9000000000-7f9020000000 rwxp 00000000 00:00 0 ', 6000],
  ['7ffc1000000-7ffc1021000 rw-p 00000000 00:00 0    [stack]', 132],
]
  .map(([header, rss]) => `${header}\nSize:            4 kB\nRss:            ${rss} kB\nPss:            ${rss} kB\n`)
  .join('');

it('tells each kind of mapping apart in an smaps listing', () => {
  expect(classifySmaps(SMAPS)).toEqual({
    filesMiB: Number((3000 / 1024).toFixed(1)),
    mallocBrkMiB: Number((20000 / 1024).toFixed(1)),
    webAssemblyMemoryMiB: Number((50000 / 1024).toFixed(1)),
    jitCodeMiB: Number((6000 / 1024).toFixed(1)),
    otherAnonymousMiB: Number(((25000 + 132) / 1024).toFixed(1)),
  });
});

const linux = process.platform === 'linux';
// The project's TypeScript libraries (no DOM) do not declare the WebAssembly global Node has.
const { Memory } = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } } }).WebAssembly;

(linux ? it : it.skip)('counts a touched WebAssembly memory of this process as WebAssembly memory', () => {
  const memory = new Memory({ initial: 1024, maximum: 4096 }); // 64 MiB, up to 256
  new Uint8Array(memory.buffer).fill(1);
  // Absolute, not a difference: an earlier suite's dead WebAssembly memory may be collected meanwhile.
  expect(residentBreakdown()!.webAssemblyMemoryMiB).toBeGreaterThanOrEqual(63);
  expect(memory.buffer.byteLength).toBe(64 * 2 ** 20);
});
