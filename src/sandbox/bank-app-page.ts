import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import type { DecoupledAuthorisation } from '../ciba/decoupled-authorisation.ts';
import { ChoiceInvalid } from '../consents/customer-choice.ts';
import { describeAccount, describeDetail } from '../consents/presentation.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import type { LoginThrottle } from '../customers/login-throttle.ts';
import type { CustomerSessions } from '../dashboard/customer-sessions.ts';
import { CSRF_FIELD, type Csrf } from '../http/csrf.ts';
import { readForm } from '../http/read-body.ts';
import { signIn, type InteractionSca } from '../interactions/routes.ts';
import type { Views } from '../interactions/views.ts';
import { intlLocale, type Translate } from '../interactions/messages.ts';
import { codeRefusalText, signInRefusalText } from '../interactions/refusal-text.ts';
import { DecoupledRefusal } from '../kernel/decoupled-refusal.ts';
import { DECOUPLED_REFUSAL_PAGE_STATUS, htmlErrorResponse, SIGN_IN_REFUSAL_STATUS } from '../kernel/error-responses.ts';
import type { Logger } from '../observability/logger.ts';
import { passwordFactor, totpFactor } from '../sca/authentication.ts';

/*
 * The sandbox's bank app as a page, /sandbox/app: the customer signs in with password and one-time
 * code (strong customer authentication), sees the decoupled requests waiting for them with the
 * binding message the TPP shows, chooses accounts as on the consent page, and approves — with a
 * fresh one-time code for that approval — or denies. The session is the dashboard's (a strong one).
 */

export const BANK_APP_PATH = '/sandbox/app';
const CSRF_PURPOSE = 'bank-app';

export interface BankAppPageDeps {
  provider: Provider;
  authorisation: DecoupledAuthorisation;
  customers: CustomerDirectory;
  throttle: LoginThrottle;
  sca: InteractionSca;
  sessions: CustomerSessions;
  views: Views;
  csrf: Csrf;
  logger: Logger;
}

type Ctx = ParameterizedContext;
/** A message said in the page's language. */
type Say = (t: Translate) => string;

