import Router from '@koa/router';
import { z } from 'zod';
import type { DecoupledAuthorisation } from '../ciba/decoupled-authorisation.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import type { LoginThrottle } from '../customers/login-throttle.ts';
import { jsonRefusals } from '../http/json-refusals.ts';
import { readJsonObject } from '../http/read-body.ts';
import { signIn, signInRefused, type InteractionSca } from '../interactions/routes.ts';
import { DecoupledRefusal } from '../kernel/decoupled-refusal.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import { SignInRefused } from '../kernel/sign-in-refused.ts';
import type { Logger } from '../observability/logger.ts';
import { passwordFactor, totpFactor, type FactorUse } from '../sca/authentication.ts';

/*
 * The sandbox's bank app, as an API (`moat sandbox approve|deny` calls it): the customer signs in
 * with their password and a one-time code — strong customer authentication, as on the bank's real
 * app — and approves or denies a decoupled authorisation request waiting for them. Sandbox only:
 * a bank's own app completes requests through the bank notification interface instead.
 */

export const BANK_APP_API_PATH = '/sandbox/app/api';

const decisionBody = z.strictObject({
  username: z.string().min(1).max(200),
  password: z.string().min(1).max(200),
  /** The one-time code from the customer's authenticator app. */
  code: z.string().max(20).optional(),
  /** The auth_req_id; absent means the oldest request waiting for the customer. */
  request: z.string().min(1).max(200).optional(),
  decision: z.enum(['approve', 'deny']),
  accounts: z.array(z.string().min(1).max(200)).max(100).optional(),
  permission_groups: z.array(z.string().min(1).max(100)).max(20).optional(),
});

export interface BankAppApiDeps {
  authorisation: DecoupledAuthorisation;
  customers: CustomerDirectory;
  throttle: LoginThrottle;
  sca: InteractionSca;
  logger: Logger;
}

export function createBankAppApiRouter(deps: BankAppApiDeps): Router {
  const router = new Router({ prefix: BANK_APP_API_PATH });
  router.use(jsonRefusals());

  router.post('/decisions', async (ctx) => {
    const parsed = decisionBody.safeParse(await readJsonObject(ctx.req));
    if (!parsed.success) throw new OAuthError('invalid_request', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    const body = parsed.data;
    const signedIn = await signIn(ctx, { customers: deps.customers, throttle: deps.throttle, logger: deps.logger }, body.username, body.password);
    if (!signedIn.ok) throw signInRefused(signedIn);
    const { customerId } = signedIn;
    const factors: FactorUse[] = [passwordFactor()];
    if (body.code !== undefined && deps.sca.totp !== undefined) {
      const checked = await deps.sca.totp.verify(customerId, body.code, ctx.ip);
      // Paused code entry is 429 with Retry-After, as on the pages (RFC 6585 §4), not another 401.
      if (!checked.ok)
        throw checked.reason === 'locked'
          ? new SignInRefused('locked', checked.message, checked.retryAfterSeconds)
          : new SignInRefused('code_refused', checked.message);
      factors.push(totpFactor());
    }
    const id = body.request ?? (await deps.authorisation.pendingFor(customerId))[0]?.id;
    if (id === undefined) throw new DecoupledRefusal('not_found', 'no request is waiting for you');
    if (body.decision === 'deny') {
      await deps.authorisation.deny({ id, customerId });
      ctx.body = { request: id, decision: 'denied' };
      return;
    }
    const consent = await deps.authorisation.approve({
      id,
      customerId,
      factors,
      ...(body.accounts === undefined ? {} : { accounts: body.accounts }),
      ...(body.permission_groups === undefined ? {} : { permissionGroups: body.permission_groups }),
    });
    ctx.body = { request: id, decision: 'approved', consent_id: consent.id };
  });

  router.post('/pending', async (ctx) => {
    const parsed = decisionBody.pick({ username: true, password: true }).safeParse(await readJsonObject(ctx.req));
    if (!parsed.success) throw new OAuthError('invalid_request', 'username and password are required');
    const signedIn = await signIn(ctx, { customers: deps.customers, throttle: deps.throttle, logger: deps.logger }, parsed.data.username, parsed.data.password);
    if (!signedIn.ok) throw signInRefused(signedIn);
    const pending = await deps.authorisation.pendingFor(signedIn.customerId);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      requests: pending.map((r) => ({
        request: r.id,
        client_id: r.clientId,
        scope: r.scope,
        expires_at: r.expiresAt.toISOString(),
        ...(r.bindingMessage === undefined ? {} : { binding_message: r.bindingMessage }),
        ...(r.purpose === undefined ? {} : { purpose: r.purpose }),
      })),
    };
  });

  return router;
}
