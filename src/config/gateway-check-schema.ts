import { z } from 'zod';
import { FORWARDED_CERT_FORMATS } from '../pki/forwarded-certificate.ts';

/*
 * `gatewayCheck`: the external-authorisation endpoint a bank's API gateway calls before each API
 * request (nginx `auth_request`, Envoy `ext_authz` in HTTP mode, HAProxy, Kong; src/gateway-check/).
 * It has its own listener, never the TPP port: what it answers is trusted by the gateway, so only the
 * gateway may ask — over mTLS with the gateway's certificate, or with a shared secret on loopback.
 * The checks it makes (the token is active, meant for the route's resource, carries its scopes and a
 * live consent, and is presented with the certificate or DPoP key it is bound to) have no switches:
 * there is no setting that skips the binding.
 */

const routeSchema = z.strictObject({
  /** The path prefix of the bank's API this entry covers (`/accounts`); the longest matching prefix wins. */
  prefix: z.string().regex(/^\/[^\s?#]*$/, 'expected a path starting with "/", without query or fragment'),
  /** The resource (RFC 8707) the route's tokens must be for: a `resourceServers` identifier. */
  resource: z.url(),
  /** Scopes a token must carry, all of them, for this route; each a scope of the resource server. */
  scopes: z.array(z.string().min(1)).min(1),
});

export const gatewayCheckSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Loopback by default: the gateway runs beside Moat or reaches it over mTLS (`tls`). */
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(9465),
  /**
   * A file holding the secret the gateway sends in `X-Moat-Gateway-Secret` on every check. Only on a
   * loopback `host`: on a network a secret in a header is one packet capture from any caller.
   */
  sharedSecretFile: z.string().min(1).optional(),
  /** mTLS from the gateway: the check listener serves HTTPS and accepts only the gateways' certificates. */
  tls: z
    .strictObject({
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
      /** PEM files of the CAs of the gateways' client certificates; apart from `trustAnchors`, so no TPP is a gateway. */
      clientCaFiles: z.array(z.string().min(1)).min(1),
      /** RFC 4514 subject DNs of the gateways allowed in; unset: any certificate from `clientCaFiles`. */
      allowedSubjects: z.array(z.string().min(1)).min(1).optional(),
    })
    .optional(),
  /**
   * The header form in which the gateway forwards the TPP's client certificate it terminated
   * (the formats `trustedProxies.format` knows). Unset: `trustedProxies.format`.
   */
  forwardedCertificate: z.enum(FORWARDED_CERT_FORMATS).optional(),
  /**
   * The origin TPPs call the APIs at (`https://api.bank.example`): a DPoP proof's `htu` (RFC 9449
   * §4.3) is checked against it and the request's path, never against a Host header.
   */
  apiOrigin: z.url({ protocol: /^https$/, error: "expected the https:// origin of the bank's APIs" }),
  routes: z.array(routeSchema).min(1),
  cache: z
    .strictObject({
      /** Tokens whose checked facts are kept in memory; the least recently used goes first. */
      maxEntries: z.number().int().min(0).max(1_000_000).default(50_000),
    })
    .prefault({}),
});

export type GatewayCheckConfig = z.infer<typeof gatewayCheckSchema>;
export type GatewayRoute = GatewayCheckConfig['routes'][number];

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** What the schema alone cannot see: how the listener is protected, and that each route names a resource Moat issues tokens for. */
export function gatewayCheckProblems(
  gateway: GatewayCheckConfig | undefined,
  resourceServers: readonly { identifier: string; scopes: readonly string[]; accessTokenFormat: 'opaque' | 'jwt' }[],
): string[] {
  if (gateway === undefined || !gateway.enabled) return [];
  const problems: string[] = [];
  if (gateway.sharedSecretFile === undefined && gateway.tls === undefined) {
    problems.push('gatewayCheck.sharedSecretFile or gatewayCheck.tls: one is required — only the gateway may ask the check endpoint');
  }
  if (gateway.sharedSecretFile !== undefined && gateway.tls === undefined && !LOOPBACK.has(gateway.host)) {
    problems.push(
      `gatewayCheck.host: a shared secret is accepted only on loopback (127.0.0.1, ::1), not "${gateway.host}"; use gatewayCheck.tls for a gateway on another host`,
    );
  }
  if (new URL(gateway.apiOrigin).pathname !== '/') problems.push('gatewayCheck.apiOrigin: expected an origin (scheme, host, port) without a path');
  const seen = new Set<string>();
  gateway.routes.forEach((route, i) => {
    if (seen.has(route.prefix)) problems.push(`gatewayCheck.routes.${i}.prefix: "${route.prefix}" appears twice`);
    seen.add(route.prefix);
    const rs = resourceServers.find((r) => r.identifier === route.resource);
    if (rs === undefined) {
      problems.push(`gatewayCheck.routes.${i}.resource: "${route.resource}" is not a resourceServers identifier (Moat issues no tokens for it)`);
      return;
    }
    // A JWT access token is not stored, so the check could not see its revocation or its consent's:
    // the gateway checks opaque tokens (JWTs: packages/api-guard, in the service).
    if (rs.accessTokenFormat === 'jwt') {
      problems.push(
        `gatewayCheck.routes.${i}.resource: resource server ${route.resource} issues JWT access tokens; the gateway check needs accessTokenFormat: opaque (revocation is seen only for stored tokens)`,
      );
    }
    for (const scope of route.scopes) {
      if (!rs.scopes.includes(scope)) problems.push(`gatewayCheck.routes.${i}.scopes: "${scope}" is not a scope of resource server ${route.resource}`);
    }
  });
  return problems;
}
