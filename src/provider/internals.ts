import type { Context } from 'koa';
import type { AuthorizationCode, errors, KoaContextWithOIDC, Provider } from 'oidc-provider';
// @ts-expect-error -- oidc-provider publishes no types for its helpers; the one use below declares the shape it relies on.
import ServerChallenge from 'oidc-provider/lib/helpers/challenge.js';
// @ts-expect-error -- as above; replaceProviderKeys says why.
import initializeKeyStore from 'oidc-provider/lib/helpers/initialize_keystore.js';
import type { DpopNonces } from '../http/bearer-token.ts';
import type { Logger } from '../observability/logger.ts';

/*
 * Every place Moat reaches into oidc-provider's insides, or relies on how they work, each with the
 * reason no public API does. The files that do it import what they rely on from here, so an upgrade
 * of oidc-provider is checked against this one file.
 */

/**
 * oidc-provider's own error descriptions, which actionable-errors.ts recognises to say more than
 * they do. Its errors carry no code finer than the RFC's (a replayed DPoP proof and a wrong
 * code_verifier are both `invalid_grant`), so its words are the only way to tell them apart; each
 * names the file that says it. A changed wording only loses the better description.
 */
export const PROVIDER_WORDING = {
  /** lib/helpers/validate_dpop.js (checkDpopReplay), at every endpoint that checks proofs. */
  dpopReplayed: 'DPoP proof JWT Replay detected',
  /** lib/helpers/validate_dpop.js: the proof did not verify (its signature, typ, alg); the cause says why. */
  dpopKeyBinding: 'invalid DPoP key binding',
  /** lib/helpers/validate_dpop.js. */
  dpopHtuMismatch: 'DPoP proof htu mismatch',
  /** lib/helpers/validate_dpop.js. */
  dpopHtmMismatch: 'DPoP proof htm mismatch',
  /** lib/helpers/grant_common.js (issueTokens): a proof of another key than the code's dpop_jkt. */
  dpopJktMismatch: 'DPoP proof key thumbprint does not match dpop_jkt',
  /** lib/helpers/grant_common.js (issueTokens): no proof for a code bound to a DPoP key. */
  dpopMissingForBoundCode: 'missing DPoP proof JWT',
  /** lib/helpers/sender_constraints.js: no proof from a client registered for DPoP-bound tokens. */
  dpopRequired: 'DPoP proof JWT not provided',
  /** lib/actions/userinfo.js: a token without the openid scope. */
  userinfoWithoutOpenid: 'access token missing openid scope',
  /** lib/actions/userinfo.js: a token issued for a resource server (RFC 8707). */
  userinfoAudience: 'token audience prevents accessing the userinfo endpoint',
} as const;

/**
 * The authorization code a failed token request spent, if it got that far (token-failure.ts).
 * oidc-provider's authorization_code grant (lib/actions/grants/authorization_code.js) makes the code
 * the request's `AuthorizationCode` entity right after consumeGrantSource spent it, and only then
 * runs issueTokens (lib/helpers/grant_common.js), whose checks — the DPoP proof's replay and key,
 * the account — can still refuse; a request refused earlier has no such entity. No public API says
 * whether a failed request spent its code.
 */
export function spentAuthorizationCode(ctx: KoaContextWithOIDC): AuthorizationCode | undefined {
  return ctx.oidc.route === 'token' ? ctx.oidc.entities.AuthorizationCode : undefined;
}

/**
 * Undoes the spending of `code`, the instance the request read: AuthorizationCode#consume
 * (lib/models/authorization_code.js) marks only the stored entry consumed, not the instance, and
 * BaseToken#save (lib/models/base_token.js) stores it with the lifetime it has left; so saving it
 * again stores it unconsumed, as it was before the request. oidc-provider emits
 * `authorization_code.saved` for it, as for a code it issues.
 */
export async function unspendAuthorizationCode(code: AuthorizationCode): Promise<void> {
  await code.save();
}

/**
 * A request body read before oidc-provider sees it: storable-input.ts reads and checks it first,
 * registration-middleware.ts hands on the metadata it approved. lib/shared/selective_body.js reads
 * the request stream itself when it is still readable, within its 56 KiB limit; when an upstream
 * middleware already read it, it falls back to `ctx.request.body` — a string is parsed as the
 * endpoint's form or JSON, an object taken as the parsed JSON — and applies no limit of its own, so
 * the reader applies the same limit.
 */
export const PROVIDER_BODY = {
  limit: 56 * 1024,
  handOn(ctx: Context, body: string | Record<string, unknown>): void {
    (ctx.request as { body?: unknown }).body = body;
  },
};

/** oidc-provider's nonce maker (lib/helpers/challenge.js), as its token endpoint uses it. */
type Challenge = { nextChallenge(): string; checkChallenge(challenge: string): boolean };

