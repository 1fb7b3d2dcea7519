import { randomUUID, type X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type Provider from 'oidc-provider';
import type { GatewayCheckConfig, GatewayRoute } from '../config/gateway-check-schema.ts';
import type { Consent } from '../consents/consent.ts';
import { verifyDpopProof, type DpopNonces, type ProofReplayStore } from '../http/dpop-proof.ts';
import { bearerErrorResponse } from '../kernel/error-responses.ts';
import { TokenRejected } from '../kernel/token-rejected.ts';
import { certificateThumbprint } from '../pki/certificate-chain.ts';
import { FORWARDED_CERT_HEADERS, readForwardedCertificate, type ForwardedCertFormat } from '../pki/forwarded-certificate.ts';
import type { TokenFacts, TokenFactsCache } from './token-facts.ts';

/*
 * The decision behind the gateway check endpoint: may this API request, as the gateway saw it, go
 * through to the bank's API? The checks, in order, each one step:
 *
 *   readOriginalRequest → matchRoute → readAccessToken → loadTokenFacts (active token, grant,
 *   client, a consent still Authorised) → checkClientStanding → checkResource → checkScopes →
 *   checkBinding → answer
 *
 * checkBinding is unconditional: a token bound to a certificate (RFC 8705 §3) is accepted only with
 * that certificate as the gateway terminated it, a token bound to a DPoP key (RFC 9449 §7) only with
 * a fresh proof of that key whose jti is claimed once across every instance, and a token bound to
 * neither is refused (FAPI 2.0 SP §5.3.2.1: only sender-constrained access tokens). No setting turns
 * it off; the route configuration chooses a resource and scopes, never checks.
 */

/** `X-Original-Method` / `X-Original-URI`: what nginx's auth_request is told to send; Envoy's ext_authz sends the request's own method and path. */
const ORIGINAL_METHOD = 'x-original-method';
const ORIGINAL_URI = 'x-original-uri';
/** FAPI 1.0 Baseline §6.2.1 / FAPI 2.0: the interaction id is an RFC 4122 UUID. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Forwarded certificate header values whose thumbprint is remembered: a bank's TPPs, with room to spare. */
const THUMBPRINTS_KEPT = 4096;

/** Consent states whose tokens may still be used. */
const LIVE_CONSENT = new Set<Consent['status']>(['Authorised']);

export interface GatewayCheckDeps {
  config: GatewayCheckConfig;
  /** The forwarded-certificate form the gateway sends (`gatewayCheck.forwardedCertificate` or `trustedProxies.format`). */
  certificateFormat: ForwardedCertFormat;
  provider: Provider;
  consents: { findByGrantId(grantId: string): Promise<Consent | undefined> };
  /** Whether a token bound to this certificate may still be used (the registry: revoked, retired). */
  bindingAlive(thumbprint: string): Promise<boolean>;
  /** Why a client may not be served (quarantined), or undefined. */
  quarantined(clientId: string): string | undefined;
  replay: ProofReplayStore;
  nonces: DpopNonces;
  cache: TokenFactsCache;
  /** An allowed check is the TPP using the consent behind the token's grant (consent-use.ts); returns at once. */
  onConsentUse?: (grantId: string) => void;
  /** Epoch seconds; a test may freeze it. */
  now?: () => number;
  /** A forwarded certificate header the gateway sent that could not be read. */
  onMalformedCertificate?: (detail: string) => void;
}

/** The answer the gateway passes on: 200 with headers for the upstream, or a refusal for the client. */
export interface GatewayVerdict {
  status: 200 | 401 | 403;
  headers: Record<string, string>;
  /** For the log: which client, which outcome; never the token. */
  clientId?: string;
  outcome: string;
}

interface Check {
  method: string;
  path: string;
  route: GatewayRoute;
  token: string;
  facts: TokenFacts;
}

export type GatewayCheck = (req: IncomingMessage) => Promise<GatewayVerdict>;

export function createGatewayCheck(deps: GatewayCheckDeps): GatewayCheck {
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  const origin = new URL(deps.config.apiOrigin).origin;
  // Longest prefix first, so /accounts/payments beats /accounts.
  const routes = [...deps.config.routes].sort((a, b) => b.prefix.length - a.prefix.length);

  const readOriginalRequest = (req: IncomingMessage) => {
    const method = (single(req, ORIGINAL_METHOD) ?? req.method ?? '').toUpperCase();
    const uri = single(req, ORIGINAL_URI) ?? req.url ?? '/';
    const url = URL.parse(uri, origin);
    // 403, not the code's own 401: the gateway's request is at fault, and another token would not help.
    if (url === null || url.origin !== origin)
      throw new TokenRejected('invalid_request', 'the gateway sent no request URI Moat can read (X-Original-URI)', 403);
    return { method, path: url.pathname };
  };

  const matchRoute = (path: string): GatewayRoute => {
    const route = routes.find((r) => path === r.prefix || path.startsWith(r.prefix.endsWith('/') ? r.prefix : `${r.prefix}/`));
    // A path nobody configured is refused: Moat does not guess what an API needs.
    if (route === undefined) throw new TokenRejected('insufficient_scope', `no gatewayCheck route covers ${path.slice(0, 200)}`);
    return route;
  };

  const readAccessToken = (req: IncomingMessage): string => {
    const [scheme, value, ...rest] = (single(req, 'authorization') ?? '').split(' ');
    if (value === undefined || value === '' || rest.length > 0 || !/^(Bearer|DPoP)$/i.test(scheme ?? '')) {
      throw new TokenRejected('invalid_request', 'send the access token in the Authorization header (RFC 6750 §2.1 / RFC 9449 §7.1)');
    }
    return value;
  };

  const readFacts = async (token: string): Promise<TokenFacts | undefined> => {
    const at = await deps.provider.AccessToken.find(token);
    if (at === undefined || at.isExpired || at.grantId === undefined || at.clientId === undefined) return undefined;
    const [grant, client, consent] = await Promise.all([
      deps.provider.Grant.find(at.grantId),
      deps.provider.Client.find(at.clientId),
      deps.consents.findByGrantId(at.grantId),
    ]);
    if (grant === undefined || client === undefined) return undefined;
    if (consent !== undefined && !LIVE_CONSENT.has(consent.status)) return undefined;
    const granted = consent?.granted;
    return {
      tokenId: at.jti,
      clientId: at.clientId,
      grantId: at.grantId,
      accountId: at.accountId,
      scopes: String(at.scope ?? '')
        .split(' ')
        .filter((s) => s !== ''),
      audiences: [at.aud ?? []].flat() as string[],
      x5t: (at as unknown as { 'x5t#S256'?: string })['x5t#S256'],
      jkt: (at as unknown as { jkt?: string }).jkt,
      // A consent past its expiry ends its tokens (the expiry sweep revokes the grant within a
      // minute); kept facts never outlive it either.
      expiresAt: Math.min(at.exp!, consent?.expiresAt === undefined ? Number.POSITIVE_INFINITY : Math.floor(consent.expiresAt.getTime() / 1000)),
      consent:
        consent === undefined
          ? undefined
          : {
              id: consent.id,
              accountIds:
                granted?.type === 'account_information'
                  ? granted.accounts.map((a) => a.accountId)
                  : granted?.type === 'payment_initiation'
                    ? [granted.debtorAccount.accountId]
                    : [],
              permissions: granted?.type === 'account_information' ? granted.permissions : [],
            },
    };
  };

  const loadTokenFacts = async (token: string): Promise<TokenFacts> => {
    const facts = await deps.cache.get(token, () => readFacts(token));
    if (facts === undefined || facts.expiresAt <= now()) throw new TokenRejected('invalid_token', 'the access token is not active');
    return facts;
  };

  const checkClientStanding = (facts: TokenFacts) => {
    const reason = deps.quarantined(facts.clientId);
    if (reason !== undefined) throw new TokenRejected('invalid_token', 'the client of this access token is quarantined by the bank');
  };

  const checkResource = ({ facts, route }: Check) => {
    // RFC 8707 §2 / RFC 9068 §4: a token is for the resources named in its audience and no other.
    if (!facts.audiences.includes(route.resource)) throw new TokenRejected('invalid_token', `the access token is not meant for ${route.resource}`);
  };

  const checkScopes = ({ facts, route }: Check) => {
    const missing = route.scopes.filter((s) => !facts.scopes.includes(s));
    if (missing.length > 0) throw new TokenRejected('insufficient_scope', `this call needs the ${missing.join(' ')} scope`);
  };

  // The same few TPP certificates arrive on every request: the thumbprint of a header value already
  // read is remembered (bounded), so X.509 parsing is not paid per request. The header's bytes are
  // the certificate, so the same value always means the same thumbprint.
  const thumbprints = new Map<string, string>();
  const certificateHeader = FORWARDED_CERT_HEADERS[deps.certificateFormat];
  const presentedThumbprint = (req: IncomingMessage): string | undefined => {
    const raw = req.headersDistinct[certificateHeader]?.join('\n');
    const known = raw === undefined ? undefined : thumbprints.get(raw);
    if (known !== undefined) return known;
    let certificate: X509Certificate | undefined;
    try {
      certificate = readForwardedCertificate(deps.certificateFormat, req.headersDistinct)?.certificate;
    } catch (err) {
      deps.onMalformedCertificate?.((err as Error).message);
      return undefined;
    }
    if (certificate === undefined || raw === undefined) return undefined;
    const thumbprint = certificateThumbprint(certificate);
    if (thumbprints.size >= THUMBPRINTS_KEPT) thumbprints.delete(thumbprints.keys().next().value!);
    thumbprints.set(raw, thumbprint);
    return thumbprint;
  };

  const checkBinding = async (req: IncomingMessage, { facts, token, method, path }: Check): Promise<string | undefined> => {
    if (facts.x5t === undefined && facts.jkt === undefined) {
      throw new TokenRejected(
        'invalid_token',
        'the access token is not sender-constrained; the APIs accept only certificate- or DPoP-bound tokens (FAPI 2.0 SP section 5.3.2.1)',
      );
    }
    if (facts.x5t !== undefined) {
      const thumbprint = presentedThumbprint(req);
      if (thumbprint === undefined) throw new TokenRejected('invalid_token', 'this access token is bound to a client certificate; present it (RFC 8705 §3)');
      if (thumbprint !== facts.x5t) throw new TokenRejected('invalid_token', 'this access token is bound to a different client certificate (RFC 8705 §3)');
      if (!(await deps.bindingAlive(facts.x5t)))
        throw new TokenRejected('invalid_token', 'this access token is bound to a certificate that can no longer be used (revoked or retired)');
    }
    if (facts.jkt === undefined) return undefined;
    return verifyDpopProof(
      {
        authorization: single(req, 'authorization') ?? '',
        proof: single(req, 'dpop') ?? '',
        method,
        htu: `${origin}${path}`,
        accessToken: token,
        jkt: facts.jkt,
      },
      { replay: deps.replay, nonces: deps.nonces, now },
    );
  };

  return async (req) => {
    const interactionId = UUID.test(single(req, 'x-fapi-interaction-id') ?? '') ? single(req, 'x-fapi-interaction-id')! : randomUUID();
    let clientId: string | undefined;
    try {
      const { method, path } = readOriginalRequest(req);
      const route = matchRoute(path);
      const token = readAccessToken(req);
      const facts = await loadTokenFacts(token);
      clientId = facts.clientId;
      checkClientStanding(facts);
      const check: Check = { method, path, route, token, facts };
      checkResource(check);
      checkScopes(check);
      const nonce = await checkBinding(req, check);
      deps.onConsentUse?.(facts.grantId);
      return { status: 200, clientId, outcome: 'allowed', headers: answerHeaders(facts, interactionId, nonce) };
    } catch (err) {
      if (!(err instanceof TokenRejected)) throw err;
      const refusal = bearerErrorResponse(err, { authorization: single(req, 'authorization') ?? '', challengeStatusesOnly: true });
      return {
        status: refusal.status as 401 | 403,
        outcome: err.error,
        ...(clientId === undefined ? {} : { clientId }),
        headers: {
          'www-authenticate': refusal.headers['WWW-Authenticate']!,
          'x-moat-error': err.error,
          'x-fapi-interaction-id': interactionId,
          ...(err.nonce === undefined ? {} : { 'dpop-nonce': err.nonce }),
        },
      };
    }
  };
}

/** What the upstream API may trust: who calls, under which consent, for which accounts and permissions. */
function answerHeaders(facts: TokenFacts, interactionId: string, nonce: string | undefined): Record<string, string> {
  return {
    'x-moat-client-id': facts.clientId,
    'x-moat-scope': facts.scopes.join(' '),
    ...(facts.accountId === undefined ? {} : { 'x-moat-subject': facts.accountId }),
    ...(facts.consent === undefined
      ? {}
      : {
          'x-moat-consent-id': facts.consent.id,
          'x-moat-account-ids': facts.consent.accountIds.join(','),
          'x-moat-permissions': facts.consent.permissions.join(','),
        }),
    'x-fapi-interaction-id': interactionId,
    ...(nonce === undefined ? {} : { 'dpop-nonce': nonce }),
  };
}

/** A header that must appear once; a repeated one is as good as absent. */
function single(req: IncomingMessage, name: string): string | undefined {
  const values = req.headersDistinct[name];
  return values?.length === 1 ? values[0] : undefined;
}
