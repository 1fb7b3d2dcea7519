import { CLIENT_AUTH_METHODS } from '../kernel/client-authentication.ts';
import { CIBA_GRANT_TYPE } from '../kernel/grant-types.ts';
import { purposeParam } from '../consents/request-purpose.ts';
import { GRANT_MANAGEMENT_ACTIONS, GRANT_MANAGEMENT_SCOPES, GRANTS_PATH, grantManagementParams } from '../consents/grant-management.ts';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import Provider, {
  errors,
  ExternalSigningKey,
  type CIBAEnabledConfiguration,
  type ClientMetadata,
  type Configuration,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import type { MoatConfig, ResourceServerConfig } from '../config/schema.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { cappedByConsent, consentOfTokenOnce, consentTokenClaims, INTENT_CLAIM, richAuthorizationRequestsFeature } from '../consents/provider-hooks.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import type { CertificateGate } from '../certificates/certificate-gate.ts';
import { distinguishedNamesEqual, parseDistinguishedName } from '../pki/distinguished-name.ts';
import { FAPI_PROFILE_METADATA, isFapiProfile, providerProfileFor, requiresJarm, requiresSignedRequestObject } from './fapi-profile.ts';
import { createResourceServerRegistry } from './resource-servers.ts';
import { EXTERNAL_SIGNING_ACK } from './external-signing-keys.ts';
import { isRegistrationApproved } from '../registration/approval.ts';
import { ACR_VALUES_SUPPORTED } from '../sca/authentication.ts';
import { authenticationTokenClaims, scaInteractionPolicy } from './sca-policy.ts';
import { checkBeforeClientLookup } from './internals.ts';
import { NOTIFICATION_URI_METADATA, notificationUriProblem } from '../certificates/expiry-notices.ts';
import { SIGNING_ALGORITHMS, type FapiProfile } from '../config/schema.ts';

export interface ProviderDependencies {
  config: MoatConfig;
  adapter: NonNullable<Configuration['adapter']>;
  jwks: { keys: object[] };
  cookieKeys: string[];
  dpopNonceSecret: Buffer;
  customers: CustomerDirectory;
  consents: ConsentService;
  /** Which certificate the request presented (TLS or trusted forwarded header) and whether it chains. */
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  /** The certificate registry's verdict on the presented certificate, and on a token's binding. */
  certificateGate: CertificateGate;
  /** Renders an error page for errors that cannot be sent to the client's redirect_uri. */
  renderError: NonNullable<Configuration['renderError']>;
  /** The languages of the customer pages (views/locales), advertised as ui_locales_supported. */
  uiLocales?: string[];
  /** Threat detection's restrictions on a client (quarantine, step-up); none when absent. */
  clientStanding?: ClientStanding;
  /** The clock for Moat's own time rules (the SCA re-authentication period); tests control it. */
  now?: () => Date;
  /** Decoupled authorisation (src/ciba): oidc-provider's ciba hooks; the feature is off without them. */
  ciba?: CibaProviderHooks;
}

/** What src/ciba gives oidc-provider's `ciba` feature: the customer lookup, the bank app, the lifetime. */
export interface CibaProviderHooks {
  hooks: Omit<CIBAEnabledConfiguration, 'enabled' | 'deliveryModes'>;
  /** The lifetime of a request (`ttl.BackchannelAuthenticationRequest`), given the TPP's requested_expiry. */
  expiresIn: (requestedExpiry: number | undefined) => number;
}

/** What oidc-provider must know, synchronously, of a client's standing with the bank's security team. */
export interface ClientStanding {
  /** Why the client may not authenticate (quarantined), or undefined. */
  quarantined(clientId: string): string | undefined;
  /** The access-token lifetime cap while the client is stepped up (no refresh meanwhile), or undefined. */
  steppedUp(clientId: string): { accessTokenTtl: number; reason: string } | undefined;
}

/** Extra client metadata Moat understands (RFC 7591 §2 allows extensions). */
export const EXTRA_CLIENT_METADATA = [
  FAPI_PROFILE_METADATA,
  'software_id',
  'software_version',
  'software_statement',
  'software_roles',
  'org_id',
  'org_name',
  NOTIFICATION_URI_METADATA,
] as const;

/** Where oidc-provider serves each endpoint (its `routes`), for the middleware in front of one. */
export const PROVIDER_ROUTES = {
  authorization: '/authorize',
  pushed_authorization_request: '/par',
  token: '/token',
  introspection: '/introspect',
  revocation: '/revoke',
  registration: '/register',
  userinfo: '/userinfo',
  jwks: '/jwks',
  end_session: '/logout',
  backchannel_authentication: '/backchannel',
} as const;

/**
 * oidc-provider configured for the FAPI profiles. This is the protocol policy in one place: which
 * features are on, which algorithms, lifetimes, client authentication, sender constraining.
 */
export function createProvider(deps: ProviderDependencies): Provider {
  const { config } = deps;
  const resourceServers = createResourceServerRegistry(config);
  const algs = [...SIGNING_ALGORITHMS];
  // The hooks that make up extraTokenClaims share one consent lookup per issued token.
  const consentOf = consentOfTokenOnce(deps.consents);
  const steppedUpTtl = (ttl: number, clientId: string | undefined) => {
    const cap = clientId === undefined ? undefined : deps.clientStanding?.steppedUp(clientId)?.accessTokenTtl;
    return cap === undefined ? ttl : Math.min(ttl, cap);
  };
  const profileOf = (client: { [key: string]: unknown } | undefined): FapiProfile => {
    const chosen = client?.[FAPI_PROFILE_METADATA];
    return isFapiProfile(chosen) ? chosen : config.fapi.defaultProfile;
  };

  const configuration: Configuration = {
    adapter: deps.adapter,
    jwks: deps.jwks as Configuration['jwks'],
    cookies: {
      keys: deps.cookieKeys,
      long: { signed: true, secure: true, sameSite: 'lax', httpOnly: true },
      short: { signed: true, secure: true, sameSite: 'lax', httpOnly: true },
    },
    clients: config.resourceServers.flatMap((rs) => (rs.client === undefined ? [] : [resourceServerClient(rs)])),
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'private_key_jwt',
      // oidc-provider's defaults are RS256, which FAPI 2.0 SP §5.4.1 does not allow.
      id_token_signed_response_alg: algs[0],
      authorization_signed_response_alg: algs[0],
      introspection_signed_response_alg: algs[0],
      // RFC 8705 §3: certificate-bound access tokens unless the client registers DPoP instead.
      tls_client_certificate_bound_access_tokens: true,
    },
    clientAuthMethods: [...CLIENT_AUTH_METHODS],
    // FAPI 2.0 SP §5.4.1: PS256, ES256 and EdDSA only, everywhere a JWS is made or checked.
    enabledJWA: {
      clientAuthSigningAlgValues: algs,
      idTokenSigningAlgValues: algs,
      requestObjectSigningAlgValues: algs,
      authorizationSigningAlgValues: algs,
      introspectionSigningAlgValues: algs,
      userinfoSigningAlgValues: algs,
      dPoPSigningAlgValues: algs,
    },
    responseTypes: ['code'],
    // FAPI 2.0 SP §5.3.2.2: PKCE with S256 for every request.
    pkce: { required: () => true },
    // FAPI 2.0 SP §5.3.2.1: accept iat/nbf up to 10 s in the future.
    clockTolerance: 10,
    // FAPI 2.0 SP §5.3.2.2: the redirect_uri is always sent in the PAR request.
    allowOmittingSingleRegisteredRedirectUri: false,
    scopes: ['openid', 'offline_access', ...Object.keys(config.scopes), ...GRANT_MANAGEMENT_SCOPES],
    // FAPI Grant Management: grant_id and grant_management_action at PAR, authorization and CIBA;
    // OpenID Connect for Identity Assurance 1.0: the TPP's purpose, shown on the consent screen.
    extraParams: { ...grantManagementParams(deps.consents), ...purposeParam() } as unknown as Configuration['extraParams'],
    // openbanking_intent_id stands alone (requested through the claims parameter, UK OB style).
    // Every ID token says how and when the customer authenticated (src/sca/authentication.ts): acr,
    // amr and auth_time ride on the openid scope so no request has to ask for them.
    claims: { openid: ['sub', 'acr', 'amr', 'auth_time'], profile: ['name'], [INTENT_CLAIM]: null },
    acrValues: [...ACR_VALUES_SUPPORTED],
    extraTokenClaims: authenticationTokenClaims(steppedUpRefusesRefresh(consentTokenClaims(consentOf), deps.clientStanding), {
      consentOf,
      reauthDays: config.sca.accountAccessReauthDays,
      now: deps.now ?? (() => new Date()),
    }),
    extraClientMetadata: {
      properties: [...EXTRA_CLIENT_METADATA],
      validator(ctx, key, value, metadata) {
        // Defence in depth: a registration request (ctx is given only for those) that Moat's
        // software-statement policy did not approve never creates a client, whatever path reached it.
        if (
          key === EXTRA_CLIENT_METADATA[0] &&
          ctx !== undefined &&
          ['registration', 'client_update'].includes(ctx.oidc?.route ?? '') &&
          !isRegistrationApproved(ctx.req)
        ) {
          throw new errors.InvalidSoftwareStatement('registration requires a software statement verified by this server');
        }
        if (key === FAPI_PROFILE_METADATA) {
          requireSignedCibaRequests(metadata);
          if (value === undefined) return;
          if (!isFapiProfile(value)) {
            throw new errors.InvalidClientMetadata(`${FAPI_PROFILE_METADATA} must be one of fapi2-security, fapi2-message-signing, fapi1-advanced`);
          }
        }
        if (key === 'software_roles' && value !== undefined && !(Array.isArray(value) && value.every((r) => typeof r === 'string'))) {
          throw new errors.InvalidClientMetadata('software_roles must be an array of strings');
        }
        if (key === NOTIFICATION_URI_METADATA && value !== undefined) {
          const problem = notificationUriProblem(value);
          if (problem !== undefined) throw new errors.InvalidClientMetadata(`${NOTIFICATION_URI_METADATA} ${problem}`);
        }
        if (key === FAPI_PROFILE_METADATA) applyProfileObligations(profileOf(metadata), metadata);
      },
    },
    findAccount: async (ctx, sub, token) => {
      const customer = await deps.customers.findById(sub);
      if (customer === undefined) return undefined;
      // The ID token names the intent the customer authorised, when the TPP lodged one.
      const grantId = (token as { grantId?: string } | undefined)?.grantId ?? ctx.oidc?.entities.Grant?.jti;
      const consent = grantId === undefined ? undefined : await deps.consents.findByGrantId(grantId);
      const intentId = consent?.origin === 'intent' ? consent.id : undefined;
      return {
        accountId: customer.id,
        claims: () => ({ sub: customer.id, name: customer.name, ...(intentId === undefined ? {} : { [INTENT_CLAIM]: intentId }) }),
      };
    },
    // Every authorization is a fresh consent in open banking: only the grant the customer gave in
    // this very interaction counts, never one remembered in the session for the client.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId;
      return grantId === undefined ? undefined : ctx.oidc.provider.Grant.find(grantId);
    },
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token') && deps.clientStanding?.steppedUp(client.clientId) === undefined,
    rotateRefreshToken: config.tokens.refreshTokenRotation,
    ttl: {
      // No token outlives the consent it was issued under.
      AccessToken: (_ctx, token) => steppedUpTtl(cappedByConsent(token.resourceServer?.accessTokenTTL ?? config.tokens.accessTokenTtl, token), token.clientId),
      AuthorizationCode: config.tokens.authorizationCodeTtl,
      ClientCredentials: (_ctx, token) => steppedUpTtl(token.resourceServer?.accessTokenTTL ?? config.tokens.clientCredentialsTtl, token.clientId),
      IdToken: config.tokens.idTokenTtl,
      Interaction: config.tokens.interactionTtl,
      Session: config.tokens.sessionTtl,
      Grant: (_ctx, grant) => cappedByConsent(config.tokens.grantTtl, grant),
      BackchannelAuthenticationRequest: (ctx) => deps.ciba?.expiresIn(requestedExpiry(ctx?.oidc?.params?.requested_expiry)) ?? 600,
      RefreshToken: (_ctx, token) => cappedByConsent(config.tokens.refreshTokenTtl, token),
    },
    routes: { ...PROVIDER_ROUTES },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy: scaInteractionPolicy(deps.clientStanding) },
    renderError: deps.renderError,
    discovery: { ...discoveryExtras(config), ...(deps.uiLocales === undefined ? {} : { ui_locales_supported: deps.uiLocales }) },
    features: {
      devInteractions: { enabled: false },
      // keys.source pkcs11: the keys are the HSM's, which signs (external-signing-keys.ts).
      externalSigningSupport: deps.jwks.keys.some((k) => k instanceof ExternalSigningKey) ? { enabled: true, ack: EXTERNAL_SIGNING_ACK } : { enabled: false },
      fapi: { enabled: true, profile: (_ctx, client) => providerProfileFor(profileOf(client as unknown as Record<string, unknown>)) },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        getCertificate: (ctx) => deps.clientCertificate(ctx.req)?.certificate,
        // RFC 8705 §2.1: the certificate must chain to a trust anchor Moat accepts, and must not be
        // revoked or retired in the TPP certificate registry.
        certificateAuthorized: (ctx) => {
          if (deps.clientCertificate(ctx.req)?.verification.trusted !== true) return false;
          const refusal = deps.certificateGate.refusal(ctx.req);
          if (refusal !== undefined) throw new errors.InvalidClientAuth(refusal.description);
          return true;
        },
        certificateSubjectMatches: (ctx, property, expected) => subjectMatches(deps.clientCertificate(ctx.req), property, expected),
      },
      dPoP: { enabled: true, nonceSecret: deps.dpopNonceSecret },
      introspection: {
        enabled: true,
        // A resource server introspects tokens meant for it; a TPP only its own tokens.
        allowedPolicy: async (ctx, client, token) => {
          // A deleted client's tokens, and a token bound to a revoked or retired certificate, are
          // inactive for everyone.
          if (deps.clientStanding?.quarantined(token.clientId!) !== undefined) return false;
          if ((await ctx.oidc.provider.Client.find(token.clientId!)) === undefined) return false;
          const x5t = (token as unknown as Record<string, string | undefined>)['x5t#S256'];
          if (x5t !== undefined && !(await deps.certificateGate.bindingAlive(x5t))) return false;
          const rs = resourceServers.byClientId(client.clientId);
          if (rs !== undefined) return tokenAudiences(token as Parameters<typeof tokenAudiences>[0]).includes(rs.identifier);
          return token.clientId === client.clientId;
        },
      },
      jwtIntrospection: { enabled: true },
      revocation: { enabled: true },
      jwtResponseModes: { enabled: true },
      requestObjects: { enabled: true },
      claimsParameter: { enabled: true },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      // OIDC Core §5.3.2: a client registering userinfo_signed_response_alg gets a signed JWT from
      // userinfo, signed like ID tokens (in the HSM with keys.source pkcs11).
      jwtUserinfo: { enabled: true },
      // Client ids are UUIDs (as UK OB directories issue): oidc-provider's default, a nanoid, can start
      // with "-", which an operator's shell or the moat CLI then reads as an option.
      registration: { enabled: true, initialAccessToken: false, idFactory: () => randomUUID() },
      // RFC 7592: read, update (every check re-run, see registration-middleware.ts) and delete with
      // the registration access token, which is rotated on every update.
      registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
      // RFC 8707. A request naming no resource is for the API its scopes belong to — unless it asks
      // for OpenID Connect scopes alone: its access token is then for userinfo (OIDC Core §5.3).
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, _client, oneOf) => {
          if (oneOf !== undefined) return oneOf;
          const params = ctx.oidc.params ?? {};
          if (params.authorization_details === undefined && resourceServers.onlyOidcScopes(params.scope)) return undefined;
          return resourceServers.defaultIndicator();
        },
        // At the token endpoint the granted resource is used without being named (the README's flow:
        // the code of `openid accounts` gives the API's token), except for a refresh that narrows the
        // scope to OpenID Connect scopes (RFC 6749 §6): that asks for a userinfo token.
        useGrantedResource: (ctx) => !resourceServers.onlyOidcScopes(ctx.oidc.params?.scope),
        getResourceServerInfo: (_ctx, indicator) => resourceServers.info(indicator),
      },
      rpInitiatedLogout: { enabled: false },
      // FAPI-CIBA §5.2.2: poll and ping only, never push.
      ciba: deps.ciba === undefined ? { enabled: false } : { enabled: true, deliveryModes: ['poll', 'ping'], ...deps.ciba.hooks },
      // RFC 9396: account_information and payment_initiation, validated by schema and role.
      // Cast: the typings' conditional union cannot see that an object with `types` is the active form.
      richAuthorizationRequests: richAuthorizationRequestsFeature() as never,
    },
  };

  return new Provider(config.issuer, configuration);
}

