import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { isIP } from 'node:net';
import { connect } from 'node:tls';
import { formatDistinguishedName, issuerOf, subjectOf } from '../../pki/distinguished-name.ts';
import { fail, pass, type CheckOutcome } from './checks.ts';

/*
 * The server as a TPP's client meets it: a TCP connection and a TLS handshake (is anybody there,
 * and is it who it claims to be), then HTTPS requests — over mutual TLS when a certificate is given.
 * node:https, not undici: undici is a development dependency of Moat.
 */

/** Host, port and SNI name of an https URL. */
export interface Endpoint {
  host: string;
  port: number;
  /** SNI (RFC 6066 §3): a host name, never an IP address. */
  servername?: string;
}

export function endpointOf(url: string): Endpoint {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: u.port === '' ? 443 : Number(u.port), ...(isIP(host) === 0 ? { servername: host } : {}) };
}

/** What the TLS handshake showed. */
export interface ServerHandshake {
  protocol: string;
  certificate: X509Certificate;
  /** Why node would not trust the server (a verification or host name error code), if it would not. */
  authorizationError?: string;
}

/**
 * Connects and completes a TLS handshake without presenting a client certificate (Moat asks for one
 * but lets the handshake finish without: browsers come this way). Trust is recorded, not enforced,
 * so one connection tells both "reachable" and "trusted".
 */
export function handshake(endpoint: Endpoint, ca: string | undefined, timeoutMs: number): Promise<ServerHandshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: endpoint.host,
      port: endpoint.port,
      ...(endpoint.servername === undefined ? {} : { servername: endpoint.servername }),
      ...(ca === undefined ? {} : { ca }),
      rejectUnauthorized: false,
    });
    socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })));
    socket.once('secureConnect', () => {
      const certificate = socket.getPeerX509Certificate();
      const result: ServerHandshake | undefined =
        certificate === undefined
          ? undefined
          : {
              protocol: socket.getProtocol() ?? 'TLS',
              certificate,
              ...(socket.authorized ? {} : { authorizationError: String(socket.authorizationError) }),
            };
      socket.end();
      if (result === undefined) reject(new Error('the server presented no certificate'));
      else resolve(result);
    });
    socket.once('error', reject);
  });
}

/** Check 1: a TCP connection and a TLS handshake; DNS and connection errors named. */
export function describeConnectFailure(err: unknown, endpoint: Endpoint): CheckOutcome {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const where = `${endpoint.host}:${endpoint.port}`;
  const message = (err as Error).message;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') {
    return fail(
      'the server cannot be reached',
      `the name ${endpoint.host} does not resolve (DNS: ${code})`,
      "check the host name in --issuer (it is the server's issuer identifier, as its discovery document states it) and this machine's DNS",
    );
  }
  if (code === 'ECONNREFUSED') {
    return fail(
      'the server cannot be reached',
      `nothing accepts connections on ${where} (connection refused)`,
      'start the server (npm start for the sandbox) or correct the port in --issuer',
    );
  }
  if (code === 'ETIMEDOUT' || code === 'ECONNABORTED') {
    return fail(
      'the server cannot be reached',
      `${where} did not answer (${message})`,
      'check the address and port; a firewall may be dropping the connection',
    );
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return fail('the server cannot be reached', `no route to ${where} (${code})`, "check the address in --issuer and this machine's network");
  }
  if (code === 'ECONNRESET' || code.startsWith('ERR_SSL') || code === 'EPROTO') {
    return fail(
      'the TLS handshake failed',
      `${where} accepted the connection but the TLS handshake failed: ${message}`,
      "check that --issuer is the server's https address (Moat speaks TLS 1.2 or 1.3 on its listen port, not plain HTTP)",
    );
  }
  return fail(
    'the server cannot be reached',
    `connecting to ${where} failed: ${message}${code === '' ? '' : ` (${code})`}`,
    'check --issuer and the network between this machine and the server',
  );
}

export function reachable(endpoint: Endpoint, result: ServerHandshake): CheckOutcome {
  return pass(`${endpoint.host}:${endpoint.port} completed a ${result.protocol} handshake`, { protocol: result.protocol });
}

/** The CA certificates in a PEM file, for messages. */
function caSubjects(pem: string): string[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((b) =>
    formatDistinguishedName(subjectOf(new X509Certificate(b))),
  );
}

/** Check 1b: node trusts the server's certificate for this host name with the CAs given. */
export function checkServerTrust(endpoint: Endpoint, result: ServerHandshake, ca: { file?: string; pem?: string; problem?: string }): CheckOutcome {
  const subject = formatDistinguishedName(subjectOf(result.certificate));
  const issuer = formatDistinguishedName(issuerOf(result.certificate));
  const details = { serverCertificateSubject: subject, serverCertificateIssuer: issuer };
  if (ca.problem !== undefined) {
    return fail(
      'the server CA file cannot be read',
      ca.problem,
      `pass the CA that issued the server's certificate (${issuer}) as a PEM file with --ca`,
      details,
    );
  }
  const error = result.authorizationError;
  if (error === undefined)
    return pass(
      `its certificate (${subject}) is issued by ${issuer}, which ${ca.file === undefined ? 'this system trusts' : `--ca ${ca.file} vouches for`}`,
      details,
    );
  if (error === 'ERR_TLS_CERT_ALTNAME_INVALID' || /altname|does not match/i.test(error)) {
    return fail(
      'the server certificate does not name this host',
      `the certificate (${subject}; ${result.certificate.subjectAltName ?? 'no subjectAltName'}) is not for ${endpoint.host}`,
      'use the host name the server certificate names in --issuer (the issuer identifier must match it too)',
      details,
    );
  }
  if (error === 'CERT_HAS_EXPIRED') {
    return fail(
      'the server certificate has expired',
      `the server's certificate (${subject}) expired on ${result.certificate.validToDate.toISOString()}`,
      "the server's operator must renew it; nothing on the TPP side fixes this",
      details,
    );
  }
  const trusted = ca.pem === undefined ? "the system's CAs" : `${ca.file} (${caSubjects(ca.pem).join('; ') || 'no certificate'})`;
  return fail(
    'the server certificate is not trusted',
    `the server's certificate (${subject}) is issued by ${issuer}, which is not among ${trusted} (${error})`,
    `pass the CA certificate of ${issuer} with --ca FILE — for the Moat sandbox that is server-ca.pem, written by \`moat sandbox tpp --out DIR\` (and kept by the server in data/sandbox/server-ca.pem)`,
    details,
  );
}

