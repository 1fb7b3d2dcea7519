import Router from '@koa/router';
import { htmlErrorPages, INTERACTION_EXPIRED, tppLinkOf } from './render-error.ts';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import { textIn } from '../config/localised-text.ts';
import type { MoatConfig } from '../config/schema.ts';
import { AuthorizationDetailsInvalid, parseRequestedDetail, type GrantDecision, type RequestedDetail } from '../consents/authorization-details.ts';
import { approveConsent, consentIdAtDecision, denyConsent, type GrantWriter } from '../consents/consent-decision.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { accountChoice, asksAccountsByScope, scopeAccessRequest, ChoiceInvalid, grantedDetail, offeredAccounts } from '../consents/customer-choice.ts';
import { describeAccount, describeDetail, formatDate } from '../consents/presentation.ts';
import { regulatorOf } from '../certificates/regulator-names.ts';
import { intentIdFromClaims } from '../consents/provider-hooks.ts';
import { intentProblem } from '../consents/intent-problem.ts';
import { purposeOf } from '../consents/request-purpose.ts';
import { AccountsUnavailable, type AccountDirectory } from '../customers/account-directory.ts';
import type { CustomerDirectory } from '../customers/customer-directory.ts';
import { lockedMessage, type LoginThrottle } from '../customers/login-throttle.ts';
import { SANDBOX_CUSTOMERS } from '../customers/sandbox-customers.ts';
import { CSRF_FIELD, type Csrf } from '../http/csrf.ts';
import { allowScript } from '../http/security-headers.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import { codeRefusalStatus, PAGE_REFUSAL_STATUS, SIGN_IN_REFUSAL_STATUS } from '../kernel/error-responses.ts';
import { SignInRefused } from '../kernel/sign-in-refused.ts';
import { readForm } from '../http/read-body.ts';
import type { Logger } from '../observability/logger.ts';
import { getAttribute, parseDistinguishedName } from '../pki/distinguished-name.ts';
import {
  ACR_SCA,
  authenticationFromLogin,
  authenticationFromSubmission,
  completedAuthentication,
  consentAuthentication,
  isStrong,
  loginResult,
  passwordFactor,
  totpFactor,
} from '../sca/authentication.ts';
import { AuthenticationRequirementsUnmet, shortfall } from '../sca/authentication-policy.ts';
import { paymentLinkHash } from '../sca/dynamic-linking.ts';
import type { TotpFactor } from '../sca/totp-factor.ts';
import { linkedConsentId, pendingAuthenticationOf, requirementFor, savePendingAuthentication, type PendingAuthentication } from './customer-authentication.ts';
import type { FederatedLogin } from './federated-login.ts';
import { passkeyOffer, passkeySignIn } from './passkey-sign-in.ts';
import { PasskeyRefused, type PasskeyCeremonies } from '../passkeys/passkey-ceremonies.ts';
import type { PasskeyStore } from '../passkeys/passkey-store.ts';
import { mergeIntoGrant } from '../provider/internals.ts';
import type { Views } from './views.ts';
import { intlLocale, type Translate } from './messages.ts';
import { codeRefusalText, passkeyRefusalText, signInRefusalText, type SignInRefusal } from './refusal-text.ts';

/*
 * The bank customer's side of an authorization: login and consent. The form fields are a documented,
 * stable contract that TPPs automate in their sandbox CI: every form carries the hidden `csrf` field
 * of the page it came from; the login form posts `username` and `password`; the consent form posts
 * `decision=approve|deny`, the chosen `accounts` (repeated; at least one for account access,
 * exactly one for a payment) and, to narrow what is shared, `permission_choice=explicit` with the
 * kept `permission_groups` (repeated). Account access asked with the accounts scope alone is no
 * different: the page offers the customer's accounts, all ticked, and shares only the `accounts`
 * the form sends; a form without any (a script that posts only `csrf` and `decision`) shares
 * nothing and gets the page back asking for a choice.
 */

export interface InteractionDeps {
  provider: Provider;
  customers: CustomerDirectory;
  accounts: AccountDirectory;
  consents: ConsentService;
  views: Views;
  config: MoatConfig;
  logger: Logger;
  csrf: Csrf;
  throttle: LoginThrottle;
  /** Strong customer authentication: the second factor, and what decides when SCA is needed. */
  sca: InteractionSca;
  /** Passkeys: SCA in one gesture, offered on the login page (passkey-sign-in.ts). */
  passkeys: { ceremonies: PasskeyCeremonies; store: PasskeyStore };
  /** Sign-in at the bank's OpenID Provider instead of the password form (customers.source: oidc). */
  federated?: FederatedLogin;
}

export interface InteractionSca {
  /** The one-time-code factor; undefined when sca.totp is off (customers then sign in with a password alone). */
  totp?: TotpFactor;
  /** Whether threat detection has stepped a client up (then a fresh SCA is needed). */
  steppedUp(clientId: string): boolean;
  now(): Date;
}

type Ctx = ParameterizedContext;
/** A message said in the page's language, once the page knows it. */
type Say = (t: Translate) => string;
type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

/** What the TPP asked for in this authorization, read from the pushed request. */
interface PendingRequest {
  clientId: string;
  scope: string;
  intentId?: string;
  detail?: RequestedDetail;
}

