import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';

/*
 * The TPP's credentials and its mutual-TLS connection to the bank.
 *
 * `moat sandbox tpp --name NAME --out DIR` writes the files read here. A real TPP gets the same
 * things from its Open Banking directory: a transport certificate and key (the client certificate
 * it presents on every call to the bank), a software statement, and the bank's server CA.
 */

export interface Credentials {
  /** The transport certificate (PEM): the TPP's identity at the TLS handshake (RFC 8705 §2). */
  certPem: string;
  keyPem: string;
  /** The CA of the bank's TLS server certificate (in the sandbox, Moat's own). */
  serverCaPem: string;
  /** The RFC 7591 registration request, with the software statement (SSA) inside it. */
  registration: Record<string, unknown> & { redirect_uris: string[] };
}

export function readCredentials(dir: string): Credentials {
  const read = (file: string) => {
    try {
      return readFileSync(join(dir, file), 'utf8');
    } catch {
      throw new Error(`${join(dir, file)} is missing: create the credentials with \`npm run moat -- sandbox tpp --name "Acme Fintech" --out ${dir}\``);
    }
  };
  const registration = JSON.parse(read('registration.json')) as Credentials['registration'];
  if (!Array.isArray(registration.redirect_uris) || registration.redirect_uris.length === 0) {
    throw new Error(`${join(dir, 'registration.json')} names no redirect_uris`);
  }
  return {
    certPem: read('transport.pem'),
    keyPem: read('transport.key'),
    serverCaPem: read('server-ca.pem'),
    registration,
  };
}

/**
 * The TPP's signing key (`signing.jwks.json`, private), for `private_key_jwt`: its public half is in
 * the software statement's `software_jwks`, which is where the bank takes the client's keys from, so
 * a client assertion signed with it (and naming its `kid`) authenticates the client (RFC 7523).
 */
export async function readSigningKey(dir: string): Promise<{ key: webcrypto.CryptoKey; kid: string }> {
  let jwks: { keys?: (webcrypto.JsonWebKey & { kid?: string; alg?: string })[] };
  try {
    jwks = JSON.parse(readFileSync(join(dir, 'signing.jwks.json'), 'utf8')) as typeof jwks;
  } catch {
    throw new Error(`${join(dir, 'signing.jwks.json')} is missing or not JSON: private_key_jwt needs the signing key \`moat sandbox tpp\` wrote`);
  }
  const jwk = jwks.keys?.[0];
  if (jwk?.d === undefined || jwk.kid === undefined || jwk.kty !== 'EC' || jwk.crv !== 'P-256') {
    throw new Error(`${join(dir, 'signing.jwks.json')} holds no private P-256 key with a kid (ES256)`);
  }
  const { kid, alg: _alg, ...material } = jwk;
  const key = await webcrypto.subtle.importKey('jwk', material, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  return { key, kid };
}

/**
 * The certificate's SHA-256 thumbprint as RFC 8705 §3.1 puts it in `cnf.x5t#S256`: base64url of the
 * SHA-256 of the DER certificate. A token bound to this certificate carries exactly this value.
 */
export function certificateThumbprint(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('base64url');
}

export type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * A fetch over TLS that trusts `serverCaPem` and, when given, presents a client certificate. The
 * TPP uses one with its transport certificate for everything it sends the bank; the customer's
 * "browser" (sandbox-customer.ts) uses one without, as a browser has no TPP certificate.
 */
export function tlsFetch(serverCaPem: string, clientCertificate?: { certPem: string; keyPem: string }): { fetch: Fetch; close(): Promise<void> } {
  const agent = new Agent({
    connect: {
      ca: serverCaPem,
      ...(clientCertificate === undefined ? {} : { cert: clientCertificate.certPem, key: clientCertificate.keyPem }),
    },
  });
  const fetch: Fetch = (url, init) =>
    // undici's Response is the WHATWG Response Node's own fetch returns; only the TypeScript types differ.
    undiciFetch(url, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response>;
  return { fetch, close: () => agent.close() };
}
