import Router from '@koa/router';
import { htmlErrorPages, renderErrorPage } from '../interactions/render-error.ts';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import { textIn } from '../config/localised-text.ts';
import type { MoatConfig } from '../config/schema.ts';
import type { AccountReference } from '../kernel/account-reference.ts';
import { ConsentNotFound, ConsentStateConflict, type Consent } from '../consents/consent.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { describeAccountReference, describeDetail, formatDate, formatDateTime } from '../consents/presentation.ts';
import { AccountsUnavailable, maskedIdentification, sameAccount, type AccountDirectory, type CustomerAccount } from '../customers/account-directory.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import type { LoginThrottle } from '../customers/login-throttle.ts';
import { CSRF_FIELD, type Csrf } from '../http/csrf.ts';
import { codeRefusalStatus, htmlErrorResponse, PAGE_REFUSAL_STATUS } from '../kernel/error-responses.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import { StrongSignInRequired } from '../kernel/strong-sign-in-required.ts';
import { readForm } from '../http/read-body.ts';
import { signIn, type InteractionSca } from '../interactions/routes.ts';
import type { Views } from '../interactions/views.ts';
import { intlLocale, type Translate } from '../interactions/messages.ts';
import { codeRefusalText, signInRefusalText } from '../interactions/refusal-text.ts';
import type { CodeCheck } from '../sca/totp-factor.ts';
import type { Logger } from '../observability/logger.ts';
import type { CustomerSessions } from './customer-sessions.ts';

/*
 * The customer's consent dashboard at /account: every consent they gave, by TPP, with what it
 * shares, from which accounts, since and until when; stopping one takes one confirmation and ends
 * its tokens at once. Stopped, expired and used consents stay listed as history.
 */

export const DASHBOARD_PATH = '/account';

export interface DashboardDeps {
  provider: Provider;
  customers: CustomerDirectory;
  /** The customer's accounts, to name them by their nicknames as the consent screen did. */
  accounts: AccountDirectory;
  consents: ConsentService;
  sessions: CustomerSessions;
  views: Views;
  csrf: Csrf;
  throttle: LoginThrottle;
  config: MoatConfig;
  logger: Logger;
  sca: InteractionSca;
  /** The sign-in page's passkey form (passkey-routes.ts), when passkeys are offered. */
  passkeyOffer?: (ctx: ParameterizedContext) => Promise<{ options: string; script: { src: string; integrity: string; nonce: string } }>;
  /** customers.source: oidc — the dashboard's sign-in goes to the bank's IdP instead of the password form. */
  federatedSignIn?: (ctx: ParameterizedContext) => Promise<void>;
}

type Ctx = ParameterizedContext;

