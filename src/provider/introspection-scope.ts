import { AsyncLocalStorage } from 'node:async_hooks';
import type { Middleware } from 'koa';

/*
 * Which requests are introspections, for storage that may answer them from memory
 * (src/storage/introspection-grant-cache.ts) but must not answer anything else that way. The
 * scope is the request's async context, so a read deep in the adapter knows it without oidc-provider
 * passing anything down.
 */

export interface IntrospectionScope {
  /** Runs an introspection request (POST to `path`) inside the scope; every other request outside it. */
  middleware: Middleware;
  /** True while serving an introspection request. */
  active(): boolean;
}

export function createIntrospectionScope(path: string): IntrospectionScope {
  const scope = new AsyncLocalStorage<true>();
  return {
    middleware: (ctx, next) => (ctx.method === 'POST' && ctx.path === path ? scope.run(true, next) : next()),
    active: () => scope.getStore() === true,
  };
}
