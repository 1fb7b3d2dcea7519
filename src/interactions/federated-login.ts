import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import type { UpstreamIdpConfig } from '../config/schema.ts';
import type { FederatedCustomerDirectory } from '../customers/customer-directory.ts';
import { FederationFailure, type FederationFailureKind } from '../federation/federation-failure.ts';
import { countsAsSca, upstreamFactor } from '../federation/sca-mapping.ts';
import type { FederatedOutcome, SignInStates } from '../federation/sign-in-states.ts';
import { FEDERATION_CALLBACK_PATH, type FederatedIdentity, type UpstreamIdp } from '../federation/upstream-idp.ts';
import { CSRF_FIELD, type Csrf } from '../http/csrf.ts';
import { readForm } from '../http/read-body.ts';
import { PAGE_REFUSAL_STATUS } from '../kernel/error-responses.ts';
import type { Logger } from '../observability/logger.ts';
import type { FactorUse } from '../sca/authentication.ts';
import { savePendingAuthentication } from './customer-authentication.ts';
import { htmlErrorPages, INTERACTION_EXPIRED } from './render-error.ts';
import type { Views } from './views.ts';

/*
 * The customer signs in at the bank's own OpenID Provider (customers.source: oidc). The login
 * prompt sends the browser to the IdP; the IdP sends it back to /federation/callback, where the
 * answer is checked and its outcome kept for the interaction; /interaction/:uid/federated then
 * resumes the interaction (its cookie proves it is the same browser): signed in with SCA, or a page
 * that says what went wrong with a way to try again or to return to the TPP with the RFC 6749
 * §4.1.2.1 error. A browser is tied to its sign-in by a signed cookie naming the interaction and
 * state, so a callback from another browser (login CSRF) or a replayed one finds nothing.
 */

export const FEDERATION_COOKIE = 'moat-federation';

export interface FederatedLoginDeps {
  provider: Provider;
  idp: UpstreamIdp;
  idpConfig: UpstreamIdpConfig;
  states: SignInStates;
  customers: FederatedCustomerDirectory;
  views: Views;
  csrf: Csrf;
  logger: Logger;
  /** How long a sign-in may take at the IdP: the interaction's own lifetime. */
  ttlSeconds: number;
  /** Counts a failure for the operator's metric. */
  onFailure(kind: FederationFailureKind): void;
  /** Starts the consent dashboard's session for a customer who signed in for it (dashboard/customer-sessions.ts). */
  startDashboardSession(ctx: ParameterizedContext, customerId: string): Promise<void>;
  /**
   * A dashboard sign-in below SCA, to be stepped up (customers.oidc.sca.belowSca: step_up): starts
   * the dashboard's pending session for its one-time-code step when the customer has a code that
   * makes `upstream` strong; false when they have none.
   */
  startDashboardStepUp(ctx: ParameterizedContext, customerId: string, upstream: FactorUse): Promise<boolean>;
}

export interface FederatedLogin {
  /** The login prompt of interaction `uid`: off to the bank's IdP, or the page saying it is unavailable. */
  begin(ctx: ParameterizedContext, uid: string): Promise<void>;
  /** Sign-in to the consent dashboard (/account): off to the bank's IdP, back to the dashboard. */
  beginDashboard(ctx: ParameterizedContext): Promise<void>;
  router: Router;
}

/**
 * What a sign-in resumes, as the pending sign-in and the browser's cookie name it: an interaction by
 * its uid (43 base64url characters), or the consent dashboard.
 */
const DASHBOARD_TARGET = 'account';
const DASHBOARD_LOGIN = '/account/login';
const DASHBOARD_HOME = '/account/consents';
const DASHBOARD_CODE = '/account/login/code';

type Ctx = ParameterizedContext;

