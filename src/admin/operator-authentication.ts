import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { MoatConfig } from '../config/schema.ts';
import { OAuthError, type OperatorRefusalCode } from '../kernel/oauth-error.ts';
import { loadTrustAnchors, type ChainFailure, type TrustAnchors } from '../pki/certificate-chain.ts';
import { createClientCertificateResolver } from '../tls/client-certificate.ts';
import { distinguishedNamesEqual, formatDistinguishedName, parseDistinguishedName, type DistinguishedName } from '../pki/distinguished-name.ts';
import { loadOperatorRevocation, type OperatorRevocation } from './operator-revocation.ts';

/*
 * Who is calling the admin listener: an operator with a certificate from an operator CA (mTLS), or
 * one holding the admin token. With both configured either suffices, so a person's CLI can use a
 * certificate while a monitoring scraper keeps a token; a request that passes neither is refused
 * with the reason, never served. There is no listener without one of them: production requires it
 * (config/load.ts) and the sandbox generates its token (`createMissingToken`).
 */

/** The operator a request was authenticated as; `id` is what the audit log records as actorId. */
export type Operator = { via: 'certificate'; id: string } | { via: 'token'; id: 'admin-token' };

export type AdminAuthenticationCode = OperatorRefusalCode;

/** A request the admin listener refuses (401, from the kernel's code table); `description` is fit for the operator to read. */
export class AdminAuthenticationError extends OAuthError {
  declare readonly code: AdminAuthenticationCode;
  constructor(code: AdminAuthenticationCode, description: string) {
    super(code, description);
    this.name = 'AdminAuthenticationError';
  }
}

const CHAIN_FAILURE_CODES: Record<ChainFailure, AdminAuthenticationCode> = {
  'untrusted-chain': 'certificate_untrusted',
  expired: 'certificate_expired',
  'not-yet-valid': 'certificate_not_yet_valid',
  'not-for-client-auth': 'certificate_not_for_client_auth',
};

/** The admin listener's credentials, read once at start-up. */
export interface AdminCredentials {
  token?: string;
  tls?: {
    cert: Buffer;
    key: Buffer;
    /** The operator CAs (never the TPP trust anchors). */
    anchors: TrustAnchors;
    /** Parsed `admin.tls.allowedSubjects`; undefined admits any subject the operator CAs issued. */
    allowedSubjects?: DistinguishedName[];
    /** From `admin.tls.crlFiles`; undefined when the operator CAs publish no CRL to Moat. */
    revocation?: OperatorRevocation;
  };
}

/** Bytes of a generated admin token: 256 bits, as `openssl rand -hex 32` makes for production. */
const GENERATED_TOKEN_BYTES = 32;

/**
 * Creates the admin token file with a random token unless it exists, mode 0600. Written aside and
 * linked into place, so of several processes starting at once (cluster workers) one token wins and
 * every process reads that one.
 */
