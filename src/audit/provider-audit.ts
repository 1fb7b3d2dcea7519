import { createHash } from 'node:crypto';
import type Provider from 'oidc-provider';
import { TOKEN_REQUEST_UNDONE, type TokenRequestUndone } from '../observability/provider-events.ts';
import type { AuditLog } from './audit-log.ts';

/*
 * Tokens issued, withdrawn and revoked, from oidc-provider's events (and Moat's own
 * TOKEN_REQUEST_UNDONE), into the audit log. Only identifiers and kinds are recorded (grant,
 * client, customer, binding) — never a token value. An opaque token's value *is* its jti, so the
 * jti is recorded only as a SHA-256 reference.
 */

interface TokenLike {
  kind?: string;
  jti?: string;
  clientId?: string;
  accountId?: string;
  grantId?: string;
  scope?: string;
  'x5t#S256'?: string;
  jkt?: string;
  extra?: { consent_id?: unknown };
}

export function attachProviderAudit(provider: Provider, audit: AuditLog): void {
  const emitter: NodeJS.EventEmitter = provider;
  const issued = (token: TokenLike) => {
    void audit.record({
      type: 'token.issued',
      actor: 'system',
      ...ids(token),
      detail: {
        kind: token.kind,
        grantId: token.grantId,
        scope: token.scope,
        binding: token['x5t#S256'] !== undefined ? 'mtls' : token.jkt !== undefined ? 'dpop' : 'none',
        ...(typeof token.extra?.consent_id === 'string' ? { consentId: token.extra.consent_id } : {}),
      },
    });
  };
  for (const event of ['access_token.saved', 'access_token.issued', 'client_credentials.saved', 'client_credentials.issued', 'refresh_token.saved']) {
    emitter.on(event, issued);
  }
  // A token request undone after it spent its code: its tokens were never received, its code is redeemable again.
  emitter.on(TOKEN_REQUEST_UNDONE, (ctx: { status?: number }, undone: TokenRequestUndone) => {
    for (const token of undone.withdrawn) {
      void audit.record({ type: 'token.withdrawn', actor: 'system', ...ids(token), detail: { kind: token.kind, grantId: token.grantId, status: ctx?.status } });
    }
    if (undone.codeGivenBack) {
      void audit.record({
        type: 'code.given_back',
        actor: 'system',
        ...(undone.code.clientId === undefined ? {} : { clientId: undone.code.clientId }),
        ...(undone.code.accountId === undefined ? {} : { customerId: undone.code.accountId }),
        ...(undone.code.grantId === undefined ? {} : { subject: undone.code.grantId }),
        detail: {
          grantId: undone.code.grantId,
          status: ctx?.status,
          withdrawn: undone.withdrawn.flatMap((t) => (t.jti === undefined ? [] : [tokenReference(t.jti)])),
        },
      });
    }
  });
  emitter.on('grant.revoked', (ctx: { oidc?: { client?: { clientId: string } } }, grantId: string) => {
    void audit.record({
      type: 'token.revoked',
      actor: 'tpp',
      ...(ctx?.oidc?.client?.clientId === undefined ? {} : { clientId: ctx.oidc.client.clientId, actorId: ctx.oidc.client.clientId }),
      subject: grantId,
      detail: { grantId, via: 'revocation endpoint' },
    });
  });
}

function ids(token: TokenLike) {
  return {
    ...(token.clientId === undefined ? {} : { clientId: token.clientId }),
    ...(token.accountId === undefined ? {} : { customerId: token.accountId }),
    ...(token.jti === undefined ? {} : { subject: tokenReference(token.jti) }),
  };
}

/** A stable reference to a token that cannot be turned back into it. */
export function tokenReference(jti: string): string {
  return `sha256:${createHash('sha256').update(jti).digest('base64url').slice(0, 22)}`;
}