/** Profile obligations a client cannot opt out of by leaving metadata unset. */
function applyProfileObligations(profile: FapiProfile, metadata: Record<string, unknown>): void {
  if (requiresSignedRequestObject(profile)) metadata.require_signed_request_object = true;
  // Only JARM response modes: a plain query response is refused with invalid_request.
  if (requiresJarm(profile)) metadata.response_modes = ['jwt', 'query.jwt'];
}

/**
 * FAPI-CIBA §5.2.2: a client of the CIBA grant sends signed authentication requests only, whatever
 * its profile: oidc-provider refuses an unsigned one from a client with a signing alg (unless chosen, the
 * algorithm of its first signing key; PS256 when its keys are not registered by value).
 */
function requireSignedCibaRequests(metadata: Record<string, unknown>): void {
  if (Array.isArray(metadata.grant_types) && metadata.grant_types.includes(CIBA_GRANT_TYPE)) {
    metadata.backchannel_authentication_request_signing_alg ??= signingAlgOfKeys(metadata.jwks) ?? SIGNING_ALGORITHMS[0];
  }
}

/** The FAPI algorithm the client's first signing key is for, when its registered keys say. */
function signingAlgOfKeys(jwks: unknown): string | undefined {
  const keys = (jwks as { keys?: { alg?: unknown; kty?: unknown; use?: unknown }[] } | undefined)?.keys ?? [];
  const key = keys.find((k) => k.use === undefined || k.use === 'sig');
  if (typeof key?.alg === 'string' && (SIGNING_ALGORITHMS as readonly string[]).includes(key.alg)) return key.alg;
  return { EC: 'ES256', RSA: 'PS256', OKP: 'EdDSA' }[String(key?.kty)];
}