/** An HTTPS answer. */
export interface HttpsAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body as JSON, when it is JSON. */
  json?: unknown;
}

/** The TLS material of a request: the CA to trust, and the client certificate to present (mTLS). */
export interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
  timeoutMs: number;
}

/** One HTTPS request on its own connection. `form` is sent as application/x-www-form-urlencoded. */
export function httpsRequest(
  url: string,
  tls: TlsMaterial,
  options: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<HttpsAnswer> {
  const body = options.form === undefined ? undefined : new URLSearchParams(options.form).toString();
  const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
  if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        headers,
        agent: false,
        timeout: tls.timeoutMs,
        ...(tls.ca === undefined ? {} : { ca: tls.ca }),
        ...(tls.cert === undefined ? {} : { cert: tls.cert }),
        ...(tls.key === undefined ? {} : { key: tls.key }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, ...(json === undefined ? {} : { json }) });
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`${new URL(url).origin} did not answer within ${tls.timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The endpoints diagnose calls, RFC 8705 §5 aliases applied. */
export interface ServerEndpoints {
  token: string;
  par?: string;
  introspection?: string;
  registration?: string;
  /** Whether the token, PAR, introspection and registration endpoints came from mtls_endpoint_aliases. */
  mtlsAliases: boolean;
  tlsClientCertificateBoundAccessTokens?: boolean;
}

/** Check 2: the discovery document (OpenID Connect Discovery, else RFC 8414), its issuer exact. */
export async function fetchDiscovery(issuer: string, tls: TlsMaterial): Promise<{ endpoints?: ServerEndpoints; outcome: CheckOutcome }> {
  const base = issuer.replace(/\/$/, '');
  const tried: string[] = [];
  let answer: HttpsAnswer | undefined;
  let url = '';
  for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
    url = `${base}${path}`;
    tried.push(url);
    answer = await httpsRequest(url, tls);
    if (answer.status === 200) break;
  }
  if (answer === undefined || answer.status !== 200) {
    return {
      outcome: fail(
        'no discovery document',
        `${tried.join(' and ')} answered HTTP ${answer?.status ?? '?'}`,
        "check that --issuer is the server's issuer identifier exactly (with its path, if any)",
      ),
    };
  }
  const doc = answer.json as Record<string, unknown> | undefined;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return {
      outcome: fail(
        'the discovery document is not JSON',
        `${url} answered ${answer.headers['content-type'] ?? 'no content type'}, not a JSON object`,
        'check that --issuer points at the authorization server, not a web page in front of it',
      ),
    };
  }
  if (doc.issuer !== issuer) {
    return {
      outcome: fail(
        'the discovery document names another issuer',
        `${url} says issuer ${JSON.stringify(doc.issuer)}, not ${issuer} (RFC 8414 §3.3: they must be identical)`,
        `use --issuer ${String(doc.issuer)}`,
      ),
    };
  }
  if (typeof doc.token_endpoint !== 'string') {
    return {
      outcome: fail(
        'the discovery document has no token endpoint',
        `${url} has no token_endpoint`,
        'the server is not an OAuth authorization server diagnose can check',
      ),
    };
  }
  const aliases =
    typeof doc.mtls_endpoint_aliases === 'object' && doc.mtls_endpoint_aliases !== null ? (doc.mtls_endpoint_aliases as Record<string, unknown>) : undefined;
  const pick = (name: string): string | undefined => {
    const value = aliases?.[name] ?? doc[name];
    return typeof value === 'string' ? value : undefined;
  };
  const endpoints: ServerEndpoints = {
    token: pick('token_endpoint')!,
    mtlsAliases: aliases !== undefined,
    ...(pick('pushed_authorization_request_endpoint') === undefined ? {} : { par: pick('pushed_authorization_request_endpoint')! }),
    ...(pick('introspection_endpoint') === undefined ? {} : { introspection: pick('introspection_endpoint')! }),
    ...(pick('registration_endpoint') === undefined ? {} : { registration: pick('registration_endpoint')! }),
    ...(typeof doc.tls_client_certificate_bound_access_tokens === 'boolean'
      ? { tlsClientCertificateBoundAccessTokens: doc.tls_client_certificate_bound_access_tokens }
      : {}),
  };
  return {
    endpoints,
    outcome: pass(`${url}: token endpoint ${endpoints.token}${endpoints.mtlsAliases ? ' (from mtls_endpoint_aliases, RFC 8705 §5)' : ''}`, { ...endpoints }),
  };
}

/** Reads the CA file for the server, keeping a problem as words for check 1b. */
export function readServerCa(file: string | undefined): { file?: string; pem?: string; problem?: string } {
  if (file === undefined) return {};
  try {
    const pem = readFileSync(file, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) return { file, problem: `${file} holds no PEM certificate` };
    return { file, pem };
  } catch (err) {
    return { file, problem: `cannot read ${file}: ${(err as Error).message}` };
  }
}