/**
 * DPoP nonces (RFC 9449 §8, §9) exactly as the token endpoint makes and checks them:
 * oidc-provider's own ServerChallenge over the same nonce secret with the label its provider uses
 * ('DPoP', lib/provider.js). Moat's APIs share the token endpoint's origin, and clients keep one
 * DPoP-Nonce per origin (oauth4webapi does), so the APIs must accept the token endpoint's nonces
 * and hand out nonces the token endpoint accepts. oidc-provider has no public way to make or check
 * its nonces.
 */
export function createDpopNonces(nonceSecret: Buffer): DpopNonces {
  const challenge = new (ServerChallenge as new (secret: Buffer, info: string) => Challenge)(nonceSecret, 'DPoP');
  return {
    next: () => challenge.nextChallenge(),
    check: (nonce) => challenge.checkChallenge(nonce),
  };
}

/**
 * Hands a running provider a new key set (keys.source database: a rotation made by any instance).
 * oidc-provider reads `jwks` once, in its constructor (lib/provider.js), through
 * lib/helpers/initialize_keystore.js, which checks the keys as at start-up and replaces, in one
 * synchronous step, both the keystore it signs and verifies with and the JWKS its jwks endpoint
 * serves (`instance(provider).keystore`, `.jwks`). Every signer reads the keystore when it signs
 * (lib/models/id_token.js, lib/models/formats/jwt.js), so the next signature uses the new set, and
 * what the provider signs with is always what it publishes. There is no public way to change keys
 * without a new Provider.
 */
export function replaceProviderKeys(provider: Provider, jwks: { keys: object[] }): void {
  (initializeKeyStore as (this: Provider, jwks: { keys: object[] }) => void).call(provider, jwks);
}

/**
 * A check before every client lookup. oidc-provider finds a client through the static
 * `provider.Client.find` at client authentication (every method), the authorization endpoint, PAR,
 * introspection and revocation, and has no hook there; wrapping the static is the one place that
 * covers them all. `refuse` throws the error to answer with, or returns for a client that may go on.
 */
export function checkBeforeClientLookup(provider: Provider, refuse: (clientId: string) => void): void {
  const find = provider.Client.find.bind(provider.Client);
  provider.Client.find = async (id: string, ...rest: unknown[]) => {
    refuse(id);
    return (find as (id: string, ...rest: unknown[]) => ReturnType<typeof find>)(id, ...rest);
  };
}

/**
 * The route names oidc-provider gives `ctx.oidc.route` (lib/helpers/defaults.js routes), which
 * provider/consent-middleware.ts reads after the endpoint ran: a PAR answered 201 has already
 * stored its request (lib/actions/authorization/process_request_object.js then pushed.js), so
 * turning the answer into a 400 leaves an unused request that expires; a token answer's body is a
 * plain object the middleware may extend with the consent id.
 */
export const PROVIDER_ROUTE = {
  pushedAuthorizationRequest: 'pushed_authorization_request',
  token: 'token',
  introspection: 'introspection',
} as const;

type BackchannelRequest = InstanceType<Provider['BackchannelAuthenticationRequest']>;

/**
 * Stores the customer's decision on a backchannel authentication request (CIBA) as
 * `provider.backchannelResult` does (lib/provider.js) — the grant and how the customer
 * authenticated, or the error — without the notification it then makes itself. For a ping-mode
 * client backchannelResult calls `client.backchannelPing` (lib/models/client.js) through
 * lib/helpers/fetch_request.js: system CAs only (not the CA configured for TPP notification
 * endpoints), every special-use address refused whatever the mode (the sandbox's loopback TPPs
 * too), one try of up to 2.5 s inside the customer's approval, no retry. Moat's
 * ciba/ping-delivery.ts makes every call instead, with its CA, outbound guard, timeout and
 * back-off, after the result is stored. Field for field what backchannelResult assigns.
 */
export async function saveBackchannelResult(
  provider: Provider,
  request: BackchannelRequest,
  result: string | InstanceType<typeof errors.OIDCProviderError>,
  options: NonNullable<Parameters<Provider['backchannelResult']>[2]>,
): Promise<void> {
  if (typeof result === 'string') {
    const grant = await provider.Grant.find(result);
    if (grant === undefined) throw new Error('Grant not found');
    if (grant.clientId !== request.clientId || grant.accountId !== request.accountId) throw new Error('the grant is not of this request');
    Object.assign(request, {
      grantId: grant.jti,
      acr: options.acr,
      amr: options.amr,
      authTime: options.authTime,
      sessionUid: options.sessionUid,
      expiresWithSession: options.expiresWithSession,
      sid: options.sid,
      rar: options.rar,
    });
  } else {
    Object.assign(request, { error: result.error, error_description: result.error_description });
  }
  await request.save();
}

type Grant = InstanceType<Provider['Grant']>;

/** A merge written into a grant, and how to take it back. */
export interface GrantMerge {
  grantId: string;
  /** The grant's details after the merge. */
  rar: Grant['rar'];
  /** Puts the grant back as it was before the merge (the consent could not be amended). */
  undo(): Promise<void>;
}

/** What the grant held before a merge: the fields a merge changes. */
type GrantState = Pick<Grant, 'openid' | 'resources' | 'rejected' | 'rar' | 'exp'>;

