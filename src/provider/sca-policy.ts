import { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { intentIdFromClaims, type ConsentOfToken } from '../consents/provider-hooks.ts';
import { accountAccessReauthDue, acrRequestOf, AuthenticationRequirementsUnmet, requiredAuthentication } from '../sca/authentication-policy.ts';
import { ACR_SCA } from '../sca/authentication.ts';
import type { ClientStanding } from './create-provider.ts';

/*
 * Where strong customer authentication meets oidc-provider:
 * - the login prompt asks for the customer again whenever the authorization needs SCA and the
 *   customer has not authenticated in this very interaction (a remembered session never authorises
 *   a consent; RTS on SCA Art. 4 and, for payments, Art. 5);
 * - oidc-provider's own essential-acr checks are replaced: they compare the session's acr with the
 *   requested values for equality, so a customer who did SCA where `ca` was asked would be asked to
 *   sign in for ever; Moat treats an acr request as a minimum and says the truth in the ID token;
 * - an essential acr Moat cannot give is answered with unmet_authentication_requirements;
 * - refresh tokens of account access stop after sca.accountAccessReauthDays (RTS Art. 10a).
 */

const { Check } = interactionPolicy;

export function scaInteractionPolicy(standing: ClientStanding | undefined): NonNullable<NonNullable<Configuration['interactions']>['policy']> {
  const policy = interactionPolicy.base();
  const login = policy.get('login')!;
  login.checks.remove('essential_acr');
  login.checks.remove('essential_acrs');
  login.checks.add(
    new Check('sca_required', 'strong customer authentication is required for this authorization', 'login_required', (ctx: KoaContextWithOIDC) => {
      const params = ctx.oidc.params as Record<string, unknown>;
      let requirement;
      try {
        requirement = requiredAuthentication({
          scope: String(params.scope ?? ''),
          // Any consent (an intent or authorization_details) needs SCA; which kind is decided at the decision.
          ...(typeof params.authorization_details === 'string' || intentIdFromClaims(params.claims) !== undefined
            ? { detail: { type: 'account_information' as const } }
            : {}),
          ...acrRequestParams(params),
          threatStepUp: standing?.steppedUp(ctx.oidc.client!.clientId) !== undefined,
        });
      } catch (err) {
        if (err instanceof AuthenticationRequirementsUnmet) throw new errors.UnmetAuthenticationRequirements(err.message);
        throw err;
      }
      if (requirement.acr !== ACR_SCA) return Check.NO_NEED_TO_PROMPT;
      // Authenticated in this interaction (its result is being resumed): the interaction routes checked it.
      return ctx.oidc.result?.login === undefined ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    }),
  );
  return policy;
}

function acrRequestParams(params: Record<string, unknown>) {
  const acrRequest = acrRequestOf(params);
  return acrRequest === undefined ? {} : { acrRequest };
}

/**
 * extraTokenClaims wrapper: what an access token says about the customer's authentication (acr,
 * amr, auth_time — seen at introspection), and the refusal of a refresh once account access is
 * past its re-authentication date.
 */
export function authenticationTokenClaims(
  claims: NonNullable<Configuration['extraTokenClaims']>,
  deps: { consentOf: ConsentOfToken; reauthDays: number; now: () => Date },
): NonNullable<Configuration['extraTokenClaims']> {
  return async (ctx, token) => {
    const consent = await deps.consentOf(token);
    const auth = consent?.authentication;
    if (ctx.oidc.params?.grant_type === 'refresh_token' && consent !== undefined && consent.kind !== 'domestic_payment') {
      // RTS Art. 10a: without a new SCA, account access lasts at most reauthDays after the last one.
      // A consent without a recorded SCA (authorised before Moat recorded one) counts from its grant.
      const since = auth?.authTime ?? consent.statusUpdatedAt;
      if (accountAccessReauthDue(since, deps.now(), deps.reauthDays)) {
        throw Object.assign(new errors.InvalidGrant('strong customer authentication is older than the account access re-authentication period'), {
          error_description: `the customer last authenticated strongly for this consent more than ${deps.reauthDays} days ago (PSD2 RTS Art. 10a): start a new authorization so the customer authenticates again`,
        });
      }
    }
    const base = (await claims(ctx, token)) ?? {};
    const source = (ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken) as { acr?: string; amr?: string[]; authTime?: number } | undefined;
    const acr = auth?.acr ?? source?.acr;
    const amr = auth?.amr ?? source?.amr;
    const authTime = auth === undefined ? source?.authTime : Math.floor(auth.authTime.getTime() / 1000);
    return {
      ...base,
      ...(acr === undefined ? {} : { acr }),
      ...(amr === undefined ? {} : { amr }),
      ...(authTime === undefined ? {} : { auth_time: authTime }),
    };
  };
}
