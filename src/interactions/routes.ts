import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import type { MoatConfig } from '../config/schema.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import { SANDBOX_CUSTOMERS } from '../customers/sql-customer-directory.ts';
import { OAuthError } from '../http/oauth-error.ts';
import { StorageUnavailableError } from '../storage/model-store.ts';
import { readForm } from '../http/read-body.ts';
import type { Logger } from '../observability/logger.ts';
import type { Views } from './views.ts';

/*
 * The bank customer's side of an authorization: login and consent. The form fields are a documented,
 * stable contract that TPPs automate in their sandbox CI: the login form posts `username` and
 * `password`; the consent form posts `decision=approve` or `decision=deny`.
 */

interface Deps {
  provider: Provider;
  customers: CustomerDirectory;
  views: Views;
  config: MoatConfig;
  logger: Logger;
}

type Ctx = ParameterizedContext;

export function createInteractionRouter(deps: Deps): Router {
  const { provider, views, customers, config, logger } = deps;
  const router = new Router();
  const sandbox = config.mode === 'sandbox';

  // A customer's browser gets a page, not JSON: an expired or unknown interaction, a form posted
  // without its cookies, a body that is not a form.
  router.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const own = err instanceof OAuthError ? { status: err.status, error: err.code, description: err.description }
        : err instanceof StorageUnavailableError
          ? { status: 503, error: 'temporarily_unavailable', description: 'The service is briefly unavailable. Try again in a moment.' }
          : undefined;
      const provider = err as { status?: number; error?: string; error_description?: string; expose?: boolean };
      const shown = own ?? (provider.expose === true && typeof provider.status === 'number'
        ? { status: provider.status!, error: provider.error, description: provider.error_description } : undefined);
      if (shown === undefined) throw err;
      ctx.status = shown.status;
      ctx.type = 'html';
      ctx.body = views.render('error', {
        error: shown.error,
        description: shown.description ?? 'The sign-in session has expired or is not valid. Return to the application and start again.',
        interactionId: ctx.response.get('x-fapi-interaction-id'),
      });
      logger.info({ event: 'interaction.error', outcome: shown.error, status: shown.status }, 'interaction error');
    }
  });

  const clientView = async (clientId: string) => {
    const client = await provider.Client.find(clientId);
    return {
      clientName: client?.clientName ?? clientId,
      orgName: (client?.metadata() as Record<string, unknown> | undefined)?.org_name as string | undefined,
      clientUri: client?.clientUri,
    };
  };

  const renderLogin = async (ctx: Ctx, uid: string, clientId: string, extra: { error?: string; username?: string } = {}) => {
    ctx.type = 'html';
    ctx.body = views.render('login', {
      uid, ...(await clientView(clientId)), ...extra,
      demoCustomers: sandbox ? SANDBOX_CUSTOMERS : [],
    });
  };

  router.get('/interaction/:uid', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const clientId = String(details.params.client_id);
    if (details.prompt.name === 'login') {
      await renderLogin(ctx, details.uid, clientId);
      return;
    }
    const accountId = details.session?.accountId;
    const customer = accountId === undefined ? undefined : await customers.findById(accountId);
    const scopeDescriptions = describeScopes(String(details.params.scope ?? ''), config);
    ctx.type = 'html';
    ctx.body = views.render('consent', {
      uid: details.uid, ...(await clientView(clientId)), customerName: customer?.name ?? accountId, scopes: scopeDescriptions,
    });
  });

  router.post('/interaction/:uid/login', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const form = await readForm(ctx.req);
    const username = form.get('username') ?? '';
    const password = form.get('password') ?? '';
    if (details.prompt.name !== 'login') {
      ctx.status = 400;
      await renderLogin(ctx, details.uid, String(details.params.client_id), { error: 'This sign-in step is already complete.' });
      return;
    }
    const customer = username === '' || password === '' ? undefined : await customers.authenticate(username, password);
    if (customer === undefined) {
      logger.info({ event: 'login.failed', outcome: 'login_failed' }, 'customer login failed');
      ctx.status = 401;
      await renderLogin(ctx, details.uid, String(details.params.client_id), { error: 'The username or password is incorrect.', username });
      return;
    }
    logger.info({ event: 'login.succeeded', accountId: customer.id }, 'customer logged in');
    await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: customer.id } }, { mergeWithLastSubmission: false });
    ctx.respond = false;
  });

  router.post('/interaction/:uid/consent', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const form = await readForm(ctx.req);
    const decision = form.get('decision');
    if (decision !== 'approve' && decision !== 'deny') {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = views.render('error', { error: 'invalid_request', description: 'decision must be approve or deny', interactionId: ctx.response.get('x-fapi-interaction-id') });
      return;
    }
    if (decision === 'deny') {
      logger.info({ event: 'consent.denied', outcome: 'consent_denied', clientId: details.params.client_id }, 'customer denied consent');
      await provider.interactionFinished(ctx.req, ctx.res, {
        error: 'access_denied', error_description: 'the customer denied the request',
      }, { mergeWithLastSubmission: false });
      ctx.respond = false;
      return;
    }
    if (details.prompt.name !== 'consent' || details.session?.accountId === undefined) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = views.render('error', { error: 'invalid_request', description: 'sign in before approving', interactionId: ctx.response.get('x-fapi-interaction-id') });
      return;
    }
    const grantId = await grantRequested(provider, details);
    logger.info({ event: 'consent.granted', outcome: 'consent_granted', clientId: details.params.client_id }, 'customer granted consent');
    await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    ctx.respond = false;
  });

  return router;
}

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

/** Records what the consent prompt says is missing as granted (the rich, narrowing consent is a later issue). */
async function grantRequested(provider: Provider, details: InteractionDetails): Promise<string> {
  const accountId = details.session!.accountId;
  const clientId = String(details.params.client_id);
  const grant = new provider.Grant({ accountId, clientId });
  const missing = details.prompt.details as {
    missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]>;
  };
  if (missing.missingOIDCScope !== undefined) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims !== undefined) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

function describeScopes(scope: string, config: MoatConfig): string[] {
  return scope.split(' ').filter(Boolean).flatMap((s) => {
    if (s === 'openid') return ['Confirm who you are to the application'];
    if (s === 'offline_access') return ['Keep access while you are not using the application'];
    const configured = config.scopes[s];
    return configured === undefined ? [] : [configured.description];
  });
}
