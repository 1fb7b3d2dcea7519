/*
 * Types for the two oidc-provider internals the baseline uses (bench/servers/baseline-storage.ts
 * says why). oidc-provider ships no types of its own; @types/oidc-provider covers the public API only.
 */
declare module 'oidc-provider/lib/adapters/memory_adapter.js' {
  import type { Adapter } from 'oidc-provider';

  const MemoryAdapter: new (model: string, store?: object, clockTolerance?: number) => Adapter;
  export default MemoryAdapter;
}

declare module 'oidc-provider/lib/helpers/lru.js' {
  export default class LRU {
    constructor(options: { maxSize: number });
  }
}
