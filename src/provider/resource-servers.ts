import { errors, type ResourceServer } from 'oidc-provider';
import type { MoatConfig, ResourceServerConfig } from '../config/schema.ts';

/*
 * Resource servers (RFC 8707) decide the audience, lifetime and format of access tokens. Opaque by
 * default (introspected, revocable at once); RFC 9068 JWT access tokens where a resource server
 * asks for them.
 */
export interface ResourceServerRegistry {
  /** oidc-provider's `getResourceServerInfo`. */
  info(indicator: string): ResourceServer;
  /** The resource used when a request names none: the only configured one, if there is exactly one. */
  defaultIndicator(): string | undefined;
  /** The resource server whose introspection client this is, if any. */
  byClientId(clientId: string): ResourceServerConfig | undefined;
  /**
   * Whether a `scope` value names OpenID Connect scopes only — none a resource server accepts. Such
   * a request wants an access token for userinfo, which is no resource server.
   */
  onlyOidcScopes(scope: unknown): boolean;
}

export function createResourceServerRegistry(config: MoatConfig): ResourceServerRegistry {
  const byIndicator = new Map(config.resourceServers.map((rs) => [rs.identifier, rs]));
  const byClient = new Map(config.resourceServers.flatMap((rs) => (rs.client === undefined ? [] : [[rs.client.clientId, rs] as const])));
  const apiScopes = new Set(config.resourceServers.flatMap((rs) => rs.scopes));
  const signingAlg = config.keys.algorithms[0];
  return {
    info(indicator) {
      const rs = byIndicator.get(indicator);
      if (rs === undefined) throw new errors.InvalidTarget(`unknown resource server "${indicator}"`);
      return {
        scope: rs.scopes.join(' '),
        audience: rs.identifier,
        accessTokenTTL: rs.accessTokenTtl ?? config.tokens.accessTokenTtl,
        accessTokenFormat: rs.accessTokenFormat,
        ...(rs.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: signingAlg } } } : {}),
      };
    },
    defaultIndicator() {
      return config.resourceServers.length === 1 ? config.resourceServers[0]?.identifier : undefined;
    },
    byClientId(clientId) {
      return byClient.get(clientId);
    },
    onlyOidcScopes(scope) {
      if (typeof scope !== 'string') return false;
      const scopes = scope.split(' ').filter(Boolean);
      return scopes.length > 0 && scopes.every((s) => !apiScopes.has(s));
    },
  };
}
