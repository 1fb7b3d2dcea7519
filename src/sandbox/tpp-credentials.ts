import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { calculateJwkThumbprint, exportJWK, importJWK, importPKCS8, SignJWT, type JWK } from 'jose';
import { formatDistinguishedName, subjectOf } from '../pki/distinguished-name.ts';
import type { Psd2Role } from '../certificates/psd2-qc-statement.ts';
import { certificateProfile } from '../certificates/certificate-profile.ts';
import * as x509 from '../pki/x509.ts';
import { issueLeaf } from './certificate-issuing.ts';
import type { SandboxMaterial } from './sandbox-material.ts';

/*
 * Everything a sandbox TPP needs to register and get a token: a transport certificate from the
 * sandbox TPP CA (UK Open Banking style subject: CN=software_id, OU=org_id), a signing key, and a
 * software statement signed by the sandbox directory.
 */

/**
 * A sandbox software statement is issued once, with the credentials, and kept with them for every
 * later registration: it carries an exp a year ahead, and the sandbox directory takes it that long.
 */
export const SANDBOX_SSA_LIFETIME_SECONDS = 365 * 86_400;

/** Which scopes each software role may ask for in the sandbox (the defaults in config/schema.ts). */
const ROLE_SCOPES: Record<string, string> = { AISP: 'accounts', PISP: 'payments', CBPII: 'fundsconfirmations' };

export interface SandboxTppOptions {
  name: string;
  issuer: string;
  roles?: string[];
  redirectUris?: string[];
  orgId?: string;
  softwareId?: string;
  now?: Date;
  /**
   * eIDAS style: the PSD2 QCStatement with the roles (AISP → PSP_AI, PISP → PSP_PI, CBPII → PSP_IC)
   * and the organizationIdentifier in the subject, as a QWAC carries them.
   */
  eidas?: boolean;
  /** The roles in the certificate's QCStatement, when they differ from the SSA's (the regulator's word). */
  certificateRoles?: string[];
  /** The TPP's logo, vouched for in the statement (software_logo_uri): the one the consent page shows. */
  logoUri?: string;
  /** Revocation pointers put in the transport certificate (the sandbox's own, or a test's). */
  ocspUrl?: string;
  crlUrl?: string;
}

/*
 * A sandbox TPP's name: printable, no control characters and nothing markup-looking. It goes into a
 * certificate subject and the software statement, and from there into pages, logs and the
 * operator's terminal. The portal's form and `moat sandbox tpp --name` both ask this.
 */
