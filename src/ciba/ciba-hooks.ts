import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { SIGNING_ALGORITHMS, type MoatConfig } from '../config/schema.ts';
import { AuthorizationDetailsInvalid, parseRequestedDetail, type RequestedDetail } from '../consents/authorization-details.ts';
import { kindOf, newConsentId } from '../consents/consent.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { checkGrantCustomer } from '../consents/grant-management.ts';
import { intentIdFromClaims } from '../consents/provider-hooks.ts';
import { intentProblem } from '../consents/intent-problem.ts';
import { purposeOf } from '../consents/request-purpose.ts';
import type { CibaProviderHooks } from '../provider/create-provider.ts';
import type { DecoupledAuthorisation } from './decoupled-authorisation.ts';

/*
 * oidc-provider's `ciba` hooks: how a backchannel authentication request names the customer, which
 * binding messages and contexts are accepted, and how the customer's bank app learns of a request.
 * oidc-provider does the rest of CIBA Core (client authentication, the signed request, scopes,
 * requested_expiry, the auth_req_id and the grant).
 */

/**
 * CIBA Core §7.1 binding_message: shown on the customer's device, so it must be short and plain.
 * Printable characters without controls or markup, at most 64 (a phone notification's line).
 */
const BINDING_MESSAGE = /^[\p{L}\p{N} .,:;!?#+\-_/()'’]{1,64}$/u;

export interface CibaHookDeps {
  config: MoatConfig;
  consents: ConsentService;
  /** The bank-app side; built after the provider, so read when a request arrives. */
  authorisation: () => DecoupledAuthorisation;
  /** Tells the bank's own app of a new request (the bank notification interface), when configured. */
  notifyBankApp?: (requestId: string, customerId: string) => Promise<void>;
}

export function createCibaHooks(deps: CibaHookDeps): CibaProviderHooks {
  const { config, consents } = deps;
  return {
    expiresIn: (requested) => Math.min(requested ?? config.ciba.maxExpirySeconds, config.ciba.maxExpirySeconds),
    hooks: {
      // The customer's subject identifier: the `sub` of an earlier ID token, or the customer id the bank told the TPP.
      processLoginHint: (_ctx, loginHint) => loginHint,
      processLoginHintToken: (ctx, token) => subjectOfLoginHintToken(ctx, token ?? '', config.issuer),
      validateBindingMessage: (ctx, message) => checkAuthorizationContext(ctx, message, consents),
      // request_context (CIBA Core §7.1) carries nothing Moat acts on.
      validateRequestContext: () => undefined,
      // Moat's customers confirm with SCA on their bank app, not with a user code (backchannel_user_code_parameter false).
      verifyUserCode: () => undefined,
      async triggerAuthenticationDevice(ctx, request, account, client) {
        const params = ctx.oidc.params ?? {};
        // The saved request then stays unused and expires; the TPP is answered with the error.
        await checkGrantCustomer(consents, params, client.clientId, account.accountId);
        const requested = requestedDetail(params.authorization_details);
        const intentId = intentIdFromClaims(params.claims);
        const intent = intentId === undefined ? undefined : await consents.getForClient(intentId, client.clientId);
        const detail = requested ?? intent?.requested;
        // Validated by oidc-provider's extraParams (purposeParam) before this hook runs.
        const purpose = purposeOf(params);
        const recorded = await deps.authorisation().record({
          id: request.jti,
          clientId: client.clientId,
          customerId: account.accountId,
          scope: request.scope ?? '',
          consentId: intentId ?? newConsentId(detail === undefined ? 'scope' : kindOf(detail)),
          expiresInSeconds: request.expiration,
          ...(typeof params.binding_message === 'string' ? { bindingMessage: params.binding_message } : {}),
          ...(purpose === undefined ? {} : { purpose }),
          ...(detail === undefined ? {} : { requested: detail }),
          ...(intentId === undefined ? {} : { intentId }),
        });
        await deps.notifyBankApp?.(recorded.id, recorded.customerId);
      },
    },
  };
}

/**
 * FAPI-CIBA §5.2.2: the authorization context must be unique to this request, or a binding_message
 * must let the customer tell it apart. An intent or authorization_details make it unique; a request
 * for scopes alone needs the message. A named intent must be one this client may still authorise.
 */
async function checkAuthorizationContext(ctx: KoaContextWithOIDC, message: string | undefined, consents: ConsentService): Promise<void> {
  if (message !== undefined && !BINDING_MESSAGE.test(message)) {
    throw new errors.InvalidBindingMessage(
      "binding_message must be 1 to 64 letters, digits, spaces or basic punctuation, to be shown on the customer's device",
    );
  }
  const params = ctx.oidc.params ?? {};
  const intentId = intentIdFromClaims(params.claims);
  if (intentId !== undefined) {
    const problem = await intentProblem(consents, intentId, ctx.oidc.client!.clientId);
    if (problem !== undefined) throw new errors.InvalidRequest(problem);
  }
  const unique = intentId !== undefined || typeof params.authorization_details === 'string';
  if (!unique && message === undefined) {
    throw new errors.InvalidBindingMessage(
      'binding_message is required when the request carries neither authorization_details nor an intent (FAPI-CIBA §5.2.2)',
    );
  }
}

/** The detail of RFC 9396 authorization_details, which oidc-provider has validated against Moat's types. */
function requestedDetail(value: unknown): RequestedDetail | undefined {
  if (typeof value !== 'string') return undefined;
  const [first] = JSON.parse(value) as unknown[];
  try {
    return parseRequestedDetail(first, 'authorization_details[0]');
  } catch (err) {
    if (err instanceof AuthorizationDetailsInvalid) throw new errors.InvalidAuthorizationDetails(err.message);
    throw err;
  }
}

/**
 * login_hint_token (CIBA Core §7.1): Moat's form is a JWT the client signs with its registered keys,
 * `iss` its client_id, `aud` this server, with `exp`, naming the customer in `sub`.
 */
async function subjectOfLoginHintToken(ctx: KoaContextWithOIDC, token: string, issuer: string): Promise<string> {
  const client = ctx.oidc.client!;
  const metadata = client.metadata() as { jwks?: JSONWebKeySet; jwks_uri?: string };
  const keys =
    metadata.jwks !== undefined
      ? createLocalJWKSet(metadata.jwks)
      : metadata.jwks_uri !== undefined
        ? createRemoteJWKSet(new URL(metadata.jwks_uri))
        : undefined;
  if (keys === undefined) throw new errors.InvalidRequest("login_hint_token must be signed with the client's registered keys, and this client has none");
  try {
    const { payload } = await jwtVerify(token, keys, {
      issuer: client.clientId,
      audience: issuer,
      algorithms: [...SIGNING_ALGORITHMS],
      requiredClaims: ['exp', 'sub'],
    });
    return payload.sub ?? '';
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw new errors.ExpiredLoginHintToken('login_hint_token has expired');
    if (err instanceof joseErrors.JOSEError) throw new errors.InvalidRequest(`login_hint_token is not valid: ${err.message}`);
    throw err;
  }
}
