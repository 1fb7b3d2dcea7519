import Router from '@koa/router';
import { htmlErrorPages } from '../interactions/render-error.ts';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import type { MoatConfig } from '../config/schema.ts';
import { ConsentNotFound, ConsentStateConflict, type Consent } from '../consents/consent.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { describeAccountReference, describeDetail, formatDate, statusWords } from '../consents/presentation.ts';
import { maskedIdentification } from '../customers/account-directory.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import type { LoginThrottle } from '../customers/login-throttle.ts';
import { CSRF_FIELD, type Csrf } from '../http/csrf.ts';
import { OAuthError } from '../http/oauth-error.ts';
import { readForm } from '../http/read-body.ts';
import { signIn } from '../interactions/routes.ts';
import type { Views } from '../interactions/views.ts';
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
  consents: ConsentService;
  sessions: CustomerSessions;
  views: Views;
  csrf: Csrf;
  throttle: LoginThrottle;
  config: MoatConfig;
  logger: Logger;
  /** customers.source: oidc — the dashboard's sign-in goes to the bank's IdP instead of the password form. */
  federatedSignIn?: (ctx: ParameterizedContext) => Promise<void>;
}

type Ctx = ParameterizedContext;

export function createDashboardRouter(deps: DashboardDeps): Router {
  const { views, csrf, sessions, consents, logger } = deps;
  const router = new Router({ prefix: DASHBOARD_PATH });

  router.use(htmlErrorPages(views, {
    back: { link: `${DASHBOARD_PATH}/consents`, label: 'Back to your consents' },
    also: (err) => (err instanceof ConsentNotFound ? { status: 404, error: 'not_found', description: 'There is no such consent in your account.' } : undefined),
  }));

  const renderLogin = (ctx: Ctx, extra: { error?: string; username?: string } = {}) => {
    ctx.type = 'html';
    ctx.body = views.render('dashboard-login', { csrf: csrf.token(ctx, 'dashboard-login'), ...extra });
  };

  /** The signed-in customer, or a redirect to sign in. */
  const requireCustomer = async (ctx: Ctx): Promise<string | undefined> => {
    const customerId = await sessions.current(ctx);
    if (customerId === undefined) ctx.redirect(`${DASHBOARD_PATH}/login`);
    return customerId;
  };

  router.get('/', (ctx) => ctx.redirect(`${DASHBOARD_PATH}/consents`));
  router.get('/login', async (ctx) => {
    if (await sessions.current(ctx) !== undefined) {
      ctx.redirect(`${DASHBOARD_PATH}/consents`);
      return;
    }
    if (deps.federatedSignIn !== undefined) await deps.federatedSignIn(ctx);
    else renderLogin(ctx);
  });

  router.post('/login', async (ctx) => {
    // The bank's IdP signs its customers in; Moat holds no passwords for them.
    if (deps.federatedSignIn !== undefined) throw new OAuthError('invalid_request', "this bank signs customers in at its own sign-in page: open the dashboard again");
    const form = await readForm(ctx.req);
    csrf.verify(ctx, 'dashboard-login', form.get(CSRF_FIELD) ?? undefined);
    const username = form.get('username') ?? '';
    const result = await signIn(ctx, deps, username, form.get('password') ?? '');
    if (!result.ok) {
      ctx.status = result.status;
      renderLogin(ctx, { error: result.message, username });
      return;
    }
    await sessions.start(ctx, result.customerId);
    ctx.redirect(`${DASHBOARD_PATH}/consents`);
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
    const described = await Promise.all(all.map((c) => describeConsent(deps.provider, c)));
    const active = described.filter((c) => c.status === 'Authorised');
    ctx.type = 'html';
    ctx.body = views.render('dashboard', {
      customerName: customer?.name ?? customerId,
      csrf: csrf.token(ctx, 'dashboard'),
      groups: groupByTpp(active),
      history: described.filter((c) => c.status !== 'Authorised' && c.status !== 'AwaitingAuthorisation'),
      notice: ctx.query.done === 'revoked' ? 'Done: that application can no longer use this consent.' : undefined,
    });
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
    ctx.body = views.render('revoke-confirm', { consent: await describeConsent(deps.provider, consent), csrf: csrf.token(ctx, `revoke:${consent.id}`) });
  });

  router.post('/consents/:id/revoke', async (ctx) => {
    const customerId = await requireCustomer(ctx);
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
    ctx.redirect(`${DASHBOARD_PATH}/consents?done=revoked`);
  });

  return router;
}

interface ConsentCard {
  id: string;
  status: Consent['status'];
  statusText: string;
  clientId: string;
  clientName: string;
  orgName?: string;
  detail?: ReturnType<typeof describeDetail>;
  scopes: string;
  accounts: string[];
  grantedOn: string;
  endedOn?: string;
  expires?: string;
}

async function describeConsent(provider: Provider, consent: Consent): Promise<ConsentCard> {
  const client = await provider.Client.find(consent.clientId);
  const metadata = (client?.metadata() ?? {}) as Record<string, unknown>;
  const shown = consent.granted ?? consent.requested;
  const accounts = consent.granted === undefined ? []
    : consent.granted.type === 'account_information'
      ? consent.granted.accounts.map((a) => `${describeAccountReference(a).startsWith('IBAN') ? 'IBAN' : 'Account'} ${maskedIdentification(a.identification)}`)
      : [`Account ${maskedIdentification(consent.granted.debtorAccount.identification)}`];
  return {
    id: consent.id,
    status: consent.status,
    statusText: statusWords(consent.status),
    clientId: consent.clientId,
    // A deleted client still shows in history, by its id.
    clientName: client?.clientName ?? consent.clientId,
    ...(typeof metadata.org_name === 'string' ? { orgName: metadata.org_name } : {}),
    ...(shown === undefined ? {} : { detail: describeDetail(shown) }),
    scopes: consent.scope,
    accounts,
    grantedOn: formatDate(consent.status === 'Authorised' ? consent.statusUpdatedAt : consent.createdAt)!,
    ...(consent.status === 'Authorised' ? {} : { endedOn: formatDate(consent.statusUpdatedAt)! }),
    ...(consent.expiresAt === undefined ? {} : { expires: formatDate(consent.expiresAt)! }),
  };
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
