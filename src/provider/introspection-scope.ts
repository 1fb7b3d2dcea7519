import { AsyncLocalStorage } from 'node:async_hooks';
import type { Middleware } from 'koa';

/*
 * Which requests are introspections, for storage that may answer them differently
 * (src/storage/cached-model-store.ts, src/storage/introspection-token-lookups.ts) but must
 * not answer anything else that way. The scope is the request's async context, so a read deep in
 * the adapter knows it without oidc-provider passing anything down.
 */

/** What one introspection request's reads share. */
export interface IntrospectionRequest {
  /** The short-lived token lookups made so far, by token value: whether each found an entry. */
  readonly tokenLookups: Map<string, Promise<boolean>[]>;
}

export interface IntrospectionScope {
  /** Runs an introspection request (POST to `path`) inside the scope; every other request outside it. */
  middleware: Middleware;
  /** True while serving an introspection request. */
  active(): boolean;
  /** The introspection request being served, if any. */
  current(): IntrospectionRequest | undefined;
}

export function createIntrospectionScope(path: string): IntrospectionScope {
  const scope = new AsyncLocalStorage<IntrospectionRequest>();
  return {
    middleware: (ctx, next) => (ctx.method === 'POST' && ctx.path === path ? scope.run({ tokenLookups: new Map() }, next) : next()),
    active: () => scope.getStore() !== undefined,
    current: () => scope.getStore(),
  };
}