/** A problem with the request itself: it goes back to the TPP, not to the customer's screen. */
class RequestNotAuthorisable extends Error {
  readonly error: 'invalid_request' | 'invalid_authorization_details';
  constructor(message: string, error: RequestNotAuthorisable['error'] = 'invalid_request') {
    super(message);
    this.error = error;
  }
}

export function createInteractionRouter(deps: InteractionDeps): Router {
  const { provider, views, customers, accounts, consents, config, logger, csrf, throttle, sca, passkeys } = deps;
  const router = new Router();
  const sandbox = config.mode === 'sandbox';
  /** The interaction a page's path names, if it is still known. */
  const interactionOf = async (ctx: Ctx) => {
    const uid = /^\/interaction\/([^/]+)/.exec(ctx.path)?.[1];
    return uid === undefined ? undefined : await provider.Interaction.find(uid);
  };

  // A customer's browser gets a page, not JSON: an expired or unknown interaction, a form posted
  // without its cookies, a body that is not a form.
  // The customer reads plain words and a way back to the TPP; the technical text is logged.
  router.use(
    htmlErrorPages(views, {
      fallbackDescription: INTERACTION_EXPIRED,
      interactionMinutes: Math.round(config.tokens.interactionTtl / 60),
      tpp: async (ctx) => {
        const clientId = (await interactionOf(ctx))?.params.client_id;
        return typeof clientId === 'string' ? tppLinkOf(await provider.Client.find(clientId)) : undefined;
      },
      uiLocales: async (ctx) => {
        const uiLocales = (await interactionOf(ctx))?.params.ui_locales;
        return typeof uiLocales === 'string' ? uiLocales : undefined;
      },
      onError: (shown) =>
        logger.info({ event: 'interaction.error', outcome: shown.error, status: shown.status, description: shown.description }, 'interaction error'),
    }),
  );

  // The account directory (the bank's account service) failing is no error of the customer's or the
  // TPP's: the customer is told their accounts cannot be shown now, and the interaction stays open
  // to try again or cancel (which tells the TPP access_denied).
  router.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const uid = /^\/interaction\/([^/]+)/.exec(ctx.path)?.[1];
      if (!(err instanceof AccountsUnavailable) || uid === undefined) throw err;
      logger.warn(
        { event: 'consent.accounts_unavailable', outcome: 'accounts_unavailable', reason: err.reason },
        'consent page without accounts: the account directory is unavailable',
      );
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      ctx.status = PAGE_REFUSAL_STATUS.unavailable;
      ctx.set('Retry-After', '5');
      ctx.type = 'html';
      ctx.body = views.render(
        'accounts-unavailable',
        {
          uid: details.uid,
          csrf: csrf.token(ctx, `interaction:${details.uid}`),
          clientName: (await clientView(String(details.params.client_id))).clientName,
          interactionId: ctx.response.get('x-fapi-interaction-id'),
        },
        pageLocale(ctx, details),
      );
    }
  });

  const clientView = async (clientId: string) => {
    const client = await provider.Client.find(clientId);
    const metadata = (client?.metadata() ?? {}) as Record<string, unknown>;
    let organizationIdentifier: string | undefined;
    if (typeof metadata.tls_client_auth_subject_dn === 'string') {
      try {
        // eIDAS QWACs carry the PSD2 authorisation number in organizationIdentifier (ETSI TS 119 495 §5.2.1).
        organizationIdentifier = getAttribute(parseDistinguishedName(metadata.tls_client_auth_subject_dn), '2.5.4.97');
      } catch {
        organizationIdentifier = undefined;
      }
    }
    const logoUri = typeof metadata.logo_uri === 'string' && metadata.logo_uri.startsWith('https://') ? metadata.logo_uri : undefined;
    return {
      clientName: client?.clientName ?? clientId,
      orgName: typeof metadata.org_name === 'string' ? metadata.org_name : undefined,
      // The regulator by name and the authorisation number; never the directory's internal org id.
      regulator: regulatorOf(organizationIdentifier),
      clientUri: client?.clientUri,
      logoUri,
    };
  };

  /**
   * WCAG 2.2.1: the interaction's time limit on the page (also without JavaScript), and a script that
   * warns two minutes before it runs out. oidc-provider cannot extend an interaction, so it warns.
   */
  const timeLimitOf = (ctx: Ctx, details: InteractionDetails) => {
    const secondsLeft = Math.max(0, details.exp - epochSeconds(sca.now()));
    return {
      secondsLeft,
      minutes: Math.max(1, Math.round(secondsLeft / 60)),
      script: { src: views.sessionTimerScript.path, integrity: views.sessionTimerScript.integrity, nonce: allowScript(ctx) },
    };
  };

  /** The page's language: the authorization's ui_locales, else the browser's Accept-Language. */
  const pageLocale = (ctx: Ctx, details: InteractionDetails) =>
    views.catalogues.negotiate(typeof details.params.ui_locales === 'string' ? details.params.ui_locales : undefined, ctx.get('accept-language'));

  /**
   * The sign-in page; `step: 'done'` when the sign-in step is already over (no passkey offer, no
   * time limit: the page only says so).
   */
  const renderLogin = async (ctx: Ctx, details: InteractionDetails, extra: { error?: Say; username?: string } = {}, step: 'open' | 'done' = 'open') => {
    const locale = pageLocale(ctx, details);
    const t = views.catalogues.translator(locale);
    const passkey = step === 'done' ? undefined : await passkeyOfferFor(ctx, details, locale);
    ctx.type = 'html';
    ctx.body = views.render(
      'login',
      {
        uid: details.uid,
        // A payment is announced as one from the first page (issue 18 defect 2), not as access to the account.
        paymentRequest: await asksPayment(details),
        ...(await clientView(String(details.params.client_id))),
        ...(extra.username === undefined ? {} : { username: extra.username }),
        ...(extra.error === undefined ? {} : { error: extra.error(t) }),
        ...(step === 'done' ? {} : { timeLimit: timeLimitOf(ctx, details) }),
        ...(passkey === undefined ? {} : { passkey, payment: passkey.payment }),
        csrf: csrf.token(ctx, `interaction:${details.uid}`),
        demoCustomers: sandbox ? SANDBOX_CUSTOMERS : [],
      },
      locale,
    );
  };

  const pendingRequest = async (details: InteractionDetails): Promise<PendingRequest> => {
    const clientId = String(details.params.client_id);
    const scope = String(details.params.scope ?? '');
    if (typeof details.params.authorization_details === 'string') {
      // oidc-provider validated it at PAR against the same schema; parse for its typed shape. It can
      // have stopped being valid since (an expirationDateTime that passed while the customer signed in).
      const [first] = JSON.parse(details.params.authorization_details) as unknown[];
      try {
        return { clientId, scope, detail: parseRequestedDetail(first, 'authorization_details[0]') };
      } catch (err) {
        if (!(err instanceof AuthorizationDetailsInvalid)) throw err;
        throw new RequestNotAuthorisable(`${err.message} (no longer valid since the pushed authorization request)`, 'invalid_authorization_details');
      }
    }
    const intentId = intentIdFromClaims(details.params.claims);
    if (intentId === undefined) return { clientId, scope };
    // Checked again here: the consent may have been revoked or authorised since the PAR.
    const problem = await intentProblem(consents, intentId, clientId);
    if (problem !== undefined) throw new RequestNotAuthorisable(problem);
    const consent = await consents.getForClient(intentId, clientId);
    return { clientId, scope, intentId, ...(consent.requested === undefined ? {} : { detail: consent.requested }) };
  };

  /**
   * The consent page. Re-rendered after a choice it refuses, it keeps exactly what the customer
   * chose — accounts, the account to pay from, the kinds of information kept back — never the defaults.
   */
  const renderConsent = async (
    ctx: Ctx,
    details: InteractionDetails,
    request: PendingRequest,
    extra: { error?: ChoiceInvalid['code']; chosen?: string[]; keptGroups?: string[] | undefined } = {},
  ) => {
    const locale = pageLocale(ctx, details);
    const intl = intlLocale(locale);
    const t = views.catalogues.translator(locale);
    const customerId = details.session!.accountId;
    const customer = await customers.findById(customerId);
    const { offered, leftOut } = await accountChoice(accounts, customerId, request, { interactionId: details.uid });
    const byScope = asksAccountsByScope(request);
    // Asked by scope alone, the page asks the same questions as for authorization_details (issue 18 point 5).
    const asked = request.detail ?? (byScope ? scopeAccessRequest(sca.now(), config.consents.scopeAccessDays) : undefined);
    const view = asked === undefined ? undefined : describeDetail(asked, intl, views.timeZone);
    const payment =
      view?.payment === undefined
        ? undefined
        : {
            ...view.payment,
            // A single domestic payment is made straight away (Faster Payments): today, in the bank's time.
            date: formatDate(sca.now(), intl, views.timeZone),
            charges: textIn(config.branding.paymentCharges, locale) ?? t('payment.chargesNone'),
          };
    const paymentCurrency = request.detail?.type === 'payment_initiation' ? request.detail.instructedAmount.currency : undefined;
    ctx.type = 'html';
    ctx.body = views.render(
      'consent',
      {
        uid: details.uid,
        timeLimit: timeLimitOf(ctx, details),
        csrf: csrf.token(ctx, `interaction:${details.uid}`),
        ...(await clientView(request.clientId)),
        customerName: customer?.name ?? customerId,
        purpose: purposeOf(details.params),
        scopes: describeScopes(request.scope, config, locale, t, { openidOnly: asked !== undefined }),
        detail:
          view === undefined
            ? undefined
            : {
                ...view,
                ...(payment === undefined ? {} : { payment }),
                groups: view.groups?.map((g) => ({ ...g, checked: extra.keptGroups?.includes(g.key) ?? true })),
              },
        // Asked by scope, nothing narrows the accounts: all ticked, the customer unticks what to keep back.
        accounts: offered.map((a) => ({ ...describeAccount(a), checked: extra.chosen?.includes(a.id) ?? (byScope || offered.length === 1) })),
        leftOut: leftOut.map(({ account, reason }) => ({
          ...describeAccount(account),
          why:
            reason === 'currency'
              ? t('payment.leftOut.currency', { accountCurrency: account.currency, paymentCurrency: paymentCurrency ?? '' })
              : t('payment.leftOut.cannotPay'),
        })),
        error: extra.error === undefined ? undefined : t(`choice.${extra.error}`),
      },
      locale,
    );
  };

  /**
   * The second step's page: the one-time-code form and, after a sign-in at the bank's IdP, the
   * passkey form when the customer has one. For a payment, the amount and payee beside the code
   * field, and the passkey challenge linked to them (RTS Art. 5(1)(a)).
   */
  const renderSecondStep = async (
    ctx: Ctx,
    details: InteractionDetails,
    request: PendingRequest,
    pending: PendingAuthentication,
    extra: { error?: Say } = {},
  ) => {
    const locale = pageLocale(ctx, details);
    const t = views.catalogues.translator(locale);
    const requirement = requirementOf(details, request, pending);
    const payment = request.detail?.type === 'payment_initiation' ? describeDetail(request.detail, intlLocale(locale)).payment : undefined;
    const customer = await customers.findById(pending.customerId);
    const steps = pending.upstream === undefined ? { totp: true, passkey: false } : await moatStepsFor(pending);
    const passkey = steps.passkey ? await passkeyOffer(ctx, passkeys.ceremonies, views, details.uid, requirement?.link, pending.customerId) : undefined;
    ctx.type = 'html';
    ctx.body = views.render(
      'totp',
      {
        uid: details.uid,
        ...(await clientView(request.clientId)),
        csrf: csrf.token(ctx, `interaction:${details.uid}`),
        customerName: customer?.name ?? pending.customerId,
        payment,
        paymentLink: requirement?.link === undefined ? undefined : paymentLinkHash(requirement.link),
        codeForm: steps.totp,
        passkey,
        upstreamNote:
          pending.upstream === undefined || payment !== undefined ? undefined : t(pending.upstream.sca ? 'totp.upstream.confirm' : 'totp.upstream.oneFactor'),
        demoCustomers: sandbox && pending.upstream === undefined ? SANDBOX_CUSTOMERS : [],
        ...(extra.error === undefined ? {} : { error: extra.error(t) }),
      },
      locale,
    );
  };

  /** The first step's factor: the password, or the login at the bank's IdP. */
  const firstFactorOf = (pending: PendingAuthentication) => pending.upstream?.factor ?? passwordFactor();

  /**
   * Which of Moat's factors can follow the first step: a one-time code when it makes the whole
   * strong (RTS Art. 4: an element of another category), a passkey always (strong on its own).
   */
  const moatStepsFor = async (pending: PendingAuthentication): Promise<{ totp: boolean; passkey: boolean }> => ({
    totp: sca.totp !== undefined && (await sca.totp.status(pending.customerId)) === 'active' && isStrong([firstFactorOf(pending), totpFactor()]),
    passkey: (await passkeys.store.listForCustomer(pending.customerId)).length > 0,
  });

  /**
   * After a sign-in at the bank's IdP (customers.source: oidc). Finished at once when the upstream
   * login is SCA and nothing needs linking; otherwise Moat's own factor: for a payment the upstream
   * login never saw the amount and payee (RTS Art. 5), and a login below SCA is stepped up (Art. 4).
   * A customer with no factor that can do it gets a page that says what to do, and a way back to
   * the TPP with access_denied.
   */
  const continueAfterUpstream = async (
    ctx: Ctx,
    details: InteractionDetails,
    request: PendingRequest,
    pending: PendingAuthentication & { upstream: NonNullable<PendingAuthentication['upstream']> },
  ) => {
    const consentId = pending.consentId ?? linkedConsentId(request);
    if (consentId !== undefined && pending.consentId === undefined) {
      // Chosen once, as at the password step: the code and the passkey challenge link to this id.
      pending = { ...pending, consentId };
      await savePendingAuthentication(provider, details.uid, pending);
    }
    const requirement = requirementOf(details, request, pending);
    if (requirement === undefined) {
      await finishUnmet(ctx, 'none of the requested acr values can be met by this server');
      return;
    }
    // A fresh SCA (threat step-up) is one made in this interaction: the bank may have answered from
    // an earlier session of its own (single sign-on), which its auth_time shows.
    const stale = requirement.fresh && pending.upstream.authTime < details.iat;
    if (pending.upstream.sca && requirement.link === undefined && !stale) {
      const auth = completedAuthentication({
        customerId: pending.customerId,
        factors: [pending.upstream.factor],
        authTime: new Date(pending.upstream.authTime * 1000),
      });
      await provider.interactionFinished(ctx.req, ctx.res, loginResult(auth), { mergeWithLastSubmission: false });
      ctx.respond = false;
      return;
    }
    const steps = await moatStepsFor(pending);
    const why = !pending.upstream.sca ? 'below_sca' : requirement.link !== undefined ? 'payment_link' : 'not_fresh';
    if (steps.totp || steps.passkey) {
      logger.info(
        { event: 'federation.moat_step', outcome: why, clientId: request.clientId, accountId: pending.customerId, detail: steps },
        "Moat's own factor after the bank's sign-in",
      );
      await renderSecondStep(ctx, details, request, pending);
      return;
    }
    logger.info(
      { event: 'federation.no_moat_factor', outcome: 'access_denied', clientId: request.clientId, accountId: pending.customerId, detail: why },
      "no Moat factor can complete the bank's sign-in",
    );
    // The next visit starts at the bank again (a stronger sign-in there may do).
    await savePendingAuthentication(provider, details.uid, undefined);
    ctx.status = PAGE_REFUSAL_STATUS.authentication_refused;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    const { clientName } = await clientView(request.clientId);
    // federated.<why>.heading / .message in views/locales.
    ctx.body = views.render(
      'federated-sign-in',
      {
        uid: details.uid,
        csrf: csrf.token(ctx, `interaction:${details.uid}`),
        tppError: 'access_denied',
        reference: ctx.response.get('x-fapi-interaction-id'),
        setupLink: '/account/security',
        heading: { key: `federated.${why}.heading` },
        message: { key: `federated.${why}.message`, params: { client: clientName } },
        ...(why === 'below_sca' ? { retryLink: `/interaction/${details.uid}` } : {}),
      },
      pageLocale(ctx, details),
    );
  };

  /** Whether the request is for a payment; false when it cannot go on (its error comes later). */
  const asksPayment = async (details: InteractionDetails): Promise<boolean> => {
    try {
      return (await pendingRequest(details)).detail?.type === 'payment_initiation';
    } catch (err) {
      if (err instanceof RequestNotAuthorisable) return false;
      throw err;
    }
  };

  /**
   * The login page's passkey form: options whose challenge, for a payment, is linked to its values
   * (the consent id chosen here travels with the challenge). None when the request cannot go on.
   */
  const passkeyOfferFor = async (ctx: Ctx, details: InteractionDetails, locale: string) => {
    let request: PendingRequest;
    try {
      request = await pendingRequest(details);
    } catch (err) {
      if (err instanceof RequestNotAuthorisable) return undefined;
      throw err;
    }
    const link = requirementWithConsent(details, request, linkedConsentId(request))?.link;
    return {
      ...(await passkeyOffer(ctx, passkeys.ceremonies, views, details.uid, link)),
      ...(request.detail?.type === 'payment_initiation' ? { payment: describeDetail(request.detail, intlLocale(locale)).payment } : {}),
    };
  };

  const requirementWithConsent = (details: InteractionDetails, request: PendingRequest, consentId: string | undefined) => {
    try {
      return requirementFor({ ...request, ...(consentId === undefined ? {} : { consentId }) }, details.params, sca.steppedUp(request.clientId));
    } catch (err) {
      if (err instanceof AuthenticationRequirementsUnmet) return undefined;
      throw err;
    }
  };

  /** What this authorization needs; undefined when an essential acr cannot be met. */
  const requirementOf = (details: InteractionDetails, request: PendingRequest, pending: PendingAuthentication) => {
    try {
      return requirementFor(
        { ...request, ...(pending.consentId === undefined ? {} : { consentId: pending.consentId }) },
        details.params,
        sca.steppedUp(request.clientId),
      );
    } catch (err) {
      if (err instanceof AuthenticationRequirementsUnmet) return undefined;
      throw err;
    }
  };

  /** OpenID Connect Core Unmet Authentication Requirements 1.0: the TPP learns SCA could not be done. */
  const finishUnmet = (ctx: Ctx, description: string) => finishWithError(ctx, 'unmet_authentication_requirements', description);

  const finishWithError = async (ctx: Ctx, error: string, description: string) => {
    await provider.interactionFinished(ctx.req, ctx.res, { error, error_description: description }, { mergeWithLastSubmission: false });
    ctx.respond = false;
  };

  /** The pending request, or undefined after sending the TPP an error it can act on. */
  const pendingRequestOrFinish = async (ctx: Ctx, details: InteractionDetails): Promise<PendingRequest | undefined> => {
    try {
      return await pendingRequest(details);
    } catch (err) {
      if (!(err instanceof RequestNotAuthorisable)) throw err;
      await finishWithError(ctx, err.error, err.message);
      return undefined;
    }
  };

  router.get('/interaction/:uid', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name === 'login') {
      const pending = pendingAuthenticationOf(details);
      if (pending !== undefined) {
        const request = await pendingRequestOrFinish(ctx, details);
        if (request === undefined) return;
        if (pending.upstream !== undefined) await continueAfterUpstream(ctx, details, request, { ...pending, upstream: pending.upstream });
        else await renderSecondStep(ctx, details, request, pending);
      } else if (deps.federated !== undefined) await deps.federated.begin(ctx, details.uid);
      else await renderLogin(ctx, details);
      return;
    }
    const request = await pendingRequestOrFinish(ctx, details);
    if (request !== undefined) await renderConsent(ctx, details, request);
  });

  router.post('/interaction/:uid/login', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const form = await readForm(ctx.req);
    csrf.verify(ctx, `interaction:${details.uid}`, form.get(CSRF_FIELD) ?? undefined);
    const clientId = String(details.params.client_id);
    const username = form.get('username') ?? '';
    const password = form.get('password') ?? '';
    // The bank's IdP signs its customers in; Moat holds no passwords for them.
    if (deps.federated !== undefined)
      throw new OAuthError('invalid_request', 'this bank signs customers in at its own sign-in page: return to the application and start again');
    if (details.prompt.name !== 'login') {
      ctx.status = PAGE_REFUSAL_STATUS.out_of_step;
      await renderLogin(ctx, details, { error: (t) => t('signIn.alreadyComplete') }, 'done');
      return;
    }
    const signedIn = await signIn(ctx, { customers, throttle, logger }, username, password);
    if (!signedIn.ok) {
      ctx.status = signedIn.status;
      await renderLogin(ctx, details, { error: (t) => signInRefusalText(t, signedIn.refusal), username });
      return;
    }
    const request = await pendingRequestOrFinish(ctx, details);
    if (request === undefined) return;
    const pending: PendingAuthentication = { customerId: signedIn.customerId, passwordAt: epochSeconds(sca.now()) };
    const consentId = linkedConsentId(request);
    if (consentId !== undefined) pending.consentId = consentId;
    const requirement = requirementOf(details, request, pending);
    if (requirement === undefined) {
      await finishUnmet(ctx, 'none of the requested acr values can be met by this server');
      return;
    }
    if (sca.totp !== undefined && (await sca.totp.status(signedIn.customerId)) === 'active') {
      // RTS Art. 4: the second element, on its own page (post/redirect/get, so a reload does not resend the password).
      await savePendingAuthentication(provider, details.uid, pending);
      ctx.status = 303;
      ctx.redirect(`/interaction/${details.uid}`);
      return;
    }
    if (requirement.acr === ACR_SCA && (await passkeys.store.listForCustomer(signedIn.customerId)).length > 0) {
      // A password and nothing else, from a customer whose second factor is a passkey: the passkey alone is SCA.
      ctx.status = PAGE_REFUSAL_STATUS.authentication_needed;
      await renderLogin(ctx, details, { error: (t) => t('signIn.passkeyNeeded'), username });
      return;
    }
    if (requirement.acr === ACR_SCA) {
      logger.info({ event: 'sca.unavailable', outcome: 'unmet_authentication_requirements', clientId }, 'customer has no second factor');
      await finishUnmet(ctx, `strong customer authentication is required (${requirement.reasons.join(', ')}) and the customer has no second factor set up`);
      return;
    }
    // Nothing but the customer's identity was asked: a password is customer authentication (acr ca), said as such.
    const auth = completedAuthentication({ customerId: signedIn.customerId, factors: [passwordFactor()], authTime: sca.now() });
    await provider.interactionFinished(ctx.req, ctx.res, loginResult(auth), { mergeWithLastSubmission: false });
    ctx.respond = false;
  });

  // Sign-in with a passkey: the assertion from the login page's passkey form, alone SCA.
  router.post('/interaction/:uid/passkey', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const form = await readForm(ctx.req);
    csrf.verify(ctx, `interaction:${details.uid}`, form.get(CSRF_FIELD) ?? undefined);
    const clientId = String(details.params.client_id);
    // With the bank's IdP the passkey is Moat's step after the customer signed in there, for that customer.
    const pending = details.prompt.name === 'login' ? pendingAuthenticationOf(details) : undefined;
    const upstream = pending?.upstream === undefined ? undefined : { customerId: pending.customerId, also: [pending.upstream.factor] };
    if (deps.federated !== undefined && upstream === undefined)
      throw new OAuthError('invalid_request', 'this bank signs customers in at its own sign-in page: return to the application and start again');
    if (details.prompt.name !== 'login') {
      ctx.status = PAGE_REFUSAL_STATUS.out_of_step;
      await renderLogin(ctx, details, { error: (t) => t('signIn.alreadyComplete') }, 'done');
      return;
    }
    const request = await pendingRequestOrFinish(ctx, details);
    if (request === undefined) return;
    let auth;
    try {
      auth = await passkeySignIn(passkeys.ceremonies, details.uid, form.get('response') ?? '', upstream, (consentId) => {
        // A challenge issued without a consent id was linked to nothing: a payment gets a fresh id, which no signed hash matches.
        const requirement = requirementWithConsent(details, request, consentId ?? linkedConsentId(request));
        if (requirement === undefined) throw new AuthenticationRequirementsUnmet('none of the requested acr values can be met by this server');
        return requirement;
      });
    } catch (err) {
      if (err instanceof AuthenticationRequirementsUnmet) {
        await finishUnmet(ctx, err.message);
        return;
      }
      if (!(err instanceof PasskeyRefused)) throw err;
      logger.info({ event: 'passkey.refused', outcome: err.code, kind: 'authentication', clientId }, 'passkey sign-in refused');
      ctx.status = PAGE_REFUSAL_STATUS[err.code === 'payment_changed' ? 'state_changed' : 'input_refused'];
      const code = err.code;
      if (pending?.upstream !== undefined) await renderSecondStep(ctx, details, request, pending, { error: (t) => passkeyRefusalText(t, code) });
      else await renderLogin(ctx, details, { error: (t) => passkeyRefusalText(t, code) });
      return;
    }
    logger.info(
      { event: 'sca.authenticated', outcome: 'sca', clientId, accountId: auth.customerId, amr: auth.amr, linked: auth.link !== undefined },
      'customer authenticated strongly',
    );
    await provider.interactionFinished(ctx.req, ctx.res, loginResult(auth), { mergeWithLastSubmission: false });
    ctx.respond = false;
  });

  router.post('/interaction/:uid/totp', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const form = await readForm(ctx.req);
    csrf.verify(ctx, `interaction:${details.uid}`, form.get(CSRF_FIELD) ?? undefined);
    const clientId = String(details.params.client_id);
    const pending = details.prompt.name === 'login' ? pendingAuthenticationOf(details) : undefined;
    if (pending === undefined || sca.totp === undefined) {
      ctx.status = PAGE_REFUSAL_STATUS.out_of_step;
      await renderLogin(ctx, details, { error: (t) => t(details.prompt.name === 'login' ? 'signIn.passwordFirst' : 'signIn.alreadyComplete') }, 'done');
      return;
    }
    const request = await pendingRequestOrFinish(ctx, details);
    if (request === undefined) return;
    const requirement = requirementOf(details, request, pending);
    if (requirement === undefined) {
      await finishUnmet(ctx, 'none of the requested acr values can be met by this server');
      return;
    }
    // RTS Art. 5(1)(a): the customer authenticates for the amount and payee shown on the page. If
    // they changed since it was shown, the code the customer typed was not for these values.
    const shown = form.get('payment_link') ?? '';
    const link = requirement.link;
    if (link !== undefined && shown !== paymentLinkHash(link)) {
      ctx.status = PAGE_REFUSAL_STATUS.state_changed;
      await renderSecondStep(ctx, details, request, pending, {
        error: (t) => t('code.paymentChanged'),
      });
      return;
    }
    if (pending.upstream !== undefined && !(await moatStepsFor(pending)).totp) {
      // After the bank's sign-in a code is offered only where it makes the sign-in strong (RTS Art. 4).
      ctx.status = PAGE_REFUSAL_STATUS.out_of_step;
      await renderSecondStep(ctx, details, request, pending, {
        error: (t) => t('code.cannotComplete'),
      });
      return;
    }
    const checked = await sca.totp.verify(pending.customerId, form.get('code'), ctx.ip);
    if (!checked.ok) {
      logger.info({ event: 'sca.code_refused', outcome: `totp_${checked.reason}`, clientId }, 'one-time code refused');
      const { status, retryAfterSeconds } = codeRefusalStatus(checked);
      ctx.status = status;
      if (retryAfterSeconds !== undefined) ctx.set('Retry-After', String(retryAfterSeconds));
      await renderSecondStep(ctx, details, request, pending, { error: (t) => codeRefusalText(t, checked) });
      return;
    }
    const auth = completedAuthentication({
      customerId: pending.customerId,
      factors: [firstFactorOf(pending), totpFactor()],
      authTime: sca.now(),
      ...(link === undefined ? {} : { link }),
    });
    logger.info(
      { event: 'sca.authenticated', outcome: 'sca', clientId, accountId: auth.customerId, amr: auth.amr, linked: link !== undefined },
      'customer authenticated strongly',
    );
    await provider.interactionFinished(ctx.req, ctx.res, loginResult(auth), { mergeWithLastSubmission: false });
    ctx.respond = false;
  });

  router.post('/interaction/:uid/consent', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const form = await readForm(ctx.req);
    csrf.verify(ctx, `interaction:${details.uid}`, form.get(CSRF_FIELD) ?? undefined);
    const decision = form.get('decision');
    if (decision !== 'approve' && decision !== 'deny') throw new OAuthError('invalid_request', 'decision must be approve or deny');
    const customerId = details.session?.accountId;
    if (decision === 'deny' && (details.prompt.name !== 'consent' || customerId === undefined)) {
      // Cancelled at the login page: nothing to record, the customer is not known yet.
      await finishWithError(ctx, 'access_denied', 'the customer cancelled the request');
      logger.info({ event: 'consent.cancelled', outcome: 'consent_denied', clientId: details.params.client_id }, 'customer cancelled at sign-in');
      return;
    }
    if (details.prompt.name !== 'consent' || customerId === undefined) throw new OAuthError('invalid_request', 'sign in before approving');

    const request = await pendingRequestOrFinish(ctx, details);
    if (request === undefined) return;

    if (decision === 'deny') {
      await denyConsent(consents, { request, customerId });
      await finishWithError(ctx, 'access_denied', 'the customer denied the request');
      return;
    }

    const chosen = form.getAll('accounts');
    let granted: GrantDecision | undefined;
    try {
      const offered = await offeredAccounts(accounts, customerId, request, { interactionId: details.uid });
      // Asked by scope alone: the accounts chosen, recorded in the shape authorization_details use.
      granted =
        request.detail !== undefined
          ? grantedDetail(request.detail, offered, chosen, keptGroups(form))
          : asksAccountsByScope(request)
            ? grantedDetail(scopeAccessRequest(sca.now(), config.consents.scopeAccessDays), offered, chosen, keptGroups(form))
            : undefined;
    } catch (err) {
      if (!(err instanceof ChoiceInvalid)) throw err;
      ctx.status = PAGE_REFUSAL_STATUS.input_refused;
      await renderConsent(ctx, details, request, { error: err.code, chosen, keptGroups: keptGroups(form) });
      return;
    }

    // RTS Art. 4 and 5: the consent is authorised only with the SCA this authorization needs —
    // performed in this interaction and, for a payment, linked to exactly its values now.
    const auth = authenticationFromSubmission(details.lastSubmission) ?? authenticationFromLogin(details.lastSubmission);
    const consentId = consentIdAtDecision(request, auth?.link?.consentId);
    let requirement;
    try {
      requirement = requirementFor({ ...request, consentId }, details.params, sca.steppedUp(request.clientId));
    } catch (err) {
      if (!(err instanceof AuthenticationRequirementsUnmet)) throw err;
      await finishUnmet(ctx, err.message);
      return;
    }
    const gap = shortfall(auth, requirement, { customerId });
    if (gap !== undefined) {
      logger.warn(
        { event: 'sca.refused', outcome: `sca_${gap}`, clientId: request.clientId, consentId },
        'consent refused: authentication does not meet the requirement',
      );
      if (gap === 'not_linked') {
        await finishWithError(
          ctx,
          'access_denied',
          'the payment differs from what the customer authenticated (PSD2 RTS Art. 5): the authentication is not valid for it; start a new authorization',
        );
      } else {
        await finishUnmet(ctx, `strong customer authentication is required (${requirement.reasons.join(', ')}) and was not performed for this authorization`);
      }
      return;
    }
    const decided = await approveConsent(consents, grantWriter(provider, details), {
      request,
      customerId,
      consentId,
      granted,
      params: details.params,
      ...(auth === undefined ? {} : { authentication: consentAuthentication(auth) }),
    });
    if (!decided.ok) {
      await finishWithError(ctx, 'invalid_request', decided.description);
      return;
    }
    const { grantId } = decided;
    await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    ctx.respond = false;
  });

  return router;
}

