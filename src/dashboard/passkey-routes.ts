import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { AuditLog } from '../audit/audit-log.ts';
import { formatDate } from '../consents/presentation.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import { CSRF_FIELD, type Csrf } from '../http/csrf.ts';
import { readForm } from '../http/read-body.ts';
import { allowScript } from '../http/security-headers.ts';
import { htmlErrorPages, renderErrorPage } from '../interactions/render-error.ts';
import { htmlErrorResponse, PAGE_REFUSAL_STATUS } from '../kernel/error-responses.ts';
import { StrongSignInRequired } from '../kernel/strong-sign-in-required.ts';
import type { Views } from '../interactions/views.ts';
import { intlLocale, type Translate } from '../interactions/messages.ts';
import { passkeyRefusalText } from '../interactions/refusal-text.ts';
import type { Logger } from '../observability/logger.ts';
import { PasskeyRefused, type PasskeyCeremonies } from '../passkeys/passkey-ceremonies.ts';
import type { PasskeyStore } from '../passkeys/passkey-store.ts';
import type { TotpFactor } from '../sca/totp-factor.ts';
import type { CustomerSessions } from './customer-sessions.ts';

/*
 * The customer's passkeys at /account/passkeys: list, add (WebAuthn registration, with the page's
 * one script), remove; and signing in to the dashboard with one (SCA alone: a strong session).
 * Adding or removing needs a strong session — unless the customer has no factor at all yet, when the
 * password is all there is to ask (the same rule as a first authenticator app). Every change is
 * audited. The forms post the authenticator's response as `response`; a refused response shows its
 * reason on the page and enrols nothing.
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
  /** The one-time-code factor, when enabled: a customer who has one needs SCA to change passkeys. */
  totp?: TotpFactor;
}

/** The dashboard sign-in page's passkey form: bound to this browser (its CSRF secret), no customer named. */
export async function dashboardPasskeyOffer(ctx: ParameterizedContext, deps: Pick<PasskeyDashboardDeps, 'ceremonies' | 'views' | 'csrf'>) {
  const options = await deps.ceremonies.authenticationOptions({ binding: signInBinding(ctx, deps.csrf) });
  return {
    options: JSON.stringify(options),
    script: { src: deps.views.passkeyScript.path, integrity: deps.views.passkeyScript.integrity, nonce: allowScript(ctx) },
  };
}

const signInBinding = (ctx: ParameterizedContext, csrf: Csrf) => `dashboard-sign-in:${csrf.token(ctx, 'dashboard-passkey-sign-in')}`;

type Ctx = ParameterizedContext;

