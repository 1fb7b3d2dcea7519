import { randomBytes } from 'node:crypto';
import type { ParameterizedContext } from 'koa';
import type { ModelStore } from '../kernel/model-store.ts';

/*
 * The consent dashboard's own sign-in session, separate from oidc-provider's: a random id in a
 * __Host- cookie (Secure, HttpOnly, SameSite=Strict), the session in the short-lived store (Redis
 * when configured, so any instance serves it), an idle timeout refreshed on each request, and a new
 * id at every sign-in so a planted id is worthless.
 */

export const SESSION_COOKIE = '__Host-moat-customer';
const MODEL = 'CustomerSession';

/** How the session's customer signed in: `strong` after a password and a second factor (RTS on SCA Art. 4). */
export type SessionStrength = 'strong' | 'password';

export interface CustomerSessions {
  start(ctx: ParameterizedContext, customerId: string, strength: SessionStrength): Promise<void>;
  /** The password was right; the second factor is still to come. Nobody is signed in yet. */
  startPending(ctx: ParameterizedContext, customerId: string): Promise<void>;
  /** The customer whose password was right and whose second factor is awaited. */
  pending(ctx: ParameterizedContext): Promise<string | undefined>;
  /** The signed-in customer, refreshing the idle timeout; undefined when signed out or expired. */
  current(ctx: ParameterizedContext): Promise<string | undefined>;
  /** The signed-in customer and how they signed in. */
  currentWithStrength(ctx: ParameterizedContext): Promise<{ customerId: string; strength: SessionStrength } | undefined>;
  end(ctx: ParameterizedContext): Promise<void>;
}

export function createCustomerSessions(store: ModelStore, idleSeconds: number): CustomerSessions {
  const idOf = (ctx: ParameterizedContext) => {
    const id = ctx.cookies.get(SESSION_COOKIE);
    return id !== undefined && /^[A-Za-z0-9_-]{43}$/.test(id) ? id : undefined;
  };
  const setCookie = (ctx: ParameterizedContext, id: string | null) =>
    ctx.cookies.set(SESSION_COOKIE, id, {
      httpOnly: true,
      secure: true,
      sameSite: 'strict',
      path: '/',
      signed: false,
      overwrite: true,
      ...(id === null ? { maxAge: 0 } : {}),
    });
  const begin = async (ctx: ParameterizedContext, payload: Record<string, string>) => {
    const previous = idOf(ctx);
    if (previous !== undefined) await store.destroy(MODEL, previous);
    const id = randomBytes(32).toString('base64url');
    await store.upsert(MODEL, id, payload, idleSeconds);
    setCookie(ctx, id);
  };
  const currentWithStrength = async (ctx: ParameterizedContext) => {
    const id = idOf(ctx);
    if (id === undefined) return undefined;
    const session = await store.find(MODEL, id);
    if (typeof session?.accountId !== 'string') return undefined;
    await store.upsert(MODEL, id, session, idleSeconds);
    return { customerId: session.accountId, strength: session.strength === 'strong' ? ('strong' as const) : ('password' as const) };
  };
  return {
    start: (ctx, customerId, strength) => begin(ctx, { accountId: customerId, strength }),
    startPending: (ctx, customerId) => begin(ctx, { pendingAccountId: customerId }),
    async pending(ctx) {
      const id = idOf(ctx);
      const session = id === undefined ? undefined : await store.find(MODEL, id);
      return typeof session?.pendingAccountId === 'string' ? session.pendingAccountId : undefined;
    },
    current: async (ctx) => (await currentWithStrength(ctx))?.customerId,
    currentWithStrength,
    async end(ctx) {
      const id = idOf(ctx);
      if (id !== undefined) await store.destroy(MODEL, id);
      setCookie(ctx, null);
    },
  };
}