export function createBankAppPageRouter(deps: BankAppPageDeps): Router {
  const router = new Router({ prefix: BANK_APP_PATH });

  const strongCustomer = async (ctx: Ctx) => {
    const session = await deps.sessions.currentWithStrength(ctx);
    return session?.strength === 'strong' ? session.customerId : undefined;
  };

  /** The page in the browser's language (Accept-Language); `error` and `notice` are said in it. */
  const render = async (ctx: Ctx, extra: { error?: Say; notice?: Say } = {}) => {
    const customerId = await strongCustomer(ctx);
    const locale = deps.views.catalogues.negotiate(undefined, ctx.get('accept-language'));
    const t = deps.views.catalogues.translator(locale);
    const intl = intlLocale(locale);
    const said = {
      ...(extra.error === undefined ? {} : { error: extra.error(t) }),
      ...(extra.notice === undefined ? {} : { notice: extra.notice(t) }),
    };
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    if (customerId === undefined) {
      ctx.body = deps.views.render('bank-app', { csrf: deps.csrf.token(ctx, CSRF_PURPOSE), ...said }, locale);
      return;
    }
    const customer = await deps.customers.findById(customerId);
    const pending = await deps.authorisation.pendingFor(customerId);
    const requests = await Promise.all(
      pending.map(async (r, index) => {
        const client = await deps.provider.Client.find(r.clientId);
        const accounts = await deps.authorisation.offered(r);
        return {
          index,
          id: r.id,
          clientName: client?.clientName ?? r.clientId,
          bindingMessage: r.bindingMessage,
          purpose: r.purpose,
          expiresAt: new Intl.DateTimeFormat(intl, { dateStyle: 'medium', timeStyle: 'long', timeZone: deps.views.timeZone }).format(r.expiresAt),
          selection: r.requested?.type === 'payment_initiation' ? 'one' : 'many',
          // RTS Art. 5(1)(a): a payment's amount and payee are shown where the customer authenticates for it.
          detail: r.requested === undefined ? undefined : describeDetail(r.requested, intl, deps.views.timeZone),
          accounts: accounts.map((a) => describeAccount(a)),
        };
      }),
    );
    ctx.body = deps.views.render(
      'bank-app',
      { csrf: deps.csrf.token(ctx, CSRF_PURPOSE), customerName: customer?.name ?? customerId, requests, ...said },
      locale,
    );
  };

  router.get('/', (ctx) => render(ctx));

  router.post('/login', async (ctx) => {
    const form = await readForm(ctx.req);
    deps.csrf.verify(ctx, CSRF_PURPOSE, form.get(CSRF_FIELD) ?? undefined);
    const signedIn = await signIn(
      ctx,
      { customers: deps.customers, throttle: deps.throttle, logger: deps.logger },
      form.get('username') ?? '',
      form.get('password') ?? '',
    );
    if (!signedIn.ok) {
      ctx.status = signedIn.status;
      const { refusal } = signedIn;
      await render(ctx, { error: (t) => signInRefusalText(t, refusal) });
      return;
    }
    // RTS Art. 4: the app is opened with two factors, as the bank's real app is.
    const checked = deps.sca.totp === undefined ? undefined : await deps.sca.totp.verify(signedIn.customerId, form.get('code'), ctx.ip);
    if (checked === undefined || !checked.ok) {
      ctx.status = SIGN_IN_REFUSAL_STATUS.code_refused;
      await render(ctx, { error: (t) => (checked === undefined ? t('bankApp.noCode') : codeRefusalText(t, checked)) });
      return;
    }
    await deps.sessions.start(ctx, signedIn.customerId, 'strong');
    ctx.status = 303;
    ctx.redirect(BANK_APP_PATH);
  });

  router.post('/requests/:id', async (ctx) => {
    const form = await readForm(ctx.req);
    deps.csrf.verify(ctx, CSRF_PURPOSE, form.get(CSRF_FIELD) ?? undefined);
    const customerId = await strongCustomer(ctx);
    if (customerId === undefined) {
      // A decision needs a strong sign-in first: answered as the service's sca_required refusal.
      ctx.status = DECOUPLED_REFUSAL_PAGE_STATUS.sca_required;
      await render(ctx, { error: (t) => t('bankApp.signInFirst') });
      return;
    }
    const id = ctx.params.id!;
    try {
      if (form.get('decision') === 'deny') {
        await deps.authorisation.deny({ id, customerId });
        await render(ctx, { notice: (t) => t('bankApp.denied') });
        return;
      }
      if (form.get('decision') !== 'approve') throw new DecoupledRefusal('choice_invalid', 'choose approve or deny');
      // The approval's own second factor: a fresh code for this request, beside the sign-in password.
      const checked = deps.sca.totp === undefined ? undefined : await deps.sca.totp.verify(customerId, form.get('code'), ctx.ip);
      const factors = checked?.ok === true ? [passwordFactor(), totpFactor()] : [passwordFactor()];
      await deps.authorisation.approve({ id, customerId, factors, accounts: form.getAll('accounts') });
      await render(ctx, { notice: (t) => t('bankApp.approved') });
    } catch (err) {
      if (!(err instanceof DecoupledRefusal)) throw err;
      // The kernel's page dialect: the status, and bankApp.refused.<code> in views/locales (the
      // English message stays in the service and the JSON API). A refused choice of accounts is said
      // as on the consent page (choice.<code>).
      const answer = htmlErrorResponse(err);
      ctx.status = answer.status;
      const { cause } = err;
      await render(ctx, { error: (t) => (cause instanceof ChoiceInvalid ? t(`choice.${cause.code}`) : t(answer.messageKey!)) });
    }
  });

  return router;
}