/**
 * Step-up (threat detection): a refresh is refused, so the TPP must return to the customer for a
 * fresh consent. extraTokenClaims runs for every access token a grant issues, before it is saved.
 */
function steppedUpRefusesRefresh(
  claims: NonNullable<Configuration['extraTokenClaims']>,
  standing: ClientStanding | undefined,
): NonNullable<Configuration['extraTokenClaims']> {
  if (standing === undefined) return claims;
  return async (ctx, token) => {
    const clientId = (token as { clientId?: string }).clientId;
    const stepUp = clientId === undefined ? undefined : standing.steppedUp(clientId);
    if (stepUp !== undefined && ctx.oidc.params?.grant_type === 'refresh_token') {
      throw Object.assign(new errors.InvalidGrant('refresh refused while the client is stepped up'), {
        // The reason stays with the bank's operators: a TPP is not told what the detector saw.
        error_description: 'unusual activity was detected for this client: the bank requires fresh customer consent; start a new authorization',
      });
    }
    return claims(ctx, token);
  };
}

/**
 * A quarantined client is refused wherever oidc-provider (or Moat's own APIs) look it up: client
 * authentication for every method, the authorization endpoint, token introspection and the APIs.
 */
export function guardQuarantinedClients(provider: Provider, standing: ClientStanding): void {
  checkBeforeClientLookup(provider, (id) => {
    const reason = standing.quarantined(id);
    if (reason !== undefined) {
      throw Object.assign(new errors.InvalidClientAuth(`client quarantined: ${reason}`), {
        error_description: "this client is quarantined by the bank's security team after unusual activity; contact the bank to have it released",
      });
    }
  });
}