const TPP_NAME = /^[\p{L}\p{N} .,&'()-]{2,60}$/u;

/** Why a sandbox TPP name is refused, in words for the person who typed it; undefined when it is fine. */
export function sandboxTppNameProblem(name: string): string | undefined {
  return TPP_NAME.test(name) ? undefined : "Give a name of 2 to 60 letters, digits, spaces or . , & ' ( ) -";
}

const PSD2_ROLE_FOR: Record<string, Psd2Role> = { AISP: 'PSP_AI', PISP: 'PSP_PI', CBPII: 'PSP_IC' };

export interface SandboxTpp {
  name: string;
  issuer: string;
  orgId: string;
  softwareId: string;
  roles: string[];
  redirectUris: string[];
  transportCertPem: string;
  transportKeyPem: string;
  subjectDn: string;
  thumbprint: string;
  signingJwks: { keys: (JWK & { kid: string })[] };
  publicSigningJwks: { keys: JWK[] };
  ssa: string;
  serverCaPem: string;
  /** The sandbox directory's public keys, so a TPP (and `moat diagnose`) can check the SSA's signature. */
  directoryJwks: { keys: JWK[] };
  registration: Record<string, unknown>;
}

function id(prefix: string): string {
  return `${prefix}${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
}

export async function issueSandboxTpp(material: SandboxMaterial, options: SandboxTppOptions): Promise<SandboxTpp> {
  const now = options.now ?? new Date();
  const roles = options.roles ?? ['AISP', 'PISP'];
  const redirectUris = options.redirectUris ?? ['https://localhost:3000/callback'];
  const orgId = options.orgId ?? id('sbx-org-');
  const softwareId = options.softwareId ?? id('sbx-sw-');

  const transport = await issueLeaf(
    { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem },
    {
      subject: [
        { C: ['GB'] },
        { O: [options.name] },
        { OU: [orgId] },
        ...(options.eidas === true ? [{ '2.5.4.97': [`PSDGB-SBX-${orgId}`] }] : []),
        { CN: [softwareId] },
      ],
      usage: 'clientAuth',
      now,
      ...(options.ocspUrl === undefined ? {} : { ocspUrl: options.ocspUrl }),
      ...(options.crlUrl === undefined ? {} : { crlUrl: options.crlUrl }),
      ...(options.eidas === true
        ? {
            psd2: {
              roles: (options.certificateRoles ?? roles).flatMap((r) => (PSD2_ROLE_FOR[r] === undefined ? [] : [PSD2_ROLE_FOR[r]])),
              ncaName: 'Moat Sandbox Authority',
              ncaId: 'GB-SBX',
            },
          }
        : {}),
    },
  );
  const subjectDn = formatDistinguishedName(subjectOf(transport.certificate));

  // The signing key comes with a signing certificate from the sandbox CA (x5c), as a QSealC would:
  // the registry records signing certificates next to transport ones.
  const signing = await issueLeaf(
    { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem },
    {
      subject: [{ C: ['GB'] }, { O: [options.name] }, { OU: [orgId] }, { CN: [`${softwareId} signing`] }],
      usage: 'signing',
      now,
    },
  );
  const signingJwk = await exportJWK(await importPKCS8(signing.keyPem, 'ES256', { extractable: true }));
  const kid = await calculateJwkThumbprint(signingJwk);
  const x5c = [Buffer.from(signing.certificate.raw).toString('base64')];
  const privateSigning = { ...signingJwk, kid, alg: 'ES256', use: 'sig', x5c };
  const { d: _d, ...publicSigning } = privateSigning;

  const directoryKey = await importJWK(material.directory.privateJwk, material.directory.privateJwk.alg);
  const iat = Math.floor(now.getTime() / 1000);
  const ssa = await new SignJWT({
    software_id: softwareId,
    software_client_id: softwareId,
    software_client_name: options.name,
    software_version: '1.0',
    software_roles: roles,
    software_redirect_uris: redirectUris,
    software_jwks: { keys: [publicSigning] },
    ...(options.logoUri === undefined ? {} : { software_logo_uri: options.logoUri }),
    org_id: orgId,
    org_name: options.name,
    org_status: 'Active',
  })
    .setProtectedHeader({ alg: material.directory.privateJwk.alg, kid: material.directory.privateJwk.kid, typ: 'JWT' })
    .setIssuer(material.directory.issuer)
    .setIssuedAt(iat)
    .setJti(randomBytes(16).toString('base64url'))
    .setExpirationTime(iat + SANDBOX_SSA_LIFETIME_SECONDS)
    .sign(directoryKey);

  const scopes = ['openid', ...roles.flatMap((r) => (ROLE_SCOPES[r] === undefined ? [] : [ROLE_SCOPES[r]]))];
  return {
    name: options.name,
    issuer: options.issuer,
    orgId,
    softwareId,
    roles,
    redirectUris,
    transportCertPem: transport.certPem,
    transportKeyPem: transport.keyPem,
    subjectDn,
    thumbprint: createHash('sha256').update(transport.certificate.raw).digest('base64url'),
    signingJwks: { keys: [privateSigning] },
    publicSigningJwks: { keys: [publicSigning] },
    ssa,
    serverCaPem: material.serverCaPem,
    directoryJwks: material.directory.publicJwks,
    registration: {
      software_statement: ssa,
      redirect_uris: redirectUris,
      token_endpoint_auth_method: 'tls_client_auth',
      tls_client_auth_subject_dn: subjectDn,
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      scope: scopes.join(' '),
      tls_client_certificate_bound_access_tokens: true,
      id_token_signed_response_alg: 'PS256',
    },
  };
}

export const TPP_FILES = {
  transportCert: 'transport.pem',
  transportKey: 'transport.key',
  signingJwks: 'signing.jwks.json',
  publicSigningJwks: 'signing.public.jwks.json',
  ssa: 'ssa.jwt',
  serverCa: 'server-ca.pem',
  directoryJwks: 'directory.public.jwks.json',
  registration: 'registration.json',
  summary: 'tpp.json',
} as const;

export interface TppFile {
  name: string;
  content: string;
  /** Private key material: written 0600, served only to the browser that created it. */
  secret: boolean;
}

/** The credential files, as `moat sandbox tpp` writes them and the portal serves them. */
export function sandboxTppFiles(tpp: SandboxTpp): TppFile[] {
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  return [
    { name: TPP_FILES.transportCert, content: tpp.transportCertPem, secret: false },
    { name: TPP_FILES.transportKey, content: tpp.transportKeyPem, secret: true },
    { name: TPP_FILES.signingJwks, content: json(tpp.signingJwks), secret: true },
    { name: TPP_FILES.publicSigningJwks, content: json(tpp.publicSigningJwks), secret: false },
    { name: TPP_FILES.ssa, content: `${tpp.ssa}\n`, secret: false },
    { name: TPP_FILES.serverCa, content: tpp.serverCaPem, secret: false },
    { name: TPP_FILES.directoryJwks, content: json(tpp.directoryJwks), secret: false },
    { name: TPP_FILES.registration, content: json(tpp.registration), secret: false },
  ];
}

/** What tpp.json says: the TPP's identifiers, and where each file is (`locate` gives its path). */
export function sandboxTppSummary(tpp: SandboxTpp, locate: (file: string) => string): Record<string, unknown> {
  return {
    name: tpp.name,
    issuer: tpp.issuer,
    registration_endpoint: `${tpp.issuer}/register`,
    org_id: tpp.orgId,
    software_id: tpp.softwareId,
    software_roles: tpp.roles,
    redirect_uris: tpp.redirectUris,
    tls_client_auth_subject_dn: tpp.subjectDn,
    'x5t#S256': tpp.thumbprint,
    files: Object.fromEntries(Object.entries(TPP_FILES).map(([k, f]) => [k, locate(f)])),
    next: [
      `curl --cacert ${locate(TPP_FILES.serverCa)} --cert ${locate(TPP_FILES.transportCert)} --key ${locate(TPP_FILES.transportKey)} -H 'content-type: application/json' --data @${locate(TPP_FILES.registration)} ${tpp.issuer}/register`,
    ],
  };
}

/** Writes the credentials to `outDir` (private material 0600) and returns the summary written to tpp.json. */
export function writeSandboxTpp(tpp: SandboxTpp, outDir: string): Record<string, unknown> {
  const dir = resolve(outDir);
  mkdirSync(dir, { recursive: true });
  for (const file of sandboxTppFiles(tpp)) writeFileSync(join(dir, file.name), file.content, { mode: file.secret ? 0o600 : 0o644 });
  const summary = sandboxTppSummary(tpp, (file) => join(dir, file));
  writeFileSync(join(dir, TPP_FILES.summary), `${JSON.stringify(summary, null, 2)}\n`, { mode: 0o644 });
  return summary;
}

/** The sandbox TPP CA did not issue the certificate given for renewal. */
export class NotASandboxCertificate extends Error {
  constructor() {
    super("this certificate was not issued by this sandbox's TPP CA; renew it with the CA that issued it");
    this.name = 'NotASandboxCertificate';
  }
}

export const NEXT_TRANSPORT_FILES = { cert: 'transport.next.pem', key: 'transport.next.key' } as const;

/**
 * The next transport certificate for a sandbox TPP: a new key, the same subject (so the client's
 * tls_client_auth_subject_dn still matches) and PSD2 attributes, from the sandbox TPP CA. The TPP
 * then presents it in an RFC 7592 update, which registers it beside the current one.
 */
export async function renewSandboxTransport(
  material: SandboxMaterial,
  currentPem: string,
  options: { now?: Date; ocspUrl?: string; crlUrl?: string } = {},
): Promise<{ certPem: string; keyPem: string; thumbprint: string; subjectDn: string; notAfter: Date }> {
  const current = new X509Certificate(currentPem);
  const ca = new X509Certificate(material.tppCaPem);
  if (!current.checkIssued(ca) || !current.verify(ca.publicKey)) throw new NotASandboxCertificate();
  const psd2 = certificateProfile(current).psd2;
  const next = await issueLeaf(
    { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem },
    {
      subject: new x509.X509Certificate(current.raw).subjectName.toJSON(),
      usage: 'clientAuth',
      now: options.now ?? new Date(),
      ...(options.ocspUrl === undefined ? {} : { ocspUrl: options.ocspUrl }),
      ...(options.crlUrl === undefined ? {} : { crlUrl: options.crlUrl }),
      ...(psd2 === undefined ? {} : { psd2: { roles: psd2.roles as Psd2Role[], ncaName: psd2.ncaName, ncaId: psd2.ncaId } }),
    },
  );
  return {
    certPem: next.certPem,
    keyPem: next.keyPem,
    thumbprint: createHash('sha256').update(next.certificate.raw).digest('base64url'),
    subjectDn: formatDistinguishedName(subjectOf(next.certificate)),
    notAfter: new Date(next.certificate.validTo),
  };
}