/** A refused sign-in: `message` in English (logs, the JSON APIs), `refusal` for a page to say in its language. */
type SignInResult = { ok: true; customerId: string } | { ok: false; status: number; message: string; refusal: SignInRefusal };

/** A refused sign-in as the kernel's error, for a JSON API to throw (its status: SIGN_IN_REFUSAL_STATUS). */
export function signInRefused(refused: Extract<SignInResult, { ok: false }>): SignInRefused {
  const { refusal } = refused;
  return new SignInRefused(refusal.kind, refused.message, refusal.kind === 'locked' ? refusal.retryAfterSeconds : undefined);
}

/** Sign-in with brute-force protection; shared by the interaction and the consent dashboard. */
export async function signIn(
  ctx: Ctx,
  deps: { customers: CustomerDirectory; throttle: LoginThrottle; logger: Logger },
  username: string,
  password: string,
): Promise<SignInResult> {
  const result = await deps.throttle.attempt(username, ctx.ip, () =>
    username === '' || password === '' ? Promise.resolve(undefined) : deps.customers.authenticate(username, password),
  );
  if (result.outcome === 'refused') {
    deps.logger.warn({ event: 'login.locked', outcome: 'login_locked', by: result.locked.by }, 'customer sign-in locked');
    ctx.set('Retry-After', String(result.locked.retryAfterSeconds));
    return { ok: false, status: SIGN_IN_REFUSAL_STATUS.locked, message: lockedMessage(result.locked), refusal: { kind: 'locked', ...result.locked } };
  }
  if (result.outcome === 'failed') {
    deps.logger.info({ event: 'login.failed', outcome: 'login_failed' }, 'customer login failed');
    if (result.locked !== undefined) {
      ctx.set('Retry-After', String(result.locked.retryAfterSeconds));
      return { ok: false, status: SIGN_IN_REFUSAL_STATUS.locked, message: lockedMessage(result.locked), refusal: { kind: 'locked', ...result.locked } };
    }
    return { ok: false, status: SIGN_IN_REFUSAL_STATUS.incorrect, message: 'The username or password is incorrect.', refusal: { kind: 'incorrect' } };
  }
  const customer = result.value;
  deps.logger.info({ event: 'login.succeeded', accountId: customer.id }, 'customer logged in');
  return { ok: true, customerId: customer.id };
}

