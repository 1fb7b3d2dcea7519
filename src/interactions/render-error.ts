import type { Configuration } from 'oidc-provider';
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