/**
 * Subject DN comparisons already made, by presented certificate (kept per connection and across
 * connections by client-certificate.ts) and registered DN: the same client sends the same
 * certificate on every request, and RFC 4518's string preparation of both names was 2–3 % of
 * Moat's CPU on client_credentials (issue 20). A few registered DNs per certificate at most.
 */
const subjectComparisons = new WeakMap<PresentedCertificate, Map<string, boolean>>();
const MAX_COMPARISONS_PER_CERTIFICATE = 16;

/** RFC 4514 comparison, not string equality: `CN=a, O=b` and `cn=A,o=B` name the same subject. */
function subjectMatches(presented: PresentedCertificate | undefined, property: string, expected: string): boolean {
  if (presented === undefined) return false;
  if (property === 'tls_client_auth_subject_dn') {
    const known = subjectComparisons.get(presented);
    const earlier = known?.get(expected);
    if (earlier !== undefined) return earlier;
    let equal: boolean;
    try {
      equal = distinguishedNamesEqual(presented.subject, parseDistinguishedName(expected));
    } catch {
      equal = false;
    }
    const comparisons = known === undefined || known.size >= MAX_COMPARISONS_PER_CERTIFICATE ? new Map<string, boolean>() : known;
    comparisons.set(expected, equal);
    subjectComparisons.set(presented, comparisons);
    return equal;
  }
  const sanType = { tls_client_auth_san_dns: 'DNS', tls_client_auth_san_uri: 'URI', tls_client_auth_san_ip: 'IP Address', tls_client_auth_san_email: 'email' }[
    property
  ];
  if (sanType === undefined) return false;
  const sans = (presented.certificate.subjectAltName ?? '').split(', ');
  return sans.includes(`${sanType}:${expected}`);
}