/** The permission groups kept, when the customer chose explicitly (`permission_choice=explicit`). */
function keptGroups(form: URLSearchParams): string[] | undefined {
  return form.get('permission_choice') === 'explicit' ? form.getAll('permission_groups') : undefined;
}

/**
 * The decision's grant, in oidc-provider: what the prompt found missing, and the granted details —
 * a new grant, or for a Grant Management merge the existing one (its id is then the interaction's
 * result, so the code and its tokens belong to the grant the earlier tokens do).
 */
function grantWriter(provider: Provider, details: InteractionDetails): GrantWriter {
  const owner = { accountId: details.session!.accountId, clientId: String(details.params.client_id) };
  return {
    save: (granted) => {
      const grant = new provider.Grant(owner);
      addAsked(grant, details);
      if (granted !== undefined) grant.addRar(granted as unknown as Parameters<typeof grant.addRar>[0]);
      return grant.save();
    },
    merge: (grantId, granted, asked) =>
      mergeIntoGrant(provider, grantId, owner, {
        add: (grant) => addAsked(grant, details),
        ...(granted === undefined ? {} : { rar: [granted as unknown as NonNullable<Grant['rar']>[number]] }),
        asked,
      }),
    destroy: async (grantId) => {
      await (await provider.Grant.find(grantId))?.destroy();
    },
  };
}

type Grant = InstanceType<Provider['Grant']>;

/** What the consent prompt found missing from the grant: the OpenID scopes and claims, the API's scopes. */
function addAsked(grant: Grant, details: InteractionDetails): void {
  const missing = details.prompt.details as {
    missingOIDCScope?: string[];
    missingOIDCClaims?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  if (missing.missingOIDCScope !== undefined) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims !== undefined) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
}

function epochSeconds(at: Date): number {
  return Math.floor(at.getTime() / 1000);
}

/** The scopes in words: the standard ones from the catalogue, the bank's own as configured. */
function describeScopes(scope: string, config: MoatConfig, locale: string, t: Translate, options: { openidOnly?: boolean } = {}): string[] {
  return scope
    .split(' ')
    .filter(Boolean)
    .flatMap((s) => {
      if (s === 'openid' || s === 'offline_access') return [t(`scope.${s}`)];
      if (options.openidOnly === true) return [];
      const configured = config.scopes[s];
      return configured === undefined ? [] : [textIn(configured.description, locale)];
    });
}
