import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { z } from 'zod';
import { DecoupledRefusal, REFUSAL_STATUS } from '../ciba/decoupled-request.ts';
import type { DecoupledAuthorisation } from '../ciba/decoupled-authorisation.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import type { LoginThrottle } from '../customers/login-throttle.ts';
import { readJsonObject } from '../http/read-body.ts';
import { signIn, type InteractionSca } from '../interactions/routes.ts';
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
  const refuse = (ctx: ParameterizedContext, status: number, error: string, description: string) => {
    ctx.status = status;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { error, error_description: description };
  };

  router.post('/decisions', async (ctx) => {
    const parsed = decisionBody.safeParse(await readJsonObject(ctx.req));
    if (!parsed.success) {
      refuse(ctx, 400, 'invalid_request', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
      return;
    }
    const body = parsed.data;
    const signedIn = await signIn(ctx, { customers: deps.customers, throttle: deps.throttle, logger: deps.logger }, body.username, body.password);
    if (!signedIn.ok) {
      refuse(ctx, signedIn.status, 'access_denied', signedIn.message);
      return;
    }
    const { customerId } = signedIn;
    const factors: FactorUse[] = [passwordFactor()];
    if (body.code !== undefined && deps.sca.totp !== undefined) {
      const checked = await deps.sca.totp.verify(customerId, body.code, ctx.ip);
      if (!checked.ok) {
        refuse(ctx, 401, 'access_denied', checked.message);
        return;
      }
      factors.push(totpFactor());
    }
    try {
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
    } catch (err) {
      if (!(err instanceof DecoupledRefusal)) throw err;
      refuse(ctx, REFUSAL_STATUS[err.code], err.code, err.message);
    }
  });

  router.post('/pending', async (ctx) => {
    const parsed = decisionBody.pick({ username: true, password: true }).safeParse(await readJsonObject(ctx.req));
    if (!parsed.success) {
      refuse(ctx, 400, 'invalid_request', 'username and password are required');
      return;
    }
    const signedIn = await signIn(ctx, { customers: deps.customers, throttle: deps.throttle, logger: deps.logger }, parsed.data.username, parsed.data.password);
    if (!signedIn.ok) {
      refuse(ctx, signedIn.status, 'access_denied', signedIn.message);
      return;
    }
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