export function createDashboardRouter(deps: DashboardDeps): Router {
  const { views, csrf, sessions, consents, logger } = deps;
  const router = new Router({ prefix: DASHBOARD_PATH });

  router.use(
    htmlErrorPages(views, {
      back: { link: `${DASHBOARD_PATH}/consents`, labelKey: 'error.back.consents' },
      // The kernel's answer to a missing consent, in the dashboard's words (it is the customer's own list).
      also: (err) =>
        err instanceof ConsentNotFound
          ? { ...htmlErrorResponse(err), description: 'no such consent for this customer', messageKey: 'error.noSuchConsent' }
          : undefined,
    }),
  );

  /** The dashboard's language: the browser's Accept-Language among the catalogues (messages.ts). */
  const localeOf = (ctx: Ctx) => views.catalogues.negotiate(undefined, ctx.get('accept-language'));
  /** A message said in the page's language. */
  type Say = (t: Translate) => string;
  const said = (ctx: Ctx, extra: { error?: Say | undefined; notice?: Say | undefined }) => {
    const t = views.catalogues.translator(localeOf(ctx));
    return {
      ...(extra.error === undefined ? {} : { error: extra.error(t) }),
      ...(extra.notice === undefined ? {} : { notice: extra.notice(t) }),
    };
  };

  const renderLogin = async (ctx: Ctx, extra: { error?: Say; username?: string } = {}) => {
    const passkey = await deps.passkeyOffer?.(ctx);
    ctx.type = 'html';
    ctx.body = views.render(
      'dashboard-login',
      {
        csrf: csrf.token(ctx, 'dashboard-login'),
        ...(passkey === undefined ? {} : { passkey }),
        ...(extra.username === undefined ? {} : { username: extra.username }),
        ...said(ctx, extra),
      },
      localeOf(ctx),
    );
  };

  /** The signed-in customer, or a redirect to sign in. */
  const requireCustomer = async (ctx: Ctx): Promise<string | undefined> => {
    const customerId = await sessions.current(ctx);
    if (customerId === undefined) ctx.redirect(`${DASHBOARD_PATH}/login`);
    return customerId;
  };

  /** The signed-in customer and how they signed in, or a redirect to sign in. */
  const sessionOrSignIn = async (ctx: Ctx) => {
    const session = await sessions.currentWithStrength(ctx);
    if (session === undefined) ctx.redirect(`${DASHBOARD_PATH}/login`);
    return session;
  };

  /** The customer's accounts for their nicknames; none when the account service cannot answer (numbers then). */
  const accountsOf = async (customerId: string): Promise<CustomerAccount[]> => {
    try {
      return await deps.accounts.listForCustomer(customerId);
    } catch (err) {
      if (!(err instanceof AccountsUnavailable)) throw err;
      logger.warn(
        { event: 'dashboard.accounts_unavailable', outcome: 'accounts_unavailable', reason: err.reason },
        'dashboard shows account numbers: the account directory is unavailable',
      );
      return [];
    }
  };

  router.get('/', (ctx) => ctx.redirect(`${DASHBOARD_PATH}/consents`));
  router.get('/login', async (ctx) => {
    if ((await sessions.current(ctx)) !== undefined) {
      ctx.redirect(`${DASHBOARD_PATH}/consents`);
      return;
    }
    if (deps.federatedSignIn !== undefined) await deps.federatedSignIn(ctx);
    else await renderLogin(ctx);
  });

  router.post('/login', async (ctx) => {
    // The bank's IdP signs its customers in; Moat holds no passwords for them.
    if (deps.federatedSignIn !== undefined)
      throw new OAuthError('invalid_request', 'this bank signs customers in at its own sign-in page: open the dashboard again');
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-login', form.get(CSRF_FIELD) ?? undefined);
    const username = form.get('username') ?? '';
    const result = await signIn(ctx, deps, username, form.get('password') ?? '');
    if (!result.ok) {
      ctx.status = result.status;
      const { refusal } = result;
      await renderLogin(ctx, { error: (t) => signInRefusalText(t, refusal), username });
      return;
    }
    if (deps.sca.totp !== undefined && (await deps.sca.totp.status(result.customerId)) === 'active') {
      // RTS Art. 4: the second element on its own page; nobody is signed in until it is given.
      await sessions.startPending(ctx, result.customerId);
      ctx.redirect(`${DASHBOARD_PATH}/login/code`);
      return;
    }
    await sessions.start(ctx, result.customerId, 'password');
    ctx.redirect(`${DASHBOARD_PATH}/consents`);
  });

  const renderCode = (ctx: Ctx, extra: { error?: Say } = {}) => {
    ctx.type = 'html';
    ctx.body = views.render('dashboard-code', { csrf: csrf.token(ctx, 'dashboard-code'), ...said(ctx, extra) }, localeOf(ctx));
  };

  router.get('/login/code', async (ctx) => {
    if ((await sessions.pending(ctx)) === undefined) {
      ctx.redirect(`${DASHBOARD_PATH}/login`);
      return;
    }
    renderCode(ctx);
  });

  router.post('/login/code', async (ctx) => {
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-code', form.get(CSRF_FIELD) ?? undefined);
    const customerId = await sessions.pending(ctx);
    if (customerId === undefined || deps.sca.totp === undefined) {
      ctx.redirect(`${DASHBOARD_PATH}/login`);
      return;
    }
    const checked = await deps.sca.totp.verify(customerId, form.get('code'), ctx.ip);
    if (!checked.ok) {
      answerRefusal(ctx, checked);
      renderCode(ctx, { error: (t) => codeRefusalText(t, checked) });
      return;
    }
    await sessions.start(ctx, customerId, 'strong');
    ctx.redirect(`${DASHBOARD_PATH}/consents`);
  });

  /**
   * The signed-in customer if they signed in strongly; otherwise a page saying what is needed. Stopping
   * a consent and changing factors need SCA (issue 16 §4): a stolen password alone changes nothing.
   */
  const requireStrongCustomer = async (ctx: Ctx): Promise<string | undefined> => {
    const session = await sessionOrSignIn(ctx);
    if (session === undefined) return undefined;
    if (session.strength === 'strong') return session.customerId;
    const back = { link: `${DASHBOARD_PATH}/security`, labelKey: 'dashboard.security' };
    renderErrorPage(views, ctx, htmlErrorResponse(new StrongSignInRequired('error.scaRequired.dashboard')), { back }, localeOf(ctx));
    return undefined;
  };

  router.get('/security', async (ctx) => {
    const session = await sessionOrSignIn(ctx);
    if (session === undefined) return;
    await renderSecurity(ctx, session.customerId, session.strength);
  });

  const renderSecurity = async (
    ctx: Ctx,
    customerId: string,
    strength: 'strong' | 'password',
    extra: { error?: Say; enrolment?: { secret: string; uri: string }; retryEnrolment?: boolean } = {},
  ) => {
    const done = ctx.query.done;
    ctx.type = 'html';
    ctx.body = views.render(
      'dashboard-security',
      {
        csrf: csrf.token(ctx, 'dashboard-security'),
        totpEnabled: deps.sca.totp !== undefined,
        totp: deps.sca.totp === undefined ? 'none' : await deps.sca.totp.status(customerId),
        strong: strength === 'strong',
        ...(extra.enrolment === undefined ? {} : { enrolment: extra.enrolment }),
        ...(extra.retryEnrolment === undefined ? {} : { retryEnrolment: extra.retryEnrolment }),
        ...said(ctx, {
          error: extra.error,
          notice: done === 'removed' || done === 'enrolled' ? (t) => t(`security.done.${done}`) : undefined,
        }),
      },
      localeOf(ctx),
    );
  };

  /**
   * Setting up the first authenticator app needs only the password (there is no second factor to
   * ask for yet); replacing or removing one needs SCA.
   */
  router.post('/security/totp/start', async (ctx) => {
    const session = await sessionOrSignIn(ctx);
    if (session === undefined) return;
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-security', form.get(CSRF_FIELD) ?? undefined);
    if (deps.sca.totp === undefined) throw new OAuthError('invalid_request', 'one-time codes are not enabled');
    const customer = await deps.customers.findById(session.customerId);
    const started = await deps.sca.totp.beginEnrolment(session.customerId, customer?.name ?? session.customerId);
    if ('refused' in started) {
      ctx.status = PAGE_REFUSAL_STATUS.state_changed;
      await renderSecurity(ctx, session.customerId, session.strength, { error: (t) => t('security.alreadySetUp') });
      return;
    }
    await renderSecurity(ctx, session.customerId, session.strength, { enrolment: started });
  });

  router.post('/security/totp/confirm', async (ctx) => {
    const session = await sessionOrSignIn(ctx);
    if (session === undefined) return;
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-security', form.get(CSRF_FIELD) ?? undefined);
    if (deps.sca.totp === undefined) throw new OAuthError('invalid_request', 'one-time codes are not enabled');
    const checked = await deps.sca.totp.confirmEnrolment(session.customerId, form.get('code'), ctx.ip);
    if (!checked.ok) {
      answerRefusal(ctx, checked);
      // The secret stays pending: the page shows the same one again so the customer can retry.
      await renderSecurity(ctx, session.customerId, session.strength, {
        error: (t) => codeRefusalText(t, checked, 'pending'),
        retryEnrolment: checked.reason !== 'no_factor',
      });
      return;
    }
    // Password and a code just given: the session is strong from now on.
    await sessions.start(ctx, session.customerId, 'strong');
    logger.info({ event: 'factor.enrolled', accountId: session.customerId, factor: 'totp' }, 'customer set up an authenticator app');
    ctx.redirect(`${DASHBOARD_PATH}/security?done=enrolled`);
  });

  router.post('/security/totp/remove', async (ctx) => {
    const customerId = await requireStrongCustomer(ctx);
    if (customerId === undefined) return;
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-security', form.get(CSRF_FIELD) ?? undefined);
    await deps.sca.totp?.remove(customerId, { actor: 'customer', actorId: customerId });
    // Signed in with the factor just removed: the session is no longer strong.
    await sessions.start(ctx, customerId, 'password');
    ctx.redirect(`${DASHBOARD_PATH}/security?done=removed`);
  });

  router.post('/logout', async (ctx) => {
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard', form.get(CSRF_FIELD) ?? undefined);
    await sessions.end(ctx);
    ctx.redirect(`${DASHBOARD_PATH}/login`);
  });

  router.get('/consents', async (ctx) => {
    const customerId = await requireCustomer(ctx);
    if (customerId === undefined) return;
    const customer = await deps.customers.findById(customerId);
    const all = await consents.listForCustomer(customerId);
    const own = await accountsOf(customerId);
    const locale = localeOf(ctx);
    const t = views.catalogues.translator(locale);
    const described = await Promise.all(all.map((c) => describeConsent(deps.provider, c, own, deps.config, t, intlLocale(locale), views.timeZone)));
    // A payment is never "active" with a stop button: it is waiting, paid or refused (OBIE CEG).
    const sharing = described.filter((c) => c.kind !== 'domestic_payment');
    const revoked = typeof ctx.query.revoked === 'string' ? described.find((c) => c.id === ctx.query.revoked) : undefined;
    ctx.type = 'html';
    ctx.body = views.render(
      'dashboard',
      {
        customerName: customer?.name ?? customerId,
        csrf: csrf.token(ctx, 'dashboard'),
        groups: groupByTpp(sharing.filter((c) => c.status === 'Authorised')),
        payments: described.filter((c) => c.kind === 'domestic_payment' && c.status !== 'AwaitingAuthorisation'),
        history: sharing.filter((c) => c.status !== 'Authorised' && c.status !== 'AwaitingAuthorisation'),
        notice: revoked === undefined ? undefined : t('dashboard.revoked', { client: revoked.clientName }),
      },
      locale,
    );
  });

  router.get('/consents/:id/revoke', async (ctx) => {
    const customerId = await requireCustomer(ctx);
    if (customerId === undefined) return;
    const consent = await consents.getForCustomer(ctx.params.id!, customerId);
    if (consent.status !== 'Authorised') {
      ctx.redirect(`${DASHBOARD_PATH}/consents`);
      return;
    }
    ctx.type = 'html';
    const locale = localeOf(ctx);
    const described = await describeConsent(
      deps.provider,
      consent,
      await accountsOf(customerId),
      deps.config,
      views.catalogues.translator(locale),
      intlLocale(locale),
      views.timeZone,
    );
    ctx.body = views.render('revoke-confirm', { consent: described, csrf: csrf.token(ctx, `revoke:${consent.id}`) }, locale);
  });

  router.post('/consents/:id/revoke', async (ctx) => {
    const customerId = await requireStrongCustomer(ctx);
    if (customerId === undefined) return;
    const form = await readForm(ctx.req);
    const id = ctx.params.id!;
    csrf.verify(ctx, `revoke:${id}`, form.get(CSRF_FIELD) ?? undefined);
    await consents.getForCustomer(id, customerId);
    try {
      await consents.revoke(id, { actor: 'customer', actorId: customerId, reason: 'revoked from the consent dashboard' });
    } catch (err) {
      // Already stopped (another tab, the TPP, expiry): the outcome the customer wanted.
      if (!(err instanceof ConsentStateConflict)) throw err;
    }
    logger.info({ event: 'dashboard.revoked', consentId: id }, 'customer revoked a consent from the dashboard');
    ctx.redirect(`${DASHBOARD_PATH}/consents?${new URLSearchParams({ revoked: id })}`);
  });

  return router;
}