function createTokenFileIfMissing(file: string): void {
  if (existsSync(file)) return;
  mkdirSync(dirname(file), { recursive: true });
  const aside = `${file}.${process.pid}-${randomBytes(6).toString('hex')}`;
  writeFileSync(aside, `${randomBytes(GENERATED_TOKEN_BYTES).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(aside, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(aside);
  }
}

/**
 * Reads `admin.tokenFile` and `admin.tls`'s files; a file that cannot be used stops start-up naming
 * its key. With `createMissingToken` (the sandbox) a missing token file is created first.
 */
export async function loadAdminCredentials(admin: MoatConfig['admin'], options: { createMissingToken?: boolean } = {}): Promise<AdminCredentials> {
  const read = (key: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${key}: cannot read ${file} (${(err as Error).message})`, { cause: err });
    }
  };
  const credentials: AdminCredentials = {};
  if (admin.tokenFile !== undefined) {
    if (options.createMissingToken === true) {
      try {
        createTokenFileIfMissing(admin.tokenFile);
      } catch (err) {
        throw new Error(`admin.tokenFile: cannot create ${admin.tokenFile} (${(err as Error).message})`, { cause: err });
      }
    }
    credentials.token = read('admin.tokenFile', admin.tokenFile).toString('utf8').trim();
    if (credentials.token === '') throw new Error(`admin.tokenFile: ${admin.tokenFile} is empty`);
  }
  if (admin.tls !== undefined) {
    let anchors: TrustAnchors;
    try {
      anchors = loadTrustAnchors(admin.tls.clientCaFiles);
    } catch (err) {
      throw new Error(`admin.tls.clientCaFiles: ${(err as Error).message}`, { cause: err });
    }
    credentials.tls = {
      cert: read('admin.tls.certFile', admin.tls.certFile),
      key: read('admin.tls.keyFile', admin.tls.keyFile),
      anchors,
      ...(admin.tls.allowedSubjects === undefined ? {} : { allowedSubjects: admin.tls.allowedSubjects.map((dn) => parseDistinguishedName(dn)) }),
      ...(admin.tls.crlFiles === undefined ? {} : { revocation: await loadOperatorRevocation(admin.tls.crlFiles, anchors) }),
    };
  }
  if (credentials.token === undefined && credentials.tls === undefined) {
    throw new Error('admin.tokenFile or admin.tls: the admin listener needs operator authentication (a token file or operator certificates)');
  }
  return credentials;
}

/** Decides who a request is, or throws `AdminAuthenticationError` saying why it is refused. */
export type OperatorAuthenticator = (req: IncomingMessage) => Promise<Operator>;

export function createOperatorAuthenticator(credentials: AdminCredentials): OperatorAuthenticator {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  const expected = credentials.token === undefined ? undefined : digest(credentials.token);
  const tls = credentials.tls;
  // The same chain policy as TPP certificates (certificate-chain.ts), against the operator CAs; no
  // gateway may forward an operator's certificate, so no proxy is trusted.
  const presentedCertificate =
    tls === undefined
      ? undefined
      : createClientCertificateResolver({
          trustedProxies: [],
          format: 'rfc9440',
          anchors: tls.anchors,
        });

  return async (req) => {
    const [scheme, value] = (req.headers.authorization ?? '').split(' ');
    const bearer = scheme?.toLowerCase() === 'bearer' && value !== undefined && value !== '' ? value : undefined;
    if (expected !== undefined && bearer !== undefined && timingSafeEqual(digest(bearer), expected)) return { via: 'token', id: 'admin-token' };

    const presented = presentedCertificate?.(req);
    let certificateFailure: AdminAuthenticationError | undefined;
    if (presented !== undefined && tls !== undefined) {
      const subject = formatDistinguishedName(presented.subject);
      if (!presented.verification.trusted) {
        certificateFailure = new AdminAuthenticationError(
          CHAIN_FAILURE_CODES[presented.verification.reason],
          `operator certificate ${subject}: ${presented.verification.description}`,
        );
      } else if (tls.allowedSubjects !== undefined && !tls.allowedSubjects.some((dn) => distinguishedNamesEqual(dn, presented.subject))) {
        certificateFailure = new AdminAuthenticationError('subject_not_allowed', `operator certificate ${subject} is not in admin.tls.allowedSubjects`);
      } else {
        const revocation = await tls.revocation?.check(presented.certificate);
        if (revocation === undefined) return { via: 'certificate', id: subject };
        certificateFailure = new AdminAuthenticationError(revocation.code, `operator certificate ${subject}: ${revocation.description}`);
      }
    }
    // The most specific reason: a certificate presented says more than a token guessed.
    if (certificateFailure !== undefined) throw certificateFailure;
    if (bearer !== undefined && expected !== undefined) throw new AdminAuthenticationError('invalid_token', 'the bearer token is not the admin token');
    if (tls === undefined) throw new AdminAuthenticationError('invalid_token', 'the admin listener needs its bearer token');
    throw new AdminAuthenticationError(
      'certificate_required',
      expected === undefined
        ? 'the admin listener needs an operator client certificate (TLS) issued by an operator CA'
        : 'the admin listener needs an operator client certificate (TLS) or its bearer token',
    );
  };
}