/** A requested_expiry as a number of seconds, when it is one (oidc-provider has validated it). */
function requestedExpiry(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

function tokenAudiences(token: { aud?: string | string[]; resourceServer?: { audience?: string } }): string[] {
  const aud = token.resourceServer?.audience ?? token.aud;
  if (aud === undefined) return [];
  return Array.isArray(aud) ? aud : [aud];
}

/** A resource server's client for introspection and revocation: it never runs a grant. */
function resourceServerClient(rs: ResourceServerConfig): ClientMetadata {
  const client = rs.client!;
  const base: ClientMetadata = {
    client_id: client.clientId,
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  };
  if (client.tlsClientAuthSubjectDn !== undefined) {
    return { ...base, token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: client.tlsClientAuthSubjectDn };
  }
  const jwks = JSON.parse(readFileSync(client.jwksFile!, 'utf8')) as ClientMetadata['jwks'];
  return { ...base, token_endpoint_auth_method: 'private_key_jwt', jwks };
}

/** RFC 8705 §5: mTLS endpoint aliases when mTLS lives on another host than the browser endpoints. */
function discoveryExtras(config: MoatConfig): Record<string, unknown> {
  // FAPI Grant Management §5.1: the actions offered, and where grants are queried and revoked.
  const extras: Record<string, unknown> = {
    grant_management_actions_supported: [...GRANT_MANAGEMENT_ACTIONS],
    grant_management_endpoint: `${config.issuer.replace(/\/$/, '')}${GRANTS_PATH}`,
    grant_management_action_required: false,
  };
  const origin = config.tls.mtlsEndpointAliasOrigin;
  if (origin !== undefined) {
    const base = origin.replace(/\/$/, '');
    extras.mtls_endpoint_aliases = {
      token_endpoint: `${base}/token`,
      pushed_authorization_request_endpoint: `${base}/par`,
      introspection_endpoint: `${base}/introspect`,
      revocation_endpoint: `${base}/revoke`,
      registration_endpoint: `${base}/register`,
      userinfo_endpoint: `${base}/userinfo`,
      backchannel_authentication_endpoint: `${base}/backchannel`,
    };
  }
  return extras;
}

export type { KoaContextWithOIDC };