interface ConsentCard {
  id: string;
  kind: Consent['kind'];
  /** The card's heading, in words: never a raw scope. */
  title: string;
  /** Short, for accessible names that tell two consents of one TPP apart. */
  reference: string;
  /** What the date under the status means: "Allowed on", "Refused on", "Paid on"… */
  endedLabel?: string;
  status: Consent['status'];
  statusText: string;
  clientId: string;
  clientName: string;
  orgName?: string;
  detail?: ReturnType<typeof describeDetail>;
  scopes: string[];
  accounts: string[];
  grantedOn: string;
  endedOn?: string;
  expires?: string;
  /**
   * When the TPP last used it (token, introspection, gateway check, API call; to within a minute),
   * `never` for access not used yet; absent for a payment, whose one use is its payment.
   */
  lastUsed?: string | 'never';
}

/** The statuses whose end has a date of its own ("Refused on", "Paid on"…: ended.<status> in views/locales). */
const ENDED: readonly Consent['status'][] = ['Rejected', 'Revoked', 'Expired', 'Consumed'];

async function describeConsent(
  provider: Provider,
  consent: Consent,
  own: CustomerAccount[],
  config: MoatConfig,
  t: Translate,
  intl: string,
  timeZone: string,
): Promise<ConsentCard> {
  const client = await provider.Client.find(consent.clientId);
  const metadata = (client?.metadata() ?? {}) as Record<string, unknown>;
  const shown = consent.granted ?? consent.requested;
  // By nickname, as on the consent screen; by masked number when the bank no longer lists the account.
  const named = (ref: AccountReference) => {
    const account = own.find((a) => sameAccount(a, ref));
    return account !== undefined
      ? `${account.nickname} (${maskedIdentification(account.identification)})`
      : t(describeAccountReference(ref).key === 'account.iban' ? 'account.ibanMasked' : 'account.masked', { number: maskedIdentification(ref.identification) });
  };
  const accounts =
    consent.granted === undefined
      ? []
      : consent.granted.type === 'account_information'
        ? consent.granted.accounts.map(named)
        : [named(consent.granted.debtorAccount)];
  const detail = shown === undefined ? undefined : describeDetail(shown, intl, timeZone);
  const scopes = consent.scope
    .split(' ')
    .filter((s) => s !== 'openid')
    .flatMap((s) => {
      const configured = config.scopes[s];
      return configured === undefined ? [] : [textIn(configured.description, intl)];
    });
  const title =
    detail?.payment !== undefined
      ? t('card.payment', { amount: detail.payment.amount, payee: detail.payment.payee })
      : t(detail !== undefined ? 'card.information' : 'card.access');
  const payment = consent.kind === 'domestic_payment';
  return {
    id: consent.id,
    kind: consent.kind,
    title,
    reference: consent.id.slice(-6),
    status: consent.status,
    // A payment's state in its own words: authorised and waiting to be made, paid, refused.
    statusText: t(payment && consent.status === 'Authorised' ? 'status.paymentWaiting' : `status.${consent.status}`),
    ...(ENDED.includes(consent.status) ? { endedLabel: t(`ended.${consent.status}`) } : {}),
    clientId: consent.clientId,
    // A deleted client still shows in history, by its id.
    clientName: client?.clientName ?? consent.clientId,
    ...(typeof metadata.org_name === 'string' ? { orgName: metadata.org_name } : {}),
    ...(detail === undefined ? {} : { detail }),
    scopes,
    accounts,
    grantedOn: formatDate(consent.status === 'Authorised' ? consent.statusUpdatedAt : consent.createdAt, intl, timeZone)!,
    ...(consent.status === 'Authorised' ? {} : { endedOn: formatDate(consent.statusUpdatedAt, intl, timeZone)! }),
    ...(consent.expiresAt === undefined ? {} : { expires: formatDate(consent.expiresAt, intl, timeZone)! }),
    ...(payment ? {} : { lastUsed: consent.lastUsedAt === undefined ? 'never' : formatDateTime(consent.lastUsedAt, intl, timeZone) }),
  };
}

function answerRefusal(ctx: Ctx, checked: Exclude<CodeCheck, { ok: true }>): void {
  const { status, retryAfterSeconds } = codeRefusalStatus(checked);
  ctx.status = status;
  if (retryAfterSeconds !== undefined) ctx.set('Retry-After', String(retryAfterSeconds));
}

function groupByTpp(cards: ConsentCard[]): { clientName: string; orgName?: string; consents: ConsentCard[] }[] {
  const groups = new Map<string, { clientName: string; orgName?: string; consents: ConsentCard[] }>();
  for (const card of cards) {
    const group = groups.get(card.clientId) ?? { clientName: card.clientName, ...(card.orgName === undefined ? {} : { orgName: card.orgName }), consents: [] };
    group.consents.push(card);
    groups.set(card.clientId, group);
  }
  return [...groups.values()].sort((a, b) => a.clientName.localeCompare(b.clientName));
}