export function createPasskeyDashboardRouter(deps: PasskeyDashboardDeps): Router {
  const { views, csrf, sessions, ceremonies, store, audit, logger } = deps;
  const router = new Router({ prefix: PASSKEYS_PATH });
  const binding = (customerId: string) => `dashboard:${customerId}`;

  router.use(htmlErrorPages(views, { back: { link: PASSKEYS_PATH, labelKey: 'error.back.passkeys' } }));

  /** The pages' language: the browser's Accept-Language among the catalogues, as on the dashboard. */
  const localeOf = (ctx: Ctx) => views.catalogues.negotiate(undefined, ctx.get('accept-language'));

  const requireCustomer = async (ctx: Ctx): Promise<string | undefined> => {
    const customerId = await sessions.current(ctx);
    if (customerId === undefined) ctx.redirect('/account/login');
    return customerId;
  };

  /** The customer, if this session may change their factors; otherwise the page says what is needed. */
  const requireStrongEnough = async (ctx: Ctx): Promise<string | undefined> => {
    const session = await sessions.currentWithStrength(ctx);
    if (session === undefined) {
      ctx.redirect('/account/login');
      return undefined;
    }
    if (session.strength === 'strong') return session.customerId;
    const hasFactor = (await store.listForCustomer(session.customerId)).length > 0 || (await deps.totp?.status(session.customerId)) === 'active';
    if (!hasFactor) return session.customerId;
    const back = { link: PASSKEYS_PATH, labelKey: 'error.back.passkeys' };
    renderErrorPage(views, ctx, htmlErrorResponse(new StrongSignInRequired('error.scaRequired.passkeys')), { back }, localeOf(ctx));
    return undefined;
  };

  /** `error` and `notice`: catalogue keys, or passkey.refused.<code> through passkeyRefusalText. */
  const render = async (ctx: Ctx, customerId: string, extra: { error?: (t: Translate) => string; notice?: string; name?: string } = {}) => {
    const locale = localeOf(ctx);
    const t = views.catalogues.translator(locale);
    const intl = intlLocale(locale);
    const customer = await deps.customers.findById(customerId);
    const passkeys = await store.listForCustomer(customerId);
    const options = await ceremonies.registrationOptions({ customerId, customerName: customer?.name ?? customerId, binding: binding(customerId) });
    ctx.type = 'html';
    ctx.body = views.render(
      'dashboard-passkeys',
      {
        csrf: csrf.token(ctx, 'dashboard-passkeys'),
        passkeys: passkeys.map((p, index) => ({
          index,
          id: p.id,
          name: p.name,
          deviceBound: p.deviceType === 'singleDevice',
          createdOn: formatDate(p.createdAt, intl, views.timeZone),
          ...(p.lastUsedAt === undefined ? {} : { lastUsedOn: formatDate(p.lastUsedAt, intl, views.timeZone) }),
        })),
        options: JSON.stringify(options),
        suggestedName: extra.name ?? t('passkeys.suggestedName', { number: passkeys.length + 1 }),
        script: { src: views.passkeyScript.path, integrity: views.passkeyScript.integrity, nonce: allowScript(ctx) },
        ...(extra.error === undefined ? {} : { error: extra.error(t) }),
        ...(extra.notice === undefined ? {} : { notice: t(extra.notice) }),
      },
      locale,
    );
  };

  router.get('/', async (ctx) => {
    const customerId = await requireCustomer(ctx);
    if (customerId === undefined) return;
    const done = ctx.query.done;
    await render(ctx, customerId, done === 'added' || done === 'removed' ? { notice: `passkeys.done.${done}` } : {});
  });

  router.post('/', async (ctx) => {
    const customerId = await requireStrongEnough(ctx);
    if (customerId === undefined) return;
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-passkeys', form.get(CSRF_FIELD) ?? undefined);
    const name = form.get('name') ?? '';
    let added;
    try {
      added = await ceremonies.register({ customerId, binding: binding(customerId), response: form.get('response') ?? '', name });
    } catch (err) {
      if (!(err instanceof PasskeyRefused)) throw err;
      logger.info({ event: 'passkey.refused', outcome: err.code, kind: 'registration' }, 'passkey registration refused');
      ctx.status = PAGE_REFUSAL_STATUS.input_refused;
      const { code } = err;
      await render(ctx, customerId, { error: (t) => passkeyRefusalText(t, code), name });
      return;
    }
    await audit.record({
      type: 'factor.enrolled',
      actor: 'customer',
      actorId: customerId,
      customerId,
      subject: added.id,
      detail: { factor: 'passkey', deviceType: added.deviceType },
    });
    logger.info({ event: 'passkey.enrolled', accountId: customerId }, 'passkey enrolled');
    ctx.redirect(`${PASSKEYS_PATH}?done=added`);
  });

  router.post('/remove', async (ctx) => {
    const customerId = await requireStrongEnough(ctx);
    if (customerId === undefined) return;
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-passkeys', form.get(CSRF_FIELD) ?? undefined);
    const credentialId = form.get('credential') ?? '';
    if (!(await store.remove(customerId, credentialId))) {
      ctx.status = PAGE_REFUSAL_STATUS.not_found;
      await render(ctx, customerId, { error: (t) => t('passkeys.noSuch') });
      return;
    }
    await audit.record({ type: 'factor.removed', actor: 'customer', actorId: customerId, customerId, subject: credentialId, detail: { factor: 'passkey' } });
    logger.info({ event: 'passkey.removed', accountId: customerId }, 'passkey removed');
    ctx.redirect(`${PASSKEYS_PATH}?done=removed`);
  });

  router.post('/sign-in', async (ctx) => {
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-login', form.get(CSRF_FIELD) ?? undefined);
    let verified;
    try {
      verified = await ceremonies.authenticate({ binding: signInBinding(ctx, csrf), response: form.get('response') ?? '' });
    } catch (err) {
      if (!(err instanceof PasskeyRefused)) throw err;
      logger.info({ event: 'passkey.refused', outcome: err.code, kind: 'authentication' }, 'dashboard passkey sign-in refused');
      const refused = { status: PAGE_REFUSAL_STATUS.input_refused, error: 'passkey_refused', description: err.message, kind: 'other' as const };
      const back = { link: '/account/login', labelKey: 'error.back.signIn' };
      renderErrorPage(views, ctx, { ...refused, messageKey: `passkey.refused.${err.code}` }, { back }, localeOf(ctx));
      return;
    }
    // User verification was required: the passkey alone is SCA, so the session is strong.
    await sessions.start(ctx, verified.customerId, 'strong');
    logger.info({ event: 'login.succeeded', accountId: verified.customerId, method: 'passkey' }, 'customer signed in to the dashboard with a passkey');
    ctx.redirect('/account/consents');
  });

  return router;
}
