import { z } from 'zod';

/*
 * `acme`: Moat's own certificates from the bank's internal CA by ACME (RFC 8555), renewed while
 * running (issue 21 point 2). The server's TLS certificate is written to tls.certFile/keyFile and
 * the client certificate for the bank's account service to accounts.http.clientCertFile/
 * clientKeyFile, so a restart starts with the last one issued; each is renewed at `renewAtFraction`
 * of its lifetime and swapped in without a restart (src/acme/).
 */

const dnsName = z
  .string()
  .regex(
    /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/,
    'expected a DNS name (ACME identifiers are DNS names)',
  );

const certificateSchema = (enabledByDefault: boolean) =>
  z
    .strictObject({
      enabled: z.boolean().default(enabledByDefault),
      /**
       * The DNS names the certificate is for (subjectAltName); the first is its CN. Server: unset means
       * the issuer's host and, when set, tls.mtlsEndpointAliasOrigin's.
       */
      domains: z.array(dnsName).min(1).optional(),
    })
    .prefault({});

export const acmeSchema = z
  .strictObject({
    /** Off by default: certificates come from tls.certFile/keyFile and accounts.http.clientCertFile/clientKeyFile as placed there. */
    enabled: z.boolean().default(false),
    /** The ACME directory of the bank's internal CA (RFC 8555 §7.1.1). */
    directoryUrl: z.url({ protocol: /^https$/, error: 'expected an https:// URL (RFC 8555 §6.1: ACME is spoken over HTTPS)' }).optional(),
    /** The CA (PEM) the ACME server's certificate chains to, when it is not among the system's (an internal CA usually is not). */
    caFile: z.string().min(1).optional(),
    /**
     * The ACME account's private key (PEM). Unset: `<dataDir>/acme/account-key.pem`, created on first
     * start (mode 0600). Keep it: the account, and any external account binding, belong to it.
     */
    accountKeyFile: z.string().min(1).optional(),
    /** Contact URLs of the account (RFC 8555 §7.3), e.g. `mailto:pki-team@bank.example`. */
    contact: z.array(z.string().regex(/^mailto:[^@\s]+@[^@\s]+$/, 'expected a mailto: URL')).default([]),
    /**
     * External account binding (RFC 8555 §7.3.4), when the CA requires one: the key id and the MAC
     * key (base64url) the CA gave; the key best as MOAT_ACME__EXTERNAL_ACCOUNT_BINDING__HMAC_KEY or in `hmacKeyFile`.
     */
    externalAccountBinding: z
      .strictObject({
        kid: z.string().min(1),
        hmacKey: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/, 'expected base64url')
          .optional(),
        hmacKeyFile: z.string().min(1).optional(),
      })
      .refine((e) => (e.hmacKey === undefined) !== (e.hmacKeyFile === undefined), { message: 'set exactly one of hmacKey or hmacKeyFile', path: ['hmacKey'] })
      .optional(),
    /**
     * The http-01 challenge (RFC 8555 §8.3): the CA fetches `http://<domain>/.well-known/acme-challenge/<token>`
     * on port 80, so this listener (answering nothing else) must be reachable there from the CA,
     * directly or through a port mapping.
     */
    http01: z
      .strictObject({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(80),
      })
      .prefault({}),
    /** The server's TLS certificate (written to tls.certFile and tls.keyFile). */
    server: certificateSchema(true),
    /** The client certificate Moat presents to the bank's account service (written to accounts.http.clientCertFile and clientKeyFile). */
    accountServiceClient: certificateSchema(false),
    /**
     * Renew when this fraction of the certificate's lifetime has passed: 2/3 leaves a third of it
     * (30 days of a 90-day certificate) for failed attempts to be retried and alerted on.
     */
    renewAtFraction: z
      .number()
      .min(0.1)
      .max(0.95)
      .default(2 / 3),
    retry: z
      .strictObject({
        /** A failed renewal is tried again after this long, then twice as long each time, in seconds. */
        initialSeconds: z.number().int().min(1).max(86_400).default(60),
        /** The longest wait between attempts, in seconds. */
        maxSeconds: z.number().int().min(1).max(86_400).default(3600),
      })
      .refine((r) => r.initialSeconds <= r.maxSeconds, { message: 'expected initialSeconds ≤ maxSeconds', path: ['maxSeconds'] })
      .prefault({}),
    /** How often each certificate is checked for being due (no call to the CA unless it is), in seconds. */
    checkIntervalSeconds: z.number().int().min(1).max(3600).default(60),
    /** Each call to the ACME server gives up after this many milliseconds. */
    timeoutMs: z.number().int().min(100).max(120_000).default(30_000),
  })
  .prefault({});

export type AcmeConfig = z.infer<typeof acmeSchema>;
