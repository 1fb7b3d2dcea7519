import type { Middleware, ParameterizedContext } from 'koa';
import type { Configuration } from 'oidc-provider';
import { errorPageKindOf, htmlErrorResponse, type ErrorPageAnswer, type ErrorPageKind } from '../kernel/error-responses.ts';
import type { Views } from './views.ts';

/*
 * Error pages as a customer reads them (OBIE Customer Experience Guidelines, issue 18 defect 3):
 * plain words for what happened, that nothing was shared or paid, a way back to the app (TPP) they
 * came from, how to reach the bank, and a support reference. The OAuth error code and description
 * go to the log, never to the page — except on the developer portal, whose readers want them.
 *
 * A way back: where the client and its redirect_uri are known and safe, oidc-provider itself sends
 * the RFC 6749 error to the redirect_uri and no page is shown. A page is shown only where that is
 * not safe (an unknown client, an unverified redirect_uri) or not possible (the interaction cookie
 * is gone, so the authorization cannot be resumed to answer it): then a link to the TPP's website
 * (client_uri) when the client is known, and the customer is told to go back to the app otherwise.
 */

/** What went wrong, in the customer's terms: decided by the kernel's error page dialect. */
export type ErrorKind = ErrorPageKind;

/** What an error page shows; a router's own mapping (`also`) may leave the kind to the status. */
export type ShownError = Omit<ErrorPageAnswer, 'kind'> & { kind?: ErrorKind };

/** A way back from an error page: where to, and the catalogue key of its label. */
export interface BackLink {
  link: string;
  labelKey: string;
}

/** The TPP the customer came from, as far as it is known: its name and a safe (https) website. */
export interface TppLink {
  name: string;
  link?: string;
}

/** What an interaction page says when its session expired or is not valid (the log's description). */
export const INTERACTION_EXPIRED = 'The sign-in session has expired or is not valid. Return to the application and start again.';

interface PageOptions {
  back?: BackLink | undefined;
  tpp?: TppLink | undefined;
  interactionMinutes?: number | undefined;
  /** Show the OAuth error code and description (the developer portal only). */
  technical?: boolean | undefined;
}

/**
 * The error page's data: the kind (its words are in views/locales as error.<kind>.title and
 * .message), a way back, the bank's contact (views add it) and the support reference.
 */
export function errorPage(ctx: ParameterizedContext, shown: ShownError & { kind: ErrorKind }, options: PageOptions = {}): Record<string, unknown> {
  return {
    kind: shown.kind,
    ...(shown.messageKey === undefined ? {} : { messageKey: shown.messageKey }),
    ...(options.interactionMinutes === undefined ? {} : { minutes: options.interactionMinutes }),
    ...(options.technical === true ? { technical: { error: shown.error, description: shown.description } } : {}),
    ...(options.back === undefined ? {} : { backLink: options.back.link, backLabelKey: options.back.labelKey }),
    ...(options.tpp === undefined ? {} : { tpp: options.tpp }),
    interactionId: ctx.response.get('x-fapi-interaction-id'),
  };
}

/**
 * The error page for a typed error a route answers itself, where the page has its own way back
 * (not its router's boundary's): its status and words are the kernel's (htmlErrorResponse).
 */
export function renderErrorPage(views: Views, ctx: ParameterizedContext, shown: ErrorPageAnswer, options: PageOptions, locale: string): void {
  ctx.status = shown.status;
  ctx.type = 'html';
  ctx.body = views.render('error', errorPage(ctx, shown, options), locale);
}

/** The language of an error page: the authorization's ui_locales when known, else Accept-Language. */
function errorLocale(views: Views, ctx: ParameterizedContext, uiLocales?: unknown): string {
  return views.catalogues.negotiate(typeof uiLocales === 'string' ? uiLocales : undefined, ctx.get('accept-language'));
}

/** A TPP's name and website (https only) from its client metadata. */
export function tppLinkOf(client: { clientName?: string | undefined; clientId: string; clientUri?: string | undefined } | undefined): TppLink | undefined {
  if (client === undefined) return undefined;
  const link = client.clientUri !== undefined && client.clientUri.startsWith('https://') ? client.clientUri : undefined;
  return { name: client.clientName ?? client.clientId, ...(link === undefined ? {} : { link }) };
}

/**
 * oidc-provider's page for errors that cannot go back to a redirect_uri (an unknown client, a bad
 * request_uri, an authorization that can no longer be resumed): in plain words, with a link to the
 * TPP when the client is known. The OAuth error itself is logged by the provider's event listeners.
 */
export function createRenderError(views: Views, options: { interactionMinutes?: number } = {}): NonNullable<Configuration['renderError']> {
  return (ctx, out, error) => {
    const shown = htmlErrorResponse(error) ?? { status: ctx.status, error: out.error, description: out.error_description, kind: errorPageKindOf(ctx.status) };
    const kind = shown.kind;
    // The page hides the OAuth code; the request's log line and metrics keep it.
    if (shown.error !== undefined) ctx.state.outcome ??= shown.error;
    ctx.type = 'html';
    ctx.body = views.render(
      'error',
      errorPage(ctx, { ...shown, kind }, { tpp: tppLinkOf(ctx.oidc?.client), interactionMinutes: options.interactionMinutes }),
      errorLocale(views, ctx, ctx.oidc?.params?.ui_locales),
    );
  };
}

/**
 * The error boundary of Moat's own browser pages: a typed error becomes the error page the kernel's
 * dialect decides (htmlErrorResponse; never JSON, never a stack trace), with `back` when the page has a way back, `tpp`
 * for the app an interaction came from; `also` maps errors particular to a router. The technical
 * text goes to `onError` (the log). Pages are never stored by a browser or a proxy.
 */
export function htmlErrorPages(
  views: Views,
  options: {
    back?: BackLink;
    also?: (err: unknown) => ShownError | undefined;
    onError?: (shown: ShownError) => void;
    fallbackDescription?: string;
    tpp?: (ctx: ParameterizedContext) => Promise<TppLink | undefined>;
    /** The authorization's ui_locales, when the page belongs to one (OIDC Core §3.1.2.1). */
    uiLocales?: (ctx: ParameterizedContext) => Promise<string | undefined>;
    interactionMinutes?: number;
    technical?: boolean;
  } = {},
): Middleware {
  return async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (err) {
      // A router's own words first (a consent the dashboard cannot find), then the kernel's dialect.
      const particular = options.also?.(err);
      const shown = particular === undefined ? htmlErrorResponse(err) : { ...particular, kind: particular.kind ?? errorPageKindOf(particular.status) };
      if (shown === undefined) throw err;
      const tpp = await options.tpp?.(ctx).catch(() => undefined);
      const uiLocales = await options.uiLocales?.(ctx).catch(() => undefined);
      ctx.status = shown.status;
      if (shown.error !== undefined) ctx.state.outcome ??= shown.error;
      ctx.type = 'html';
      ctx.body = views.render(
        'error',
        errorPage(
          ctx,
          { ...shown, description: shown.description ?? options.fallbackDescription },
          {
            back: options.back,
            tpp,
            interactionMinutes: options.interactionMinutes,
            technical: options.technical,
          },
        ),
        errorLocale(views, ctx, uiLocales),
      );
      options.onError?.(shown);
    }
  };
}
