import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { rootCertificates } from 'node:tls';
import Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { MoatConfig } from '../config/schema.ts';
import { describeAccount } from '../consents/presentation.ts';
import { postHttps } from '../http/https-post.ts';
import { jsonRefusals } from '../http/json-refusals.ts';
import { readJsonObject } from '../http/read-body.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { Logger } from '../observability/logger.ts';
import { distinguishedNamesEqual, parseDistinguishedName } from '../pki/distinguished-name.ts';
import { passkeyFactor, passwordFactor, totpFactor, type FactorUse } from '../sca/authentication.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { BANK_APP_CALLBACK_PREFIX, bankAppDecisionSchema, type BankAppDecision, type BankAppNotification } from './bank-app-contract.ts';
import type { DecoupledAuthorisation } from './decoupled-authorisation.ts';

/*
 * The bank notification interface (docs/bank-app.openapi.json): the notification Moat sends the
 * bank's own app for each new request, and the callback where the app completes it. The bank's
 * app performs SCA; Moat counts what it reports, and refuses an approval that is not strong.
 */

type BankAppConfig = NonNullable<MoatConfig['ciba']['bankApp']>;

export interface BankAppInterfaceDeps {
  config: BankAppConfig;
  issuer: string;
  /** Built after the provider and the service: read when a request arrives. */
  provider: () => Provider;
  authorisation: () => DecoupledAuthorisation;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  logger: Logger;
}

/** The factors the app's RFC 8176 methods stand for; user verification counts only on a key. */
export function factorsOf(methods: NonNullable<BankAppDecision['authentication']>['methods']): FactorUse[] {
  const has = (m: string) => (methods as readonly string[]).includes(m);
  const factors: FactorUse[] = [];
  if (has('pwd')) factors.push(passwordFactor());
  if (has('pin')) factors.push({ kind: 'password', amr: ['pin'], categories: ['knowledge'] });
  if (has('otp')) factors.push(totpFactor());
  if (has('hwk') || has('swk')) factors.push(passkeyFactor({ userVerified: has('user') || has('fpt') || has('face'), deviceBound: has('hwk') }));
  return factors;
}

/** Tells the bank's app of a new request; a failure is logged, never passed on to the TPP. */
export function createBankAppNotifier(deps: BankAppInterfaceDeps): (requestId: string, customerId: string) => Promise<void> {
  const { config, logger } = deps;
  const ca = config.caFile === undefined ? undefined : [...rootCertificates, readFileSync(config.caFile, 'utf8')];
  const clientCertificate = { cert: readFileSync(config.clientCertFile, 'utf8'), key: readFileSync(config.clientKeyFile, 'utf8') };
  return async (requestId, customerId) => {
    try {
      const request = await deps.authorisation().pendingRequest(requestId, customerId);
      const client = await deps.provider().Client.find(request.clientId);
      const accounts = await deps.authorisation().offered(request);
      const notification: BankAppNotification = {
        request_id: request.id,
        customer_id: request.customerId,
        client: { client_id: request.clientId, client_name: client?.clientName ?? request.clientId },
        scope: request.scope,
        ...(request.bindingMessage === undefined ? {} : { binding_message: request.bindingMessage }),
        ...(request.purpose === undefined ? {} : { purpose: request.purpose }),
        ...(request.requested === undefined ? {} : { authorization_details: [request.requested as unknown as Record<string, unknown>] }),
        accounts: accounts.map((a) => ({ account_id: a.id, label: describeAccount(a).label })),
        expires_at: request.expiresAt.toISOString(),
        callback: `${deps.issuer.replace(/\/$/, '')}${BANK_APP_CALLBACK_PREFIX}/${encodeURIComponent(request.id)}/decision`,
      };
      await postHttps(config.notificationEndpoint, {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(notification),
        timeoutMs: config.timeoutMs,
        ...(ca === undefined ? {} : { ca }),
        clientCertificate,
        accepted: (status) => status >= 200 && status < 300,
      });
      logger.info({ event: 'ciba.bank_app_notified', outcome: 'ciba_bank_app_notified', clientId: request.clientId }, 'bank app told of a decoupled request');
    } catch (err) {
      logger.warn(
        { event: 'ciba.bank_app_unreachable', outcome: 'ciba_bank_app_unreachable', reason: err instanceof Error ? err.message : String(err) },
        'the bank app could not be told of a decoupled request; it stays open until it expires',
      );
    }
  };
}

/** The callback the bank's app completes requests at, authenticated by its client certificate. */
export function createBankAppCallbackRouter(deps: BankAppInterfaceDeps): Router {
  const router = new Router({ prefix: BANK_APP_CALLBACK_PREFIX });
  const expected = parseDistinguishedName(deps.config.callbackSubjectDn);
  router.use(jsonRefusals());

  router.post('/:id/decision', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const presented = deps.clientCertificate(ctx.req);
    if (presented === undefined || !presented.verification.trusted || !distinguishedNamesEqual(presented.subject, expected)) {
      deps.logger.warn({ event: 'ciba.bank_app_refused', outcome: 'unauthorized_client' }, "bank app callback without the bank app's certificate");
      throw new OAuthError('unauthorized_client', "present the bank app's client certificate (ciba.bankApp.callbackSubjectDn) over mutual TLS");
    }
    const parsed = bankAppDecisionSchema.safeParse(await readJsonObject(ctx.req));
    if (!parsed.success) throw new OAuthError('invalid_request', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    const decision = parsed.data;
    const id = ctx.params.id!;
    if (decision.decision === 'deny') {
      await deps.authorisation().deny({ id, customerId: decision.customer_id });
      ctx.body = { request_id: id, decision: 'denied' };
      return;
    }
    const consent = await deps.authorisation().approve({
      id,
      customerId: decision.customer_id,
      factors: factorsOf(decision.authentication?.methods ?? []),
      ...(decision.accounts === undefined ? {} : { accounts: decision.accounts }),
      ...(decision.permission_groups === undefined ? {} : { permissionGroups: decision.permission_groups }),
    });
    ctx.body = { request_id: id, decision: 'approved', consent_id: consent.id };
  });
  return router;
}
