import { randomBytes } from 'node:crypto';
import type { ParameterizedContext } from 'koa';
import type { AdapterPayload } from 'oidc-provider';
import type { TppFile } from '../sandbox/tpp-credentials.ts';
import type { ModelStore } from '../kernel/model-store.ts';

/*
 * The portal's memory of one developer's browser: which sandbox TPPs it created (so it may download
 * their files and watch their calls), in the short-lived store under a random id held in a __Host-
 * cookie (Secure, HttpOnly, SameSite=Strict) — as the consent dashboard's session. The private files
 * are kept apart, for a shorter time, readable only through the session that created them.
 */

export const PORTAL_COOKIE = '__Host-moat-portal';
const SESSION_MODEL = 'PortalSession';
const BUNDLE_MODEL = 'PortalBundle';
/** A developer's afternoon: the list of created TPPs outlives the downloadable keys. */
const SESSION_IDLE_SECONDS = 8 * 3600;
/** Enough TPPs for any honest experiment; a cap on what one browser can make the server generate. */
export const MAX_TPPS_PER_SESSION = 10;

export interface PortalTpp {
  id: string;
  name: string;
  orgId: string;
  softwareId: string;
  roles: string[];
  redirectUris: string[];
  subjectDn: string;
  thumbprint: string;
  createdAt: string;
  downloadableUntil: string;
}

export interface PortalSessions {
  /** The TPPs this browser created (none for a new browser). */
  tpps(ctx: ParameterizedContext): Promise<PortalTpp[]>;
  /** Adds a TPP and its files to this browser's session, starting one when needed. */
  add(ctx: ParameterizedContext, tpp: PortalTpp, files: TppFile[], downloadSeconds: number): Promise<void>;
  /** A file of a TPP this browser created, while it is downloadable. */
  file(ctx: ParameterizedContext, tppId: string, name: string): Promise<TppFile | undefined>;
}

export function createPortalSessions(store: ModelStore): PortalSessions {
  const idOf = (ctx: ParameterizedContext) => {
    const id = ctx.cookies.get(PORTAL_COOKIE);
    return id !== undefined && /^[A-Za-z0-9_-]{43}$/.test(id) ? id : undefined;
  };
  const load = async (id: string | undefined) => {
    if (id === undefined) return undefined;
    const session = (await store.find(SESSION_MODEL, id)) as (AdapterPayload & { tpps?: PortalTpp[] }) | undefined;
    return Array.isArray(session?.tpps) ? session.tpps : undefined;
  };
  return {
    async tpps(ctx) {
      const id = idOf(ctx);
      const tpps = await load(id);
      if (tpps !== undefined) await store.upsert(SESSION_MODEL, id!, { tpps } as AdapterPayload, SESSION_IDLE_SECONDS);
      return tpps ?? [];
    },
    async add(ctx, tpp, files, downloadSeconds) {
      let id = idOf(ctx);
      let tpps = await load(id);
      if (tpps === undefined) {
        id = randomBytes(32).toString('base64url');
        tpps = [];
        ctx.cookies.set(PORTAL_COOKIE, id, { httpOnly: true, secure: true, sameSite: 'strict', path: '/', signed: false, overwrite: true });
      }
      await store.upsert(BUNDLE_MODEL, `${id}:${tpp.id}`, { files } as unknown as AdapterPayload, downloadSeconds);
      await store.upsert(SESSION_MODEL, id!, { tpps: [tpp, ...tpps] } as AdapterPayload, SESSION_IDLE_SECONDS);
    },
    async file(ctx, tppId, name) {
      const id = idOf(ctx);
      if (id === undefined || !(await load(id))?.some((t) => t.id === tppId)) return undefined;
      const bundle = (await store.find(BUNDLE_MODEL, `${id}:${tppId}`)) as { files?: TppFile[] } | undefined;
      return bundle?.files?.find((f) => f.name === name);
    },
  };
}
