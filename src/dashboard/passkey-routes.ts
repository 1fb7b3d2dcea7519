import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { AuditLog } from '../audit/audit-log.ts';
import { formatDate } from '../consents/presentation.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import { CSRF_FIELD, type Csrf } from '../http/csrf.ts';
import { readForm } from '../http/read-body.ts';
import { allowScript } from '../http/security-headers.ts';
import { htmlErrorPages } from '../interactions/render-error.ts';
import type { Views } from '../interactions/views.ts';
import type { Logger } from '../observability/logger.ts';
import { PasskeyRefused, type PasskeyCeremonies } from '../passkeys/passkey-ceremonies.ts';
import type { PasskeyStore } from '../passkeys/passkey-store.ts';
import type { CustomerSessions } from './customer-sessions.ts';

/*
 * The customer's passkeys at /account/passkeys: list, add (WebAuthn registration, with the page's
 * one script), remove. Every change is audited. The form posts the authenticator's response as
 * `response` with a `name`; a refused response shows its reason on the page and enrols nothing.
 */

export const PASSKEYS_PATH = '/account/passkeys';

export interface PasskeyDashboardDeps {
  customers: CustomerDirectory;
  sessions: CustomerSessions;
  ceremonies: PasskeyCeremonies;
  store: PasskeyStore;
  views: Views;
  csrf: Csrf;
  audit: AuditLog;
  logger: Logger;
}

type Ctx = ParameterizedContext;

export function createPasskeyDashboardRouter(deps: PasskeyDashboardDeps): Router {
  const { views, csrf, sessions, ceremonies, store, audit, logger } = deps;
  const router = new Router({ prefix: PASSKEYS_PATH });
  const binding = (customerId: string) => `dashboard:${customerId}`;

  router.use(htmlErrorPages(views, { back: { link: PASSKEYS_PATH, label: 'Back to your passkeys' } }));

  const requireCustomer = async (ctx: Ctx): Promise<string | undefined> => {
    const customerId = await sessions.current(ctx);
    if (customerId === undefined) ctx.redirect('/account/login');
    return customerId;
  };

  const render = async (ctx: Ctx, customerId: string, extra: { error?: string; notice?: string; name?: string } = {}) => {
    const customer = await deps.customers.findById(customerId);
    const passkeys = await store.listForCustomer(customerId);
    const options = await ceremonies.registrationOptions({ customerId, customerName: customer?.name ?? customerId, binding: binding(customerId) });
    ctx.type = 'html';
    ctx.body = views.render('dashboard-passkeys', {
      csrf: csrf.token(ctx, 'dashboard-passkeys'),
      passkeys: passkeys.map((p, index) => ({
        index, id: p.id, name: p.name,
        kind: p.deviceType === 'singleDevice' ? 'Kept on one device' : 'Synced between your devices',
        createdOn: formatDate(p.createdAt), ...(p.lastUsedAt === undefined ? {} : { lastUsedOn: formatDate(p.lastUsedAt) }),
      })),
      options: JSON.stringify(options),
      suggestedName: extra.name ?? `Passkey ${passkeys.length + 1}`,
      script: { src: views.passkeyScript.path, integrity: views.passkeyScript.integrity, nonce: allowScript(ctx) },
      ...extra,
    });
  };

  router.get('/', async (ctx) => {
    const customerId = await requireCustomer(ctx);
    if (customerId === undefined) return;
    const done = ctx.query.done;
    await render(ctx, customerId, done === 'added' ? { notice: 'Passkey added.' } : done === 'removed' ? { notice: 'Passkey removed.' } : {});
  });

  router.post('/', async (ctx) => {
    const customerId = await requireCustomer(ctx);
    if (customerId === undefined) return;
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-passkeys', form.get(CSRF_FIELD) ?? undefined);
    const name = form.get('name') ?? '';
    let added;
    try {
      added = await ceremonies.register({ customerId, binding: binding(customerId), response: form.get('response') ?? '', name });
    } catch (err) {
      if (!(err instanceof PasskeyRefused)) throw err;
      logger.info({ event: 'passkey.refused', outcome: err.code, ceremony: 'registration' }, 'passkey registration refused');
      ctx.status = 400;
      await render(ctx, customerId, { error: err.message, name });
      return;
    }
    await audit.record({ type: 'factor.enrolled', actor: 'customer', actorId: customerId, customerId, subject: added.id, detail: { factor: 'passkey', deviceType: added.deviceType } });
    logger.info({ event: 'passkey.enrolled', accountId: customerId }, 'passkey enrolled');
    ctx.redirect(`${PASSKEYS_PATH}?done=added`);
  });

  router.post('/remove', async (ctx) => {
    const customerId = await requireCustomer(ctx);
    if (customerId === undefined) return;
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-passkeys', form.get(CSRF_FIELD) ?? undefined);
    const credentialId = form.get('credential') ?? '';
    if (!await store.remove(customerId, credentialId)) {
      ctx.status = 404;
      await render(ctx, customerId, { error: 'There is no such passkey in your account.' });
      return;
    }
    await audit.record({ type: 'factor.removed', actor: 'customer', actorId: customerId, customerId, subject: credentialId, detail: { factor: 'passkey' } });
    logger.info({ event: 'passkey.removed', accountId: customerId }, 'passkey removed');
    ctx.redirect(`${PASSKEYS_PATH}?done=removed`);
  });

  return router;
}
