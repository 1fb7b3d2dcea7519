import type { Middleware } from 'koa';
import type { Configuration } from 'oidc-provider';
import { OAuthError } from '../kernel/oauth-error.ts';
import { StorageUnavailableError } from '../storage/model-store.ts';
import type { Views } from './views.ts';

/**
 * oidc-provider's page for errors that cannot go back to a redirect_uri (an unknown client, a bad
 * request_uri). It shows the OAuth error code and description, escaped, and the interaction id.
 */
export function createRenderError(views: Views): NonNullable<Configuration['renderError']> {
  return (ctx, out) => {
    ctx.type = 'html';
    ctx.body = views.render('error', {
      error: out.error,
      description: out.error_description,
      interactionId: ctx.response.get('x-fapi-interaction-id'),
    });
  };
}

/** What an error page shows. */
export interface ShownError { status: number; error: string | undefined; description: string | undefined }

/** oidc-provider's own errors meant for the client (an unknown or expired interaction), as a page shows them. */
export function providerErrorShown(err: unknown): ShownError | undefined {
  const provided = err as { status?: number; error?: string; error_description?: string; expose?: boolean };
  return provided.expose === true && typeof provided.status === 'number'
    ? { status: provided.status, error: provided.error, description: provided.error_description } : undefined;
}

/** What an interaction page says when its session expired or is not valid. */
export const INTERACTION_EXPIRED = 'The sign-in session has expired or is not valid. Return to the application and start again.';

/**
 * The error boundary of Moat's own browser pages: an OAuthError or a storage outage becomes the
 * error page (never JSON, never a stack trace), with `backLink` when the page has a way back;
 * `also` maps errors particular to a router. Pages are never stored by a browser or a proxy.
 */
export function htmlErrorPages(views: Views, options: {
  back?: { link: string; label: string };
  also?: (err: unknown) => ShownError | undefined;
  onError?: (shown: ShownError) => void;
  fallbackDescription?: string;
} = {}): Middleware {
  return async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (err) {
      const shown = err instanceof OAuthError ? { status: err.status, error: err.code, description: err.description }
        : err instanceof StorageUnavailableError ? { status: 503, error: 'temporarily_unavailable', description: 'The service is briefly unavailable. Try again in a moment.' }
          : options.also?.(err);
      if (shown === undefined) throw err;
      ctx.status = shown.status;
      ctx.type = 'html';
      ctx.body = views.render('error', {
        error: shown.error,
        description: shown.description ?? options.fallbackDescription,
        interactionId: ctx.response.get('x-fapi-interaction-id'),
        ...(options.back === undefined ? {} : { backLink: options.back.link, backLabel: options.back.label }),
      });
      options.onError?.(shown);
    }
  };
}