/**
 * FAPI Grant Management `merge`: the customer's new decision written into the grant the earlier
 * tokens already belong to, so they stay valid and, through the grant, carry the merged consent
 * (provider-hooks.ts reads a token's authorization_details from its grant). `add` adds what the
 * authorization asked with the public Grant API (addOIDCScope, addResourceScope: unions). Two
 * things it has no API for:
 * - the granted detail is replaced, not added: Grant#addRar (lib/models/grant.js) only pushes onto
 *   the grant's `rar` array, and a merged consent is one detail, so the array itself is replaced;
 * - the grant lives on as a new one would: BaseModel#save (lib/models/base_model.js) stores the
 *   grant with the `exp` it was found with (remainingTTL); with `exp` unset, the opaque format
 *   (lib/models/formats/opaque.js) takes the lifetime from ttl.Grant again — capped by the merged
 *   consent's expiry — counted from now.
 * Undefined when the grant is gone (revoked meanwhile) or is not this client's and customer's.
 */
export async function mergeIntoGrant(
  provider: Provider,
  grantId: string,
  owner: { clientId: string; accountId: string },
  merge: {
    add: (grant: Grant) => void;
    /** The merged detail: written when `asked` (the request carried details) or the grant carries one already. */
    rar?: NonNullable<Grant['rar']>;
    asked: boolean;
  },
): Promise<GrantMerge | undefined> {
  const grant = await provider.Grant.find(grantId);
  if (grant === undefined || grant.clientId !== owner.clientId || grant.accountId !== owner.accountId) return undefined;
  const before: GrantState = structuredClone({ openid: grant.openid, resources: grant.resources, rejected: grant.rejected, rar: grant.rar, exp: grant.exp });
  merge.add(grant);
  if (merge.rar !== undefined && (merge.asked || grant.rar !== undefined)) grant.rar = merge.rar;
  grant.exp = undefined;
  await grant.save();
  return {
    grantId,
    rar: grant.rar,
    async undo() {
      // Revoked meanwhile: nothing to put back (and nothing to bring back to life).
      const now = await provider.Grant.find(grantId);
      if (now === undefined) return;
      if (before.exp !== undefined && before.exp <= Math.floor(Date.now() / 1000)) {
        await now.destroy();
        return;
      }
      Object.assign(now, before);
      await now.save();
    },
  };
}

/**
 * oidc-provider's notices (lib/helpers/attention.js) are written with console.warn and console.info
 * as one plain line each ("oidc-provider WARNING: …", coloured on a terminal), outside Moat's JSON
 * log, and there is no option to route them. So those lines, and only those, go to the logger of
 * the most recently started Moat of this process that is still running (a process runs one; tests
 * start many): a notice Moat causes by design at debug with the reason, any other as the warning or
 * notice it is (event `provider.notice`), or to the console as before where that logger's level
 * would drop it, or where no Moat runs. Any other console output is left as it was.
 */
export const EXPECTED_PROVIDER_NOTICES: readonly { startsWith: string; why: string }[] = [
  {
    // lib/shared/selective_body.js, once per process, at the first form or JSON body.
    startsWith: 'already parsed request body detected',
    why: 'Moat reads and checks every request body before oidc-provider does and hands it on (PROVIDER_BODY)',
  },
];
const PROVIDER_NOTICE = /^(?:\x1b\[[0-9;]*m)?oidc-provider (WARNING|NOTICE): ([\s\S]*?)(?:\x1b\[0m)?$/;
const noticeLoggers: Logger[] = [];
let consoleWrapped = false;

/** Routes oidc-provider's notices to `logger` until the returned function is called (at the Moat's close). */
export function routeProviderNotices(logger: Logger): () => void {
  noticeLoggers.push(logger);
  if (!consoleWrapped) {
    consoleWrapped = true;
    for (const method of ['warn', 'info'] as const) {
      const original = console[method];
      console[method] = (...args: unknown[]) => {
        const notice = args.length === 1 && typeof args[0] === 'string' ? PROVIDER_NOTICE.exec(args[0]) : null;
        const logger = noticeLoggers.at(-1);
        if (notice !== null && logger !== undefined) {
          const [, kind, text] = notice as unknown as [string, 'WARNING' | 'NOTICE', string];
          const expected = EXPECTED_PROVIDER_NOTICES.find((n) => text.startsWith(n.startsWith));
          if (expected !== undefined) {
            logger.debug({ event: 'provider.notice', reason: expected.why }, `oidc-provider: ${text}`);
            return;
          }
          const level = kind === 'WARNING' ? 'warn' : 'info';
          if (logger.isLevelEnabled(level)) {
            logger[level]({ event: 'provider.notice' }, `oidc-provider: ${text}`);
            return;
          }
        }
        original.apply(console, args);
      };
    }
  }
  return () => {
    const at = noticeLoggers.lastIndexOf(logger);
    if (at >= 0) noticeLoggers.splice(at, 1);
  };
}
