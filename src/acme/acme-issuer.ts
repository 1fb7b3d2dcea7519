import { Agent } from 'node:https';
import acme from 'acme-client';
import type { ChallengeResponder } from './challenge-responder.ts';

/*
 * Ordering a certificate from an ACME CA (RFC 8555) through acme-client: account (created or
 * found by its key, §7.3), order (§7.4), the http-01 challenge answered by Moat's own responder
 * (§8.3), finalisation with a CSR for a fresh key, and the chain. Nothing of the protocol or of
 * the CSR is built here; acme-client does both.
 */

/** What an issued certificate comes with: the chain (leaf first) and the key made for it, as PEM. */
export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

export interface AcmeIssuer {
  /** Orders a certificate for `domains` (the first is its CN) with a fresh P-256 key. */
  issue(domains: readonly string[]): Promise<IssuedCertificate>;
}

export interface AcmeIssuerOptions {
  directoryUrl: string;
  /** The ACME account's private key (PEM). */
  accountKeyPem: string;
  /** A CA to trust for the ACME server's TLS besides the system's. */
  caPem?: string;
  contact: readonly string[];
  externalAccountBinding?: { kid: string; hmacKey: string };
  responder: ChallengeResponder;
  timeoutMs: number;
}

/** An ACME order that did not end in a certificate; the CA's problem document, if any, is in `cause`. */
export class AcmeIssueError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AcmeIssueError';
  }
}

/** acme-client's own retries of a 5xx or a lost connection (up to 5, seconds apart) are turned off. */
function withoutInnerRetries(): void {
  (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings.retryMaxAttempts = 0;
}

// acme-client polls an order or challenge until it settles; an internal CA answers in seconds.
const POLL = { backoffAttempts: 10, backoffMin: 500, backoffMax: 10_000 } as const;

export function createAcmeIssuer(options: AcmeIssuerOptions): AcmeIssuer {
  // acme-client speaks through one axios instance of its own; this process has one ACME CA, so its
  // TLS trust and timeout are set there. Its own retries of a 5xx are turned off: a failed order is
  // retried whole by the renewal's back-off, which also counts and logs it.
  acme.axios.defaults.timeout = options.timeoutMs;
  acme.axios.defaults.httpsAgent = new Agent({ keepAlive: false, ...(options.caPem === undefined ? {} : { ca: options.caPem }) });
  withoutInnerRetries();

  const client = new acme.Client({
    directoryUrl: options.directoryUrl,
    accountKey: options.accountKeyPem,
    ...(options.externalAccountBinding === undefined ? {} : { externalAccountBinding: options.externalAccountBinding }),
    ...POLL,
  });
  const email = options.contact.map((c) => c.slice('mailto:'.length)).join(',');

  return {
    async issue(domains) {
      const [keyPem, csr] = await acme.crypto.createCsr({ commonName: domains[0]!, altNames: [...domains] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
      try {
        const certPem = await client.auto({
          csr,
          ...(email === '' ? {} : { email }),
          // The bank's CA's terms are the bank's own; agreeing is what ordering from it means.
          termsOfServiceAgreed: true,
          challengePriority: ['http-01'],
          // The CA checks reachability itself; a self-check from inside the network proves nothing.
          skipChallengeVerification: true,
          challengeCreateFn: async (_authz, challenge, keyAuthorization) => options.responder.set(challenge.token, keyAuthorization),
          challengeRemoveFn: async (_authz, challenge) => options.responder.remove(challenge.token),
        });
        return { certPem, keyPem: keyPem.toString() };
      } catch (err) {
        throw new AcmeIssueError(`the ACME order for ${domains.join(', ')} failed: ${describe(err)}`, { cause: err });
      }
    },
  };
}

/** The CA's problem detail (RFC 8555 §6.7) or the transport error, in one line without secrets. */
function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; response?: { status?: number; data?: { type?: string; detail?: string } } };
  const problem = e.response?.data;
  if (problem?.type !== undefined) return `${problem.type}${problem.detail === undefined ? '' : `: ${problem.detail}`}`;
  if (e.response?.status !== undefined) return `HTTP ${e.response.status}`;
  return e.code ?? e.message ?? String(err);
}

/** What an ACME directory (RFC 8555 §7.1.1) offers, as `moat config validate --connect` reports it. */
export interface AcmeDirectory {
  /** §7.1.1 `meta.externalAccountRequired`: accounts must be bound to one the CA issued (§7.3.4). */
  externalAccountRequired: boolean;
  termsOfService?: string;
}

/** Reads the directory over TLS trusting `caPem` (besides the system's); throws naming what failed. */
export async function readAcmeDirectory(options: { directoryUrl: string; caPem?: string; timeoutMs: number }): Promise<AcmeDirectory> {
  withoutInnerRetries();
  let data: unknown;
  try {
    const answer = await acme.axios.get(options.directoryUrl, {
      timeout: options.timeoutMs,
      httpsAgent: new Agent({ keepAlive: false, ...(options.caPem === undefined ? {} : { ca: options.caPem }) }),
      validateStatus: (status: number) => status === 200,
    });
    data = answer.data;
  } catch (err) {
    throw new AcmeIssueError(`the ACME directory cannot be read: ${describe(err)}`, { cause: err });
  }
  const directory = data as {
    newNonce?: unknown;
    newAccount?: unknown;
    newOrder?: unknown;
    meta?: { externalAccountRequired?: unknown; termsOfService?: unknown };
  } | null;
  const missing = ['newNonce', 'newAccount', 'newOrder'].filter((k) => typeof (directory as Record<string, unknown> | null)?.[k] !== 'string');
  if (missing.length > 0) throw new AcmeIssueError(`not an ACME directory (RFC 8555 §7.1.1): no ${missing.join(', ')}`);
  const tos = directory?.meta?.termsOfService;
  return { externalAccountRequired: directory?.meta?.externalAccountRequired === true, ...(typeof tos === 'string' ? { termsOfService: tos } : {}) };
}
