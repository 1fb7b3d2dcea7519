import { readFileSync } from 'node:fs';

/*
 * What a process's RSS is made of, read from its own /proc/self/smaps (Linux): issue 20 asks what
 * holds the memory, and process.memoryUsage() names only V8's heap and the bytes it was told of
 * (`external` counts a WebAssembly memory's whole length, touched or not). Each mapping is put in one
 * of a few kinds by what V8, glibc and the loader make of it:
 * - WebAssembly memory: V8 reserves a WebAssembly memory with guard regions, gigabytes of address
 *   space, read-write; only the pages the module touched are resident.
 * - JIT code: anonymous executable mappings (V8's code space, Liftoff and TurboFan code).
 * - malloc (brk): glibc's main arena.
 * - files: the node binary, shared libraries, and any mapped file.
 * - other anonymous: V8's heap pages, glibc's other arenas and its mmapped chunks, thread stacks.
 * V8's heap is inside "other anonymous"; its committed size is beside it in the stats.
 */

export interface ResidentBreakdown {
  webAssemblyMemoryMiB: number;
  jitCodeMiB: number;
  mallocBrkMiB: number;
  filesMiB: number;
  otherAnonymousMiB: number;
}

const WASM_RESERVATION_BYTES = 1024 ** 3;

/** undefined where /proc/self/smaps cannot be read (not Linux). */
export function residentBreakdown(): ResidentBreakdown | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return undefined;
  }
  return classifySmaps(text);
}

/**
 * The RSS of an smaps listing by kind. A WebAssembly memory is told by its layout as V8 makes it on
 * 64-bit Linux: the accessible part (rw-p) followed at once by the rest of its reservation, gigabytes
 * kept inaccessible (---p) until the memory grows into it. Where V8 could not reserve that much (a
 * low `ulimit -v`), a WebAssembly memory has no such neighbour and counts as other anonymous memory.
 */
export function classifySmaps(text: string): ResidentBreakdown {
  const mappings: { from: number; to: number; perms: string; path: string; rssKib: number }[] = [];
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      mappings.push({ from: Number.parseInt(header[1]!, 16), to: Number.parseInt(header[2]!, 16), perms: header[3]!, path: header[4]!, rssKib: 0 });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null && mappings.length > 0) mappings[mappings.length - 1]!.rssKib += Number(rss[1]);
  }
  const kib = { webAssemblyMemoryMiB: 0, jitCodeMiB: 0, mallocBrkMiB: 0, filesMiB: 0, otherAnonymousMiB: 0 };
  mappings.forEach((m, i) => {
    const next = mappings[i + 1];
    const wasmMemory =
      m.path === '' &&
      m.perms === 'rw-p' &&
      next !== undefined &&
      next.from === m.to &&
      next.path === '' &&
      next.perms.startsWith('---') &&
      next.to - next.from >= WASM_RESERVATION_BYTES;
    let kind: keyof ResidentBreakdown;
    if (m.path === '[heap]') kind = 'mallocBrkMiB';
    else if (m.path !== '' && !m.path.startsWith('[')) kind = 'filesMiB';
    else if (wasmMemory) kind = 'webAssemblyMemoryMiB';
    else if (m.path === '' && m.perms.includes('x')) kind = 'jitCodeMiB';
    else kind = 'otherAnonymousMiB';
    kib[kind] += m.rssKib;
  });
  const mib = (k: number) => Number((k / 1024).toFixed(1));
  return {
    webAssemblyMemoryMiB: mib(kib.webAssemblyMemoryMiB),
    jitCodeMiB: mib(kib.jitCodeMiB),
    mallocBrkMiB: mib(kib.mallocBrkMiB),
    filesMiB: mib(kib.filesMiB),
    otherAnonymousMiB: mib(kib.otherAnonymousMiB),
  };
}
