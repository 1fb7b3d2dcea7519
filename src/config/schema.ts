import { isIP } from 'node:net';
import { FORWARDED_CERT_FORMATS } from '../pki/forwarded-certificate.ts';
import { z } from 'zod';
import { SIGNING_ALGORITHMS } from '../kernel/signing-algorithms.ts';
import { accountsSchema } from './accounts-schema.ts';
import { gatewayCheckSchema } from './gateway-check-schema.ts';
import { acmeSchema } from './acme-schema.ts';
import { localisedText } from './localised-text.ts';

/*
 * Moat's configuration, one schema for the YAML file and the MOAT_* environment overrides.
 * Every key carries its default and the reason for it; `docs/configuration.md` is generated from
 * nothing: the README's configuration reference points here.
 */

const seconds = (max: number) => z.number().int().positive().max(max);

/** Why an address-or-CIDR entry (`10.20.0.0/16`, `127.0.0.1`, `fd00::/8`) is not one; undefined when it is. */
export function addressBlockProblem(entry: string): string | undefined {
  const [address, prefix, ...rest] = entry.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return 'expected an IP address or a CIDR block such as 10.20.0.0/16';
  if (prefix === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  return /^\d+$/.test(prefix) && Number(prefix) <= max ? undefined : `expected a prefix length of 0–${max}`;
}
const addressBlock = z.string().superRefine((v, ctx) => {
  const problem = addressBlockProblem(v);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

export { SIGNING_ALGORITHMS, type SigningAlgorithm } from '../kernel/signing-algorithms.ts';

/** The profiles a client can be held to; `fapi2-security` is the default for every client. */
export const FAPI_PROFILES = ['fapi2-security', 'fapi2-message-signing', 'fapi1-advanced'] as const;
export type FapiProfile = (typeof FAPI_PROFILES)[number];

export { FORWARDED_CERT_FORMATS, type ForwardedCertFormat } from '../pki/forwarded-certificate.ts';

const HEX_COLOR = /^#[0-9a-fA-F]{6}$/;

/** Whether Intl knows `zone` as a time zone (an IANA name such as Europe/London, or UTC). */
function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
const threatResponse = z.enum(['log', 'step-up', 'quarantine']);
const hexColor = z.string().regex(HEX_COLOR, 'expected a colour like #0b3d5c');

/** WCAG 2.1 contrast ratio of two #rrggbb colours (§1.4.3 asks 4.5:1 for text). */
export function contrastRatio(a: string, b: string): number {
  const luminance = (hex: string) => {
    const [r, g, bl] = [1, 3, 5].map((i) => {
      const c = Number.parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * bl!;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

const rateLimit = (requests: number) =>
  z
    .strictObject({
      requests: z.number().int().positive().max(1_000_000).default(requests),
      perSeconds: seconds(3600).default(60),
    })
    .prefault({});
const endpointLimits = (perClient: number, perAddress: number) =>
  z
    .strictObject({
      perClient: rateLimit(perClient),
      perAddress: rateLimit(perAddress),
    })
    .prefault({});

/**
 * Where signing keys live: a JWKS file under keys.dir, a PKCS#11 token (an HSM), or the database
 * every instance shares (private keys sealed with keys.encryptionKey).
 */
export const KEY_SOURCES = ['file', 'pkcs11', 'database'] as const;

/** A duration: seconds as a number, or a number with a unit (`90d`, `12h`, `30m`, `45s`). */
const DURATION_UNITS = { s: 1, m: 60, h: 3600, d: 86400 } as const;
const duration = z.union(
  [
    z.number().int().positive(),
    z
      .string()
      .regex(/^[1-9][0-9]*[smhd]$/)
      .transform((v) => Number(v.slice(0, -1)) * DURATION_UNITS[v.at(-1) as keyof typeof DURATION_UNITS]),
  ],
  { error: 'expected a duration such as 90d, 12h, 30m or 45s, or a number of seconds' },
);

const rotationSchema = z
  .strictObject({
    /** How long a key signs before its successor takes over (e.g. `90d`). Unset: keys rotate only by `moat keys rotate`. */
    every: duration.optional(),
    /**
     * The longest a client may cache Moat's JWKS, in seconds. A new key is published this long (plus
     * checkIntervalSeconds, for every instance to pick it up) before it signs anything, so no verifier
     * meets a kid it has not been offered.
     */
    jwksCacheSeconds: seconds(30 * 86400).default(86400),
    /** How often each instance re-reads the keys besides being told of a change (LISTEN/NOTIFY), in seconds. */
    checkIntervalSeconds: seconds(3600).default(10),
  })
  .prefault({});
/** The algorithms Moat signs with through PKCS#11 (CKM_SHA256_RSA_PKCS_PSS, CKM_ECDSA on P-256). */
export const PKCS11_ALGORITHMS = ['PS256', 'ES256'] as const;
export type Pkcs11Algorithm = (typeof PKCS11_ALGORITHMS)[number];

const pkcs11Schema = z
  .strictObject({
    /** The vendor's PKCS#11 module (a shared library), e.g. /usr/lib/softhsm/libsofthsm2.so. */
    library: z.string().min(1),
    /** The label of the token holding Moat's keys (CKA_LABEL of the token, as `softhsm2-util --show-slots` lists it). */
    tokenLabel: z.string().min(1).max(32, 'a PKCS#11 token label has at most 32 characters'),
    /** The user PIN, best given as MOAT_KEYS__PKCS11__PIN; or `pinFile`, a file holding it. Exactly one. */
    // A digits-only PIN given as MOAT_KEYS__PKCS11__PIN arrives as a number (overrides parse as JSON).
    pin: z.union([z.string().min(1), z.number().int().nonnegative().transform(String)]).optional(),
    pinFile: z.string().min(1).optional(),
    /**
     * Sessions Moat keeps open with the token, one signature at a time each: an HSM has a session limit
     * shared by every application using it.
     */
    maxSessions: z.number().int().min(1).max(64).default(4),
  })
  .refine((p) => (p.pin === undefined) !== (p.pinFile === undefined), {
    message: 'set exactly one of pin or pinFile',
    path: ['pin'],
  });
export type Pkcs11Config = z.infer<typeof pkcs11Schema>;

const httpsUrl = z.url({ protocol: /^https$/, error: 'expected an https:// URL' });

const directorySchema = z
  .strictObject({
    /** Name used in logs and errors. */
    name: z.string().min(1),
    /** The `iss` the directory puts in its software statements. */
    issuer: z.string().min(1),
    /** Where its signing keys are: a JWKS file, or a jwks_uri fetched over TLS. Exactly one. */
    jwksFile: z.string().min(1).optional(),
    jwksUri: httpsUrl.optional(),
    /** A CA (PEM file) to trust for jwksUri besides the system's (a private or sandbox directory). */
    jwksCaFile: z.string().min(1).optional(),
    /** After fetching jwksUri, how long an unknown kid waits before it triggers a refetch, in seconds. */
    jwksRefetchCooldownSeconds: z.number().int().min(0).max(3600).default(30),
    /**
     * How the directory writes its software statements: `uk-ob` (OBIE: roles AISP/PISP/CBPII, org_id
     * in the certificate's OU) or `brazil` (Open Finance Brasil: roles DADOS/PAGTO, org_id in the
     * certificate's organizationIdentifier as OFBBR-<org_id>, SSAs at most 5 minutes old).
     */
    claimStyle: z.enum(['uk-ob', 'brazil']).default('uk-ob'),
    /** Which certificate subject attribute carries the SSA's org_id (UK OB: OU; eIDAS / Brazil: 2.5.4.97). Default by claimStyle. */
    orgIdAttribute: z.string().min(1).optional(),
    /** What precedes the org_id in that attribute (Brazil: OFBBR-). Default by claimStyle. */
    orgIdPrefix: z.string().optional(),
    /** The directory's role names mapped to Moat's (AISP, PISP, CBPII). Default by claimStyle. */
    roleMap: z.record(z.string().min(1), z.string().min(1)).optional(),
    /**
     * Maximum SSA age (now − `iat`) in seconds. Default by claimStyle: 300 for `brazil` (Open Finance
     * Brasil's rule); 86400 for `uk-ob` (the OB Directory's SSAs carry no exp and OB sets no SSA
     * lifetime: a day to register one statement with every bank, then fetch a fresh one).
     */
    maxSsaAgeSeconds: z.number().int().positive().optional(),
    /**
     * Whether the directory's software statements must also carry `exp`. Default false for both claim
     * styles: neither the OB Directory's nor Open Finance Brasil's SSAs carry one, and the maximum
     * age bounds every statement. Set it for a directory whose statements do.
     */
    requireSsaExp: z.boolean().optional(),
  })
  .refine((d) => (d.jwksFile === undefined) !== (d.jwksUri === undefined), {
    message: 'set exactly one of jwksFile or jwksUri',
  });

const resourceServerSchema = z.strictObject({
  /** The resource indicator (RFC 8707) clients ask for, and the `aud` of its tokens. */
  identifier: z.url(),
  /** Scopes this resource server accepts. */
  scopes: z.array(z.string().min(1)).min(1),
  /** Opaque tokens are introspected; JWT access tokens follow RFC 9068. */
  accessTokenFormat: z.enum(['opaque', 'jwt']).default('opaque'),
  /** Access token lifetime for this resource server in seconds. */
  accessTokenTtl: seconds(86400).optional(),
  /** How the resource server authenticates to introspection and revocation. */
  client: z
    .strictObject({
      clientId: z.string().min(1),
      /** `tls_client_auth` with the subject DN of its certificate, or `private_key_jwt` with a JWKS file. */
      tlsClientAuthSubjectDn: z.string().min(1).optional(),
      jwksFile: z.string().min(1).optional(),
    })
    .refine((c) => (c.tlsClientAuthSubjectDn === undefined) !== (c.jwksFile === undefined), {
      message: 'set exactly one of tlsClientAuthSubjectDn or jwksFile',
    })
    .optional(),
});

/** Authentication methods Moat uses at the bank's IdP (FAPI 2.0 SP §5.3.3: mTLS or private_key_jwt). */
export const UPSTREAM_CLIENT_AUTH_METHODS = ['private_key_jwt', 'tls_client_auth'] as const;

const upstreamIdpSchema = z.strictObject({
  /** The IdP's issuer identifier; its discovery document is read from `<issuer>/.well-known/openid-configuration`. */
  issuer: httpsUrl,
  /** The client id the bank's IdP gave Moat. Moat's redirect URI there is `<Moat issuer>/federation/callback`. */
  clientId: z.string().min(1),
  /** How Moat authenticates to the IdP's PAR and token endpoints. */
  clientAuth: z.discriminatedUnion('method', [
    z.strictObject({
      method: z.literal('private_key_jwt'),
      /** A private JWK (JSON file) with `kid` and `alg` (PS256, ES256 or EdDSA); its public half is registered at the IdP. */
      jwkFile: z.string().min(1),
    }),
    z.strictObject({
      method: z.literal('tls_client_auth'),
      /** Moat's client certificate and key (PEM) for mutual TLS with the IdP (RFC 8705 §2.1). */
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
    }),
  ]),
  /** CA certificates (PEM file) to trust for the IdP's TLS besides the system's (a private CA). */
  caFile: z.string().min(1).optional(),
  /** Scopes asked of the IdP: openid, and whatever carries the claims below. */
  scope: z
    .string()
    .min(1)
    .default('openid profile')
    .refine((s) => s.split(' ').includes('openid'), 'must include openid'),
  /** The ID token claim whose value is the customer's id in Moat (consents, accounts, the ID token Moat issues). */
  customerIdClaim: z.string().min(1).default('sub'),
  /** The ID token claim shown to the customer as their name on the consent page and the dashboard. */
  nameClaim: z.string().min(1).default('name'),
  /** `max_age` sent to the IdP (OIDC Core §3.1.2.1): an older IdP session makes the customer sign in again. Unset: none sent. */
  maxAgeSeconds: z.number().int().min(0).max(86_400).optional(),
  /** Each call to the IdP (discovery, PAR, token, JWKS) gives up after this many milliseconds. */
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
  /** What counts as strong customer authentication (RTS Art. 4) among the IdP's answers. */
  sca: z
    .strictObject({
      /** Upstream `acr` values that mean SCA. */
      acrValues: z.array(z.string().min(1)).default([]),
      /** Upstream `amr` combinations (RFC 8176) that mean SCA: a login whose amr includes every value of one of them. */
      amrCombinations: z.array(z.array(z.string().min(1)).min(1)).default([]),
      /** `acr_values` sent to the IdP, asking for SCA up front. Unset: none sent. */
      requestAcrValues: z.array(z.string().min(1)).min(1).optional(),
      /**
       * A login the mapping does not count as SCA is never accepted as it is (RTS Art. 4).
       * `step_up`: Moat asks for its own factor — a one-time code or a passkey the customer set up
       * with Moat — when that makes the whole strong; a customer without one is told a stronger sign-in
       * is needed. `refuse`: that page always, even for a customer with a Moat factor.
       */
      belowSca: z.enum(['step_up', 'refuse']).default('step_up'),
      /**
       * The RTS category (Art. 6–8) of the one element a login below SCA proves when its amr names no
       * method Moat knows (an IdP that sends only acr): `knowledge` for a password. Unset: only the
       * amr decides, and such a login is stepped up by a passkey alone.
       */
      belowScaCategory: z.enum(['knowledge', 'possession', 'inherence']).optional(),
    })
    .prefault({}),
});

export const configSchema = z.strictObject({
  /** `sandbox` creates test PKI and demo customers; `production` refuses every shortcut. */
  mode: z.enum(['sandbox', 'production']).default('sandbox'),
  /** The issuer identifier: https, no query or fragment (RFC 8414 §2). */
  issuer: httpsUrl.default('https://localhost:8443').refine((u) => !u.includes('?') && !u.includes('#'), { message: 'the issuer has no query or fragment' }),
  listen: z
    .strictObject({
      host: z.string().min(1).default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(8443),
    })
    .prefault({}),
  /**
   * Server processes (node:cluster workers sharing the port): a number, or `auto` for one per core.
   * More than one needs storage.postgresUrl and storage.redisUrl.
   */
  workers: z.union([z.number().int().min(1).max(64), z.literal('auto')]).default(1),
  /** Where Moat keeps sandbox material and the embedded database. */
  dataDir: z.string().min(1).default('./data'),
  tls: z
    .strictObject({
      /** Terminate TLS in Moat (default) or take plain HTTP from a gateway on trusted addresses. */
      terminate: z.boolean().default(true),
      /** Server certificate and key (PEM). In sandbox mode, generated under dataDir when unset. */
      certFile: z.string().min(1).optional(),
      keyFile: z.string().min(1).optional(),
      /** Origin of the mTLS endpoint aliases (RFC 8705 §5) when they live on another host. */
      mtlsEndpointAliasOrigin: httpsUrl.optional(),
      /**
       * TLS session resumption by tickets on the public listener (RFC 8446 §2.2, RFC 5077): a TPP's
       * new connection skips the full handshake, and its certificate is verified again with the
       * intermediates of the handshake that established the session (tls/session-chains.ts).
       */
      sessionResumption: z
        .strictObject({
          enabled: z.boolean().default(true),
          /** How long a session can be resumed after its last handshake: node's and OpenSSL's default; RFC 8446 §4.6.1 allows up to 7 days. */
          lifetimeSeconds: seconds(7 * 86_400).default(300),
          /**
           * How often the ticket keys are replaced. A stolen ticket key decrypts the TLS 1.2 sessions
           * it sealed (RFC 5077 §5.5 asks for regular rotation), so one lives an hour; tickets sealed
           * before a replacement make a full handshake.
           */
          ticketKeyRotationSeconds: seconds(86_400).default(3600),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Moat's own certificates (server, account service client) from the bank's CA by ACME, renewed while running (src/config/acme-schema.ts). */
  acme: acmeSchema,
  /** CA certificates (PEM files) that TPP transport certificates must chain to. */
  trustAnchors: z.array(z.string().min(1)).default([]),
  /** Trust anchors, directory jwksFiles and admin.tls.crlFiles are re-read when they change. */
  trustFiles: z
    .strictObject({
      /** How often each file is checked for a change, in seconds. */
      checkIntervalSeconds: seconds(3600).default(10),
    })
    .prefault({}),
  trustedProxies: z
    .strictObject({
      /** Addresses or CIDR ranges of gateways allowed to forward a client certificate. */
      addresses: z.array(z.string().min(1)).default([]),
      /** Which header form they send. */
      format: z.enum(FORWARDED_CERT_FORMATS).default('rfc9440'),
    })
    .prefault({}),
  storage: z
    .strictObject({
      /** Postgres URL; unset means the embedded PGlite database under dataDir (sandbox only). */
      postgresUrl: z
        .string()
        .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL')
        .optional(),
      /** Redis URL; unset means an in-process store (sandbox only, single instance). */
      redisUrl: z
        .string()
        .regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL')
        .optional(),
      /** Prefix for every Redis key, so several deployments can share one Redis. */
      redisKeyPrefix: z.string().default('moat:'),
      /** Apply pending migrations at start (off: run `moat migrate` in the release pipeline). */
      migrateOnStart: z.boolean().default(true),
      /** How often expired rows are purged from Postgres, in seconds. */
      purgeIntervalSeconds: seconds(86400).default(300),
    })
    .prefault({}),
  keys: z
    .strictObject({
      /**
       * Where the signing keys (ID tokens, JARM, signed introspection and userinfo, JWT access tokens)
       * live: `file` — a JWKS under `dir`; `pkcs11` — in the bank's HSM, which signs and never hands
       * Moat the private key (see `pkcs11`).
       */
      source: z.enum(KEY_SOURCES).default('file'),
      /** Directory holding the signing JWKS (source `file`) and the cookie keys (always). */
      dir: z.string().min(1).default('./keys'),
      /**
       * Signing algorithms to keep keys for; the first signs ID tokens by default. Unset: PS256, ES256
       * and EdDSA from a file, PS256 and ES256 from an HSM.
       */
      algorithms: z.array(z.enum(SIGNING_ALGORITHMS)).min(1).optional(),
      pkcs11: pkcs11Schema.optional(),
      /**
       * Source `database`: 32 bytes, base64url, that encrypt the private keys at rest (AES-256-GCM), so a
       * copy of the database alone signs nothing. Or encryptionKeyFile. Unset in sandbox mode:
       * `<keys.dir>/signing-key-encryption.key`, generated on first start.
       */
      encryptionKey: z
        .string()
        .regex(/^[A-Za-z0-9_-]{43}$/, 'expected 32 bytes, base64url-encoded (43 characters)')
        .optional(),
      encryptionKeyFile: z.string().min(1).optional(),
      /**
       * Scheduled rotation, seen by every instance without a restart: of the keys in the database, or
       * of the HSM's (source pkcs11: keys generated in the token, their states kept in the database).
       */
      rotation: rotationSchema,
    })
    .superRefine((k, ctx) => {
      if (k.encryptionKey !== undefined && k.encryptionKeyFile !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['encryptionKeyFile'], message: 'set encryptionKey or encryptionKeyFile, not both' });
      }
      if (k.rotation.every !== undefined && k.source === 'file') {
        ctx.addIssue({
          code: 'custom',
          path: ['rotation', 'every'],
          message: "scheduled rotation needs keys every instance reads: set keys.source to database, or pkcs11 for the bank's HSM",
        });
      }
      const lead = k.rotation.jwksCacheSeconds + k.rotation.checkIntervalSeconds;
      if (k.rotation.every !== undefined && k.rotation.every <= lead) {
        ctx.addIssue({
          code: 'custom',
          path: ['rotation', 'every'],
          message: `must be longer than the ${lead} s a new key is published before it signs (keys.rotation.jwksCacheSeconds + checkIntervalSeconds)`,
        });
      }
      if (k.source !== 'pkcs11') return;
      if (k.pkcs11 === undefined)
        ctx.addIssue({ code: 'custom', path: ['pkcs11'], message: 'required when keys.source is pkcs11 (library, tokenLabel and pin or pinFile)' });
      const unsupported = (k.algorithms ?? []).filter((a) => !PKCS11_ALGORITHMS.includes(a as Pkcs11Algorithm));
      if (unsupported.length > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['algorithms'],
          message: `${unsupported.join(', ')} cannot be kept in a PKCS#11 token by Moat; use ${PKCS11_ALGORITHMS.join(' and ')}`,
        });
      }
    })
    .transform((k) => ({
      ...k,
      algorithms: k.algorithms ?? (k.source === 'pkcs11' ? [...PKCS11_ALGORITHMS] : [...SIGNING_ALGORITHMS]),
    }))
    .prefault({}),
  fapi: z
    .strictObject({
      /** The profile for clients that do not choose one at registration. */
      defaultProfile: z.enum(FAPI_PROFILES).default('fapi2-security'),
    })
    .prefault({}),
  /**
   * Scopes beyond `openid` and `offline_access`, each with the software roles allowed to ask for it.
   * The description is what a customer reads on the consent screen and the dashboard: a text, or
   * texts by language with a default (`{ default: "Read account information", pt-BR: "…" }`).
   */
  scopes: z
    .record(
      z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope token (RFC 6749 §3.3)'),
      z.strictObject({
        description: localisedText(200),
        roles: z.array(z.string().min(1)).min(1),
      }),
    )
    .default({
      accounts: { description: 'Read account information', roles: ['AISP'] },
      payments: { description: 'Initiate payments', roles: ['PISP'] },
      fundsconfirmations: { description: 'Confirm availability of funds', roles: ['CBPII'] },
    }),
  /** Directories whose software statements are trusted for registration. */
  directories: z.array(directorySchema).default([]),
  resourceServers: z.array(resourceServerSchema).default([]),
  tokens: z
    .strictObject({
      /** FAPI 2.0 SP §5.3.2.1: authorization codes live at most 60 s. */
      authorizationCodeTtl: seconds(60).default(60),
      accessTokenTtl: seconds(86400).default(300),
      clientCredentialsTtl: seconds(86400).default(300),
      idTokenTtl: seconds(86400).default(300),
      refreshTokenTtl: seconds(400 * 86400).default(90 * 86400),
      grantTtl: seconds(400 * 86400).default(90 * 86400),
      sessionTtl: seconds(86400).default(3600),
      interactionTtl: seconds(3600).default(600),
      /** FAPI 2.0 SP §5.3.2.1 discourages rotation; when on, the old token is refused after use. */
      refreshTokenRotation: z.boolean().default(false),
    })
    .prefault({}),
  certificates: z
    .strictObject({
      revocation: z
        .strictObject({
          /** How often every active TPP certificate is re-checked (OCSP, then CRL), in seconds. */
          checkIntervalSeconds: seconds(86400).default(300),
          /** Per request to an OCSP responder or CRL server, in milliseconds. */
          timeoutMs: z.number().int().min(100).max(60000).default(5000),
          /**
           * When revocation status cannot be learned (responders down, no pointers): `closed` refuses the
           * certificate, `open` accepts it. Unset: closed in production, open in the sandbox.
           */
          failMode: z.enum(['open', 'closed']).optional(),
        })
        .prefault({}),
      /** Days before expiry at which a TPP certificate is reported (log, CLI, metrics). */
      expiryWarningDays: z.array(z.number().int().positive().max(365)).default([30, 14, 7, 1]),
      /**
       * Expiry notices to TPPs: at each warning horizon, a Security Event Token (RFC 8417) signed with
       * Moat's published keys is POSTed (RFC 8935) to the `moat_notification_uri` each client registered.
       */
      expiryNotices: z
        .strictObject({
          enabled: z.boolean().default(true),
          /** Per delivery attempt, in milliseconds: a hanging endpoint is given up on after this. */
          timeoutMs: z.number().int().min(100).max(60000).default(5000),
          /** Attempts before a notice is marked failed (the operator still sees it). */
          maxAttempts: z.number().int().min(1).max(50).default(8),
          /** The first retry waits this long, each next one twice as long (capped at six hours), in seconds. */
          retryBaseSeconds: seconds(86400).default(60),
          /** How often due notices are delivered, in seconds. */
          deliveryIntervalSeconds: seconds(3600).default(30),
          /** A CA (PEM file) to trust for notification endpoints besides the system's (a private or test receiver). */
          caFile: z.string().min(1).optional(),
          /**
           * Endpoints on loopback, private, link-local and other non-public addresses are refused in
           * production (a registered URL must not have Moat post into the bank's network: SSRF); the
           * sandbox allows them. These addresses or CIDR blocks are allowed anyway (a TPP simulator
           * inside the bank's network, a test receiver).
           */
          allowedPrivateTargets: z.array(addressBlock).default([]),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Requests per window on the endpoints a TPP can hammer, per client certificate and per address. */
  rateLimits: z
    .strictObject({
      par: endpointLimits(60, 600),
      token: endpointLimits(120, 1200),
      registration: endpointLimits(10, 60),
      /** CIBA's backchannel authentication endpoint: each request may notify a customer's bank app. */
      backchannel: endpointLimits(30, 300),
    })
    .prefault({}),
  /** TPP threat detection: learned baselines per client, flags with explanations, responses. */
  threats: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** The counting window: one count per signal per bucket is learned. */
      bucketSeconds: z.number().int().min(1).max(3600).default(60),
      /** Buckets learned before a client's baseline is judged (default: two days of minutes, so each hour of the day has its own level). */
      warmupBuckets: z.number().int().min(1).default(2880),
      /** Buckets over which the level and spread adapt (EWMA span). */
      spanBuckets: z.number().int().min(2).default(60),
      /** Buckets of an hour of the day seen before that hour's own level is expected (default: two days of minutes). */
      hourlyMinimumBuckets: z.number().int().min(1).default(120),
      /** Spreads above normal from which a bucket is flagged at each severity. */
      scores: z
        .strictObject({
          low: z.number().positive().default(6),
          medium: z.number().positive().default(10),
          high: z.number().positive().default(20),
        })
        .prefault({})
        .refine((t) => t.low <= t.medium && t.medium <= t.high, 'expected low ≤ medium ≤ high'),
      /** What happens to a client flagged at each severity. */
      responses: z
        .strictObject({
          low: threatResponse.default('log'),
          medium: threatResponse.default('step-up'),
          high: threatResponse.default('quarantine'),
        })
        .prefault({}),
      /** Fixed per-bucket thresholds (judged from the first request): a storm of invalid_grant is never normal. */
      rules: z
        .strictObject({
          invalidGrantPerBucket: z.number().int().min(1).default(20),
          probingPerBucket: z.number().int().min(1).default(10),
          certificateFailuresPerBucket: z.number().int().min(1).default(20),
          loginFailuresPerRangePerBucket: z.number().int().min(1).default(30),
        })
        .prefault({}),
      stepUp: z
        .strictObject({
          durationSeconds: seconds(30 * 86_400).default(86_400),
          accessTokenTtl: seconds(3600).default(300),
        })
        .prefault({}),
    })
    .prefault({}),
  /** The check endpoint API gateways call before each bank API request (src/config/gateway-check-schema.ts). */
  gatewayCheck: gatewayCheckSchema.optional(),
  /** The admin listener (metrics; more admin endpoints to come), apart from the public one. */
  admin: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Loopback by default: metrics are for the bank's monitoring, not the internet. */
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(9464),
      /**
       * A file holding the bearer token every admin request must carry. Production needs this or
       * `tls`, wherever the listener binds: on loopback too, any web page open in a browser on the
       * host could otherwise drive it. Unset in sandbox mode (and no `tls`): `<dataDir>/admin.token`,
       * created with a random token on first start (mode 0600), where the CLI finds it.
       */
      tokenFile: z.string().min(1).optional(),
      /**
       * Host names the listener answers to besides loopback (localhost, 127.0.0.1, [::1]), `host`
       * and the address a request came in on: a Service's DNS name, say. Any other Host header is
       * refused (421), so a DNS-rebound name in a browser cannot read the listener.
       */
      allowedHosts: z
        .array(
          z
            .string()
            .min(1)
            .regex(/^[^\s/:@]+$|^\[[0-9a-fA-F:.]+\]$/, 'expected a host name or IP address, without a port'),
        )
        .default([]),
      /**
       * Operator-certificate mTLS: the admin listener serves HTTPS with this certificate and accepts a
       * request whose client certificate chains to one of `clientCaFiles`, is within its validity and
       * allows clientAuth. With `tokenFile` too, either the token or the certificate suffices (an
       * operator's tooling need not carry both). Production needs this or `tokenFile`.
       */
      tls: z
        .strictObject({
          certFile: z.string().min(1),
          keyFile: z.string().min(1),
          /** PEM files of the operator CAs; separate from `trustAnchors`, so no TPP certificate is an operator's. */
          clientCaFiles: z.array(z.string().min(1)).min(1),
          /** RFC 4514 subject DNs allowed in (compared by RFC 4517 distinguishedNameMatch); unset: any from the operator CAs. */
          allowedSubjects: z.array(z.string().min(1)).min(1).optional(),
          /**
           * CRL files (PEM or DER) of the operator CAs, read again whenever a file changes: publishing a
           * CRL that lists an operator's certificate locks them out without a restart. A CRL past its
           * nextUpdate refuses its CA's certificates until a current one is published (fail closed).
           */
          crlFiles: z.array(z.string().min(1)).min(1).optional(),
        })
        .optional(),
    })
    .prefault({}),
  /**
   * The bank's look on every customer page. Its texts (name, contact, charges) are each a text for
   * every language or texts by language tag with a default (config/localised-text.ts), shown in the
   * customer's language.
   */
  branding: z
    .strictObject({
      bankName: localisedText(60).default('Moat Bank'),
      /** PNG, JPEG or SVG shown in the page header; the bank name alone when unset. */
      logoFile: z
        .string()
        .regex(/\.(png|jpe?g|svg)$/i, 'expected a .png, .jpg or .svg file')
        .optional(),
      /** Header and button colour, and the text colour on it (WCAG 2.1 AA contrast is enforced). */
      primaryColor: hexColor.default('#0b3d5c'),
      primaryTextColor: hexColor.default('#ffffff'),
      /**
       * How customers reach the bank, on every error page (OBIE CEG: the customer is told whom to
       * contact): a phone number or a web address. Unset: "the number on the back of your card".
       */
      contact: localisedText(200).optional(),
      /**
       * What the bank charges for a payment a TPP initiates, shown before the customer confirms it
       * (PSD2 Art. 45(1)(b), OBIE CEG payment screen). Unset: "None", in the page's language.
       */
      paymentCharges: localisedText(200).optional(),
      /**
       * The bank's time zone (IANA, such as Europe/London or America/Sao_Paulo): customer pages say
       * dates and times in it, in the customer's locale — the day a consent ends, when a TPP last used
       * it, the day a payment is made. UTC by default.
       */
      timeZone: z.string().refine(isTimeZone, 'expected an IANA time zone such as Europe/London or America/Sao_Paulo').default('UTC'),
      // (A malformed colour is reported by its own key; the contrast is judged only between valid ones.)
    })
    .refine((b) => !HEX_COLOR.test(b.primaryColor) || !HEX_COLOR.test(b.primaryTextColor) || contrastRatio(b.primaryColor, b.primaryTextColor) >= 4.5, {
      message: 'primaryTextColor on primaryColor must have a contrast ratio of at least 4.5:1 (WCAG 2.1 AA)',
      path: ['primaryTextColor'],
    })
    .prefault({}),
  customers: z
    .strictObject({
      /**
       * Who authenticates the bank's customers: `local` (the built-in customer table, the sandbox's
       * demo customers) or `oidc` (the bank's own OpenID Provider, with Moat as its relying party).
       */
      source: z.enum(['local', 'oidc']).default('local'),
      /** The bank's OpenID Provider; required when `source` is `oidc`. */
      oidc: upstreamIdpSchema.optional(),
      loginThrottle: z
        .strictObject({
          perAccount: z
            .strictObject({
              failures: z.number().int().min(1).max(100).default(5),
              lockSeconds: seconds(86400).default(900),
            })
            .prefault({}),
          perAddress: z
            .strictObject({
              failures: z.number().int().min(1).max(100000).default(50),
              windowSeconds: seconds(86400).default(900),
              lockSeconds: seconds(86400).default(900),
            })
            .prefault({}),
        })
        .prefault({}),
      /** Idle lifetime of a customer's consent-dashboard session, in seconds. */
      dashboardSessionTtl: seconds(3600).default(900),
    })
    .prefault({}),
  /**
   * Strong customer authentication (PSD2 RTS on SCA, Commission Delegated Regulation (EU)
   * 2018/389). README "Strong customer authentication (SCA)" says which factor counts as what.
   */
  sca: z
    .strictObject({
      /**
       * RTS Art. 10a: account access may go on without a new SCA for at most this many days after the
       * last one; then the consent's refresh tokens are refused until the customer authenticates again.
       */
      accountAccessReauthDays: z.number().int().min(1).max(180).default(180),
      /** RFC 6238 one-time codes from an authenticator app, the second factor after the password. */
      totp: z
        .strictObject({
          /** Off means customers sign in with a password alone (not SCA): production refuses to start. */
          enabled: z.boolean().default(true),
          /**
           * 32 bytes, base64url: encrypts the shared secrets at rest (AES-256-GCM). Or encryptionKeyFile.
           * Unset in sandbox mode: `<keys.dir>/totp-encryption.key`, generated on first start.
           */
          encryptionKey: z
            .string()
            .regex(/^[A-Za-z0-9_-]{43}$/, 'expected 32 bytes, base64url-encoded (43 characters)')
            .optional(),
          encryptionKeyFile: z.string().min(1).optional(),
          /** Time steps accepted either side of now (RFC 6238 §5.2 allows one for clock drift and typing time). */
          window: z.number().int().min(0).max(2).default(1),
          /** Wrong codes in a row before the second step locks for the customer (like passwords). */
          failures: z.number().int().min(1).max(20).default(5),
          lockSeconds: seconds(86400).default(900),
          /** The name an authenticator app shows for the entry. */
          issuerLabel: z.string().min(1).max(64).default('Moat'),
        })
        .refine((t) => t.encryptionKey === undefined || t.encryptionKeyFile === undefined, {
          message: 'set encryptionKey or encryptionKeyFile, not both',
          path: ['encryptionKeyFile'],
        })
        .prefault({}),
    })
    .prefault({}),
  /** Where the customer's accounts come from (src/config/accounts-schema.ts). */
  accounts: accountsSchema,
  /**
   * Decoupled authorisation (OpenID Connect CIBA Core 1.0 under the FAPI-CIBA profile): a TPP asks the
   * bank to authenticate its customer on the bank's own app. Poll and ping modes; push is not allowed
   * by FAPI-CIBA §5.2.2.
   */
  ciba: z
    .strictObject({
      /**
       * Default: on in the sandbox, and in production only with `bankApp` — without the bank's app no
       * customer could approve a request (cibaEnabled). Production refuses `true` without `bankApp`.
       */
      enabled: z.boolean().optional(),
      /** CIBA Core §7.3 `interval`: the seconds a poll must wait after the previous one, else `slow_down`. */
      pollIntervalSeconds: seconds(60).default(5),
      /** How long a request waits for the customer when the TPP asks no `requested_expiry`, and the most it may ask. */
      maxExpirySeconds: seconds(3600).default(600),
      /** Ping mode (CIBA Core §10.2): calls to the TPP's client notification endpoint. */
      ping: z
        .strictObject({
          /** Calls before a notification is given up (the TPP can still poll the token endpoint). */
          maxAttempts: z.number().int().min(1).max(20).default(5),
          /** The wait before the second call; doubled for each further one. */
          retryBaseMs: z.number().int().min(10).max(60_000).default(1000),
          /** Per call, in milliseconds. */
          timeoutMs: z.number().int().min(100).max(60_000).default(5000),
          /** PEM file of CAs trusted for notification endpoints beside the system's (a sandbox TPP's own CA). */
          caFile: z.string().min(1).optional(),
        })
        .prefault({}),
      /**
       * The bank's own app (docs/bank-app.openapi.json): Moat tells it of each new request over mTLS, and
       * it completes the request at /bank-app/requests/{id}/decision presenting its client certificate.
       */
      bankApp: z
        .strictObject({
          notificationEndpoint: z.url().refine((u) => u.startsWith('https://'), 'must be https'),
          /** Moat's client certificate and key for the notification call (mTLS). */
          clientCertFile: z.string().min(1),
          clientKeyFile: z.string().min(1),
          /** PEM file of CAs trusted for the endpoint beside the system's. */
          caFile: z.string().min(1).optional(),
          /** The subject DN (RFC 4514) of the certificate the bank app presents at the callback; it must chain to trustAnchors. */
          callbackSubjectDn: z.string().min(1),
          timeoutMs: z.number().int().min(100).max(60_000).default(5000),
        })
        .optional(),
    })
    .prefault({}),
  consents: z
    .strictObject({
      /** How often authorised consents past their expiry are expired (and their tokens revoked), in seconds. */
      expiryCheckSeconds: seconds(3600).default(60),
      /**
       * How long account access asked with the accounts scope alone lasts, in days: the consent screen
       * says until when, and the consent expires then like one whose TPP sent an expirationDateTime
       * (OBIE CEG: the customer is told for how long). 90 days, the UK's reauthentication period.
       */
      scopeAccessDays: z.number().int().min(1).max(365).default(90),
    })
    .prefault({}),
  /**
   * TPP self-diagnosis: what Moat saw of each TPP call (certificate presented, which check failed,
   * expected against got), readable by that TPP over mTLS at /diagnostics/calls.
   */
  diagnostics: z
    .strictObject({
      /** Unset: on in sandbox mode, off in production (records hold certificate subjects and client ids). */
      enabled: z.boolean().optional(),
      /** How long a call record is kept, in seconds. */
      retentionSeconds: seconds(7 * 86_400).default(86_400),
      /** Calls kept per certificate and per client. */
      recentPerOwner: z.number().int().min(1).max(1000).default(50),
    })
    .prefault({}),
  /** The sandbox's self-service developer portal at /portal (sandbox mode only). */
  portal: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** How long created credentials stay downloadable from the browser that created them, in seconds. */
      downloadSeconds: seconds(86_400).default(3600),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
});

export type MoatConfig = z.infer<typeof configSchema>;
export type DirectoryConfig = MoatConfig['directories'][number];
export type ResourceServerConfig = MoatConfig['resourceServers'][number];
export type UpstreamIdpConfig = NonNullable<MoatConfig['customers']['oidc']>;
