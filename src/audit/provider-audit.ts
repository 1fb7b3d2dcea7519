import { createHash } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { AuditLog } from './audit-log.ts';

/*
 * Tokens issued and revoked, from oidc-provider's events, into the audit log. Only identifiers and
 * kinds are recorded (grant, client, customer, binding) — never a token value. An opaque token's
 * value *is* its jti, so the jti is recorded only as a SHA-256 reference.
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
      type: 'token.issued', actor: 'system', ...ids(token),
      detail: {
        kind: token.kind, grantId: token.grantId, scope: token.scope,
        binding: token['x5t#S256'] !== undefined ? 'mtls' : token.jkt !== undefined ? 'dpop' : 'none',
        ...(typeof token.extra?.consent_id === 'string' ? { consentId: token.extra.consent_id } : {}),
      },
    });
  };
  for (const event of ['access_token.saved', 'access_token.issued', 'client_credentials.saved', 'client_credentials.issued', 'refresh_token.saved']) {
    emitter.on(event, issued);
  }
  emitter.on('grant.revoked', (ctx: { oidc?: { client?: { clientId: string } } }, grantId: string) => {
    void audit.record({
      type: 'token.revoked', actor: 'tpp', ...(ctx?.oidc?.client?.clientId === undefined ? {} : { clientId: ctx.oidc.client.clientId, actorId: ctx.oidc.client.clientId }),
      subject: grantId, detail: { grantId, via: 'revocation endpoint' },
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
