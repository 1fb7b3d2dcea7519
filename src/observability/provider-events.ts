import type Provider from 'oidc-provider';
import type { Logger } from './logger.ts';

/*
 * oidc-provider's events become structured log records. Error events carry the OAuth error code as
 * the outcome, so an `invalid_client` from a subject mismatch and a 500 are told apart in the logs.
 */

/**
 * An event Moat itself emits on the provider (provider/token-failure.ts): a token request that failed
 * after spending its authorization code was undone. Listeners get `(ctx, undone)`. oidc-provider
 * told `*.saved` for the tokens withdrawn (nobody received them) and, when the code was given back,
 * `authorization_code.saved` for the code saved again; metrics and the audit log count those as
 * what they were, not as tokens or codes issued.
 */
export const TOKEN_REQUEST_UNDONE = 'moat.token_request.undone';

export interface TokenRequestUndone {
  /** The code the request spent; saved again unconsumed when `codeGivenBack`. */
  code: { clientId?: string; grantId?: string; accountId?: string };
  codeGivenBack: boolean;
  /** The tokens saved for the request and destroyed. */
  withdrawn: { kind?: string; jti?: string; clientId?: string; accountId?: string; grantId?: string; 'x5t#S256'?: string; jkt?: string }[];
}
const ERROR_EVENTS = [
  'authorization.error',
  'backchannel.error',
  'grant.error',
  'introspection.error',
  'jwks.error',
  'pushed_authorization_request.error',
  'registration_create.error',
  'registration_read.error',
  'revocation.error',
  'userinfo.error',
  'discovery.error',
  'check_session_origin.error',
] as const;

const SUCCESS_EVENTS = [
  'authorization.success',
  'grant.success',
  'pushed_authorization_request.success',
  'registration_create.success',
  'grant.revoked',
  'access_token.saved',
  'access_token.destroyed',
  'refresh_token.consumed',
  'authorization_code.consumed',
] as const;

export function attachProviderEventLogging(provider: Provider, logger: Logger): void {
  // Provider is an EventEmitter; its typings list only some event names.
  const emitter: NodeJS.EventEmitter = provider;
  for (const event of ERROR_EVENTS) {
    emitter.on(
      event,
      (ctx: { oidc?: { client?: { clientId: string } } }, err: { error?: string; error_description?: string; status?: number; expose?: boolean }) => {
        const fields = {
          event,
          outcome: err.error ?? 'server_error',
          status: err.status,
          description: err.error_description,
          clientId: ctx?.oidc?.client?.clientId,
        };
        if (err.expose === false || err.status === undefined || err.status >= 500) logger.error({ ...fields, err }, event);
        else logger.info(fields, event);
      },
    );
  }
  emitter.on('server_error', (_ctx: unknown, err: Error) =>
    logger.error({ event: 'server_error', outcome: 'server_error', err }, 'oidc-provider server error'),
  );
  for (const event of SUCCESS_EVENTS) {
    emitter.on(event, (...args: unknown[]) => {
      // Token events pass the token (with clientId), the others the request context.
      const first = args[0] as { clientId?: string; oidc?: { client?: { clientId: string } } } | undefined;
      logger.info({ event, clientId: first?.clientId ?? first?.oidc?.client?.clientId }, event);
    });
  }
}