export function createFederatedLogin(deps: FederatedLoginDeps): FederatedLogin {
  const { provider, idp, states, views, csrf, logger } = deps;
  const router = new Router();
  router.use(htmlErrorPages(views, { fallbackDescription: INTERACTION_EXPIRED }));

  const failed = (failure: FederationFailure) => {
    deps.onFailure(failure.kind);
    logger.warn(
      { event: 'federation.failed', kind: failure.kind, outcome: failure.tppError, issuer: idp.issuer, reason: failure.message, err: failure.cause },
      'sign-in at the bank IdP failed',
    );
  };

  /** The page for a sign-in that did not work: retry (and, in an interaction, cancel) when the target is known. */
  /**
   * The page's language: an interaction's ui_locales (OIDC Core §3.1.2.1) when the sign-in was for
   * one, else the browser's Accept-Language.
   */
  const localeFor = async (ctx: Ctx, target: string | undefined) => {
    const interaction = target === undefined || target === DASHBOARD_TARGET ? undefined : await provider.Interaction.find(target);
    const uiLocales = interaction?.params.ui_locales;
    return views.catalogues.negotiate(typeof uiLocales === 'string' ? uiLocales : undefined, ctx.get('accept-language'));
  };

  /** The words of each problem page: federated.<problem>.heading and .message in views/locales. */
  const renderProblem = async (ctx: Ctx, target: string | undefined, problem: { status: number; page: string; tppError: string }) => {
    ctx.status = problem.status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    const where =
      target === undefined
        ? {}
        : target === DASHBOARD_TARGET
          ? { retryLink: DASHBOARD_LOGIN }
          : { uid: target, retryLink: `/interaction/${target}`, csrf: csrf.token(ctx, `interaction:${target}`) };
    ctx.body = views.render(
      'federated-sign-in',
      {
        heading: { key: `federated.${problem.page}.heading` },
        message: { key: `federated.${problem.page}.message` },
        tppError: problem.tppError,
        reference: ctx.response.get('x-fapi-interaction-id'),
        ...where,
      },
      await localeFor(ctx, target),
    );
  };

  const unavailable = (ctx: Ctx, target: string | undefined, failure: FederationFailure) =>
    renderProblem(ctx, target, {
      status: PAGE_REFUSAL_STATUS[failure.kind === 'unknown_state' ? 'out_of_step' : 'unavailable'],
      page: failure.kind === 'unknown_state' ? 'usedLink' : 'unavailable',
      tppError: failure.tppError,
    });

  /**
   * RTS Art. 4: an upstream login the bank does not count as SCA is never accepted as one. In an
   * authorization it is stepped up by Moat's own factor (customers.oidc.sca.belowSca: step_up, the
   * default; routes.ts decides whether the customer has one); otherwise it is refused here.
   */
  const refuseUnlessSca = async (ctx: Ctx, target: string, identity: FederatedIdentity, stepUp = false): Promise<boolean> => {
    if (countsAsSca(deps.idpConfig.sca, identity) || stepUp) return false;
    logger.info(
      { event: 'federation.not_sca', outcome: 'access_denied', accountId: identity.customerId, detail: { acr: identity.acr, amr: identity.amr } },
      'upstream login is not strong customer authentication',
    );
    await renderProblem(ctx, target, { status: PAGE_REFUSAL_STATUS.authentication_refused, page: 'notSca', tppError: 'access_denied' });
    return true;
  };

  const recordSignIn = async (identity: FederatedIdentity, purpose: string) => {
    await deps.customers.record({ id: identity.customerId, name: identity.name }, idp.issuer);
    logger.info(
      { event: 'login.succeeded', accountId: identity.customerId, source: 'oidc', issuer: idp.issuer, detail: purpose },
      'customer signed in at the bank IdP',
    );
  };

  const finish = async (ctx: Ctx, result: Parameters<Provider['interactionFinished']>[2]) => {
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.respond = false;
  };

  /**
   * The upstream login is the first step of the interaction's authentication: kept in the
   * interaction, and the interaction's page (routes.ts) goes on from there — finished at once when it
   * is SCA and nothing is to be linked, or Moat's own factor for a payment's dynamic linking (RTS
   * Art. 5) or to step a login below SCA up.
   */
  const signedIn = async (ctx: Ctx, uid: string, identity: FederatedIdentity) => {
    if (await refuseUnlessSca(ctx, uid, identity, deps.idpConfig.sca.belowSca === 'step_up')) return;
    await recordSignIn(identity, 'authorization');
    const now = Math.floor(Date.now() / 1000);
    await savePendingAuthentication(provider, uid, {
      customerId: identity.customerId,
      passwordAt: now,
      upstream: { factor: upstreamFactor(deps.idpConfig.sca, identity), sca: countsAsSca(deps.idpConfig.sca, identity), authTime: identity.authTime ?? now },
    });
    ctx.status = 303;
    ctx.redirect(`/interaction/${uid}`);
  };

  /** Off to the IdP for `target` (an interaction's uid, or the dashboard). */
  const startSignIn = async (ctx: Ctx, target: string) => {
    try {
      const { authorizationUrl, pending } = await idp.begin();
      await states.savePending({ ...pending, uid: target }, deps.ttlSeconds);
      // Lax: the IdP sends the browser back with a top-level GET from its own site.
      ctx.cookies.set(FEDERATION_COOKIE, `${target}.${pending.state}`, {
        httpOnly: true,
        secure: true,
        sameSite: 'lax',
        path: FEDERATION_CALLBACK_PATH,
        signed: true,
        overwrite: true,
      });
      ctx.set('Cache-Control', 'no-store');
      ctx.redirect(authorizationUrl.toString());
    } catch (err) {
      if (!(err instanceof FederationFailure)) throw err;
      failed(err);
      await unavailable(ctx, target, err);
    }
  };

  /** The dashboard's sign-in, finished at the callback itself: there is no interaction to resume. */
  const finishDashboardSignIn = async (ctx: Ctx, outcome: FederatedOutcome) => {
    if (!outcome.ok) {
      await unavailable(ctx, DASHBOARD_TARGET, new FederationFailure(outcome.kind, 'the sign-in at the bank IdP failed'));
      return;
    }
    const { identity } = outcome;
    if (
      !countsAsSca(deps.idpConfig.sca, identity) &&
      deps.idpConfig.sca.belowSca === 'step_up' &&
      (await deps.startDashboardStepUp(ctx, identity.customerId, upstreamFactor(deps.idpConfig.sca, identity)))
    ) {
      // RTS Art. 4: one factor at the bank, the second Moat's own code; nobody is signed in until it is given.
      await recordSignIn(identity, 'dashboard (code to follow)');
      ctx.type = 'html';
      ctx.body = views.render(
        'federated-sign-in',
        { heading: { key: 'federated.oneMoreStep.heading' }, message: { key: 'federated.oneMoreStep.message' }, continueLink: DASHBOARD_CODE },
        await localeFor(ctx, DASHBOARD_TARGET),
      );
      return;
    }
    if (await refuseUnlessSca(ctx, DASHBOARD_TARGET, identity)) return;
    await recordSignIn(outcome.identity, 'dashboard');
    await deps.startDashboardSession(ctx, outcome.identity.customerId);
    ctx.type = 'html';
    ctx.body = views.render(
      'federated-sign-in',
      { heading: { key: 'federated.signedIn.heading' }, message: { key: 'federated.signedIn.message' }, continueLink: DASHBOARD_HOME },
      await localeFor(ctx, DASHBOARD_TARGET),
    );
  };

  router.get(FEDERATION_CALLBACK_PATH, async (ctx) => {
    const bound = /^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{1,128})$/.exec(ctx.cookies.get(FEDERATION_COOKIE, { signed: true }) ?? '');
    const uid = bound?.[1];
    const state = ctx.query.state;
    ctx.cookies.set(FEDERATION_COOKIE, null, { path: FEDERATION_CALLBACK_PATH, signed: true, overwrite: true });
    // RFC 6749 §10.12: the state must be this browser's, and pending: unknown or used, it is refused.
    const pending = typeof state === 'string' && state === bound?.[2] ? await states.takePending(state) : undefined;
    if (uid === undefined || pending === undefined || pending.uid !== uid) {
      const failure = new FederationFailure(
        'unknown_state',
        bound === null ? "a callback without this browser's sign-in cookie" : "a callback whose state is unknown, used or not this browser's",
      );
      failed(failure);
      await unavailable(ctx, uid, failure);
      return;
    }
    let outcome: FederatedOutcome;
    try {
      outcome = { ok: true, identity: await idp.complete(new URLSearchParams(ctx.querystring), pending) };
    } catch (err) {
      if (!(err instanceof FederationFailure)) throw err;
      failed(err);
      outcome = { ok: false, kind: err.kind };
    }
    ctx.set('Cache-Control', 'no-store');
    if (uid === DASHBOARD_TARGET) {
      await finishDashboardSignIn(ctx, outcome);
      return;
    }
    await states.saveOutcome(uid, outcome, deps.ttlSeconds);
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(`/interaction/${uid}/federated`);
  });

  router.get('/interaction/:uid/federated', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const outcome = details.prompt.name === 'login' ? await states.takeOutcome(details.uid) : undefined;
    if (outcome === undefined) {
      // Nothing to resume (reloaded, or reached directly): the interaction starts its prompt again.
      ctx.redirect(`/interaction/${details.uid}`);
      return;
    }
    if (outcome.ok) {
      await signedIn(ctx, details.uid, outcome.identity);
      return;
    }
    const failure = new FederationFailure(outcome.kind, 'the sign-in at the bank IdP failed');
    // OIDC Core §3.1.2.6: the customer declined at their bank; the TPP hears it as access_denied.
    if (failure.kind === 'customer_refused') {
      await finish(ctx, { error: 'access_denied', error_description: 'the customer did not sign in at the bank' });
      return;
    }
    await unavailable(ctx, details.uid, failure);
  });

  router.post('/interaction/:uid/federated/abandon', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const form = await readForm(ctx.req);
    csrf.verify(ctx, `interaction:${details.uid}`, form.get(CSRF_FIELD) ?? undefined);
    // RFC 6749 §4.1.2.1: unavailable when the bank's sign-in failed, denied when the customer (or SCA) refused.
    const error = form.get('error') === 'temporarily_unavailable' ? 'temporarily_unavailable' : 'access_denied';
    logger.info({ event: 'federation.abandoned', outcome: error, clientId: details.params.client_id }, 'customer returned to the TPP without signing in');
    await finish(ctx, {
      error,
      error_description:
        error === 'temporarily_unavailable'
          ? "the bank's sign-in service is unavailable; try again later"
          : 'the customer did not complete a strong sign-in at the bank',
    });
  });

  return {
    begin: (ctx, uid) => startSignIn(ctx, uid),
    beginDashboard: (ctx) => startSignIn(ctx, DASHBOARD_TARGET),
    router,
  };
}
