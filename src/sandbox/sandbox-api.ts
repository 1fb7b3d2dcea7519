import { createHash, randomUUID } from 'node:crypto';
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import {
  checkSenderConstraint,
  renderTokenRejected,
  requireScope,
  tokenFromHeader,
  TokenRejected,
  type PresentedToken,
  type SenderConstraintChecks,
} from '../http/bearer-token.ts';
import type { GrantedDetail } from '../consents/authorization-details.ts';
import { ConsentStateConflict } from '../consents/consent.ts';
import { oauthErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { AccountsUnavailable, type AccountDirectory, type CustomerAccount } from '../customers/account-directory.ts';

/*
 * A resource server inside the sandbox, so a TPP's first token has something to call — and so the
 * sandbox shows what a bank's API must check: the token is active, meant for this API, carries the
 * scope, and is presented over the certificate (RFC 8705 §3) or with a proof of the DPoP key
 * (RFC 9449 §7) it is bound to. A bound token without its key is refused.
 */

export const SANDBOX_API_PATH = '/sandbox-api';

interface Deps {
  provider: Provider;
  issuer: string;
  senderConstraint: SenderConstraintChecks;
  consents: ConsentService;
  /** The customers' accounts: the same directory the consent screens offer them from. */
  accounts: AccountDirectory;
  /** An authorized call is the TPP using the consent behind the token's grant (consent-use.ts). */
  onConsentUse?: (grantId: string) => void;
}

type Ctx = ParameterizedContext;

export function sandboxApiIdentifier(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}${SANDBOX_API_PATH}`;
}

export function createSandboxApiRouter(deps: Deps): Router {
  const router = new Router({ prefix: SANDBOX_API_PATH });
  const audience = sandboxApiIdentifier(deps.issuer);

  const authorize = async (ctx: Ctx, scope: string) => {
    const value = tokenFromHeader(ctx);
    const token = await deps.provider.AccessToken.find(value);
    if (token === undefined || token.isExpired) throw new TokenRejected('invalid_token', 'the access token is not active');
    // The call is the token's client's, for its record (src/diagnostics), even when it then fails.
    ctx.state.clientId = token.clientId;
    const grant = token.grantId === undefined ? undefined : await deps.provider.Grant.find(token.grantId);
    if (grant === undefined) throw new TokenRejected('invalid_token', 'the access token is not active');
    if ((await deps.provider.Client.find(token.clientId!)) === undefined)
      throw new TokenRejected('invalid_token', 'the client of this access token no longer exists');
    const aud = [token.aud ?? []].flat();
    if (aud.length === 0)
      throw new TokenRejected(
        'invalid_token',
        `this access token is for userinfo, not for ${audience}: call the API with the access token the code (or a refresh without scope=openid) gave`,
      );
    if (!aud.includes(audience)) throw new TokenRejected('invalid_token', `the access token is not meant for ${audience}`);
    requireScope(token, scope);
    await checkSenderConstraint(ctx, token as unknown as PresentedToken, value, deps.senderConstraint);
    return token;
  };

  const handle = (scope: string, body: (token: AccessTokenOf) => unknown) => async (ctx: Ctx) => {
    try {
      const token = await authorize(ctx, scope);
      if (token.grantId !== undefined) deps.onConsentUse?.(token.grantId);
      ctx.body = await body(token);
    } catch (err) {
      if (err instanceof TokenRejected) return renderTokenRejected(ctx, err);
      // The resource API's own refusals; anything else reaches the last line of defence.
      const known =
        err instanceof ConsentStateConflict || err instanceof AccountsUnavailable ? oauthErrorResponse(err, { stateConflictStatus: 400 }) : undefined;
      if (known === undefined) throw err;
      writeErrorResponse(ctx, known);
    }
  };

  // What the customer granted decides what the API shows: the accounts the consent records (an
  // intent, authorization_details or scopes alone), as the account directory knows them, no others.
  router.get(
    '/accounts',
    handle('accounts', async (token) => {
      const consent = await deps.consents.findByGrantId(token.grantId!);
      const granted = consent?.granted;
      if (consent === undefined || granted?.type !== 'account_information') {
        throw new TokenRejected(
          'insufficient_scope',
          'this access token carries no consent to any account: ask the customer again, with scope accounts or an account_information consent',
        );
      }
      const shared = new Set(granted.accounts.map((a) => a.accountId));
      const accounts = (await deps.accounts.listForCustomer(token.accountId!)).filter((a) => shared.has(a.id));
      return { data: { consentId: consent.id, permissions: granted.permissions, accounts: accounts.map(apiAccount) } };
    }),
  );

  // A single-use payment consent is consumed by the payment it authorised.
  router.post(
    '/domestic-payments',
    handle('payments', async (token) => {
      const granted = grantedDetails(token).find((d) => d.type === 'payment_initiation');
      if (granted?.type !== 'payment_initiation')
        throw new TokenRejected('insufficient_scope', 'this access token carries no authorised payment_initiation consent');
      await deps.consents.consume(granted.consentId, { actor: 'tpp', actorId: token.clientId });
      return {
        data: {
          domesticPaymentId: `pmt-${randomUUID()}`,
          consentId: granted.consentId,
          status: 'AcceptedSettlementInProcess',
          instructedAmount: granted.instructedAmount,
          creditorName: granted.creditorName,
          debtorAccount: granted.debtorAccount,
        },
      };
    }),
  );

  return router;
}

type AccessTokenOf = InstanceType<Provider['AccessToken']>;

function grantedDetails(token: AccessTokenOf): GrantedDetail[] {
  const rar = (token as unknown as { rar?: unknown }).rar;
  return Array.isArray(rar) ? (rar as GrantedDetail[]) : [];
}

function apiAccount(a: CustomerAccount) {
  return {
    accountId: a.id,
    schemeName: a.schemeName,
    identification: a.identification,
    currency: a.currency,
    nickname: a.nickname,
    accountType: a.accountType,
    balance: demoBalance(a.id),
  };
}

function demoBalance(accountId: string): string {
  return (createHash('sha256').update(accountId).digest().readUInt16BE(0) / 10).toFixed(2);
}
