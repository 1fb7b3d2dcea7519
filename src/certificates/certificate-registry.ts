import type { CertificateProfile } from './certificate-profile.ts';

/*
 * The TPP certificate registry as the rest of Moat needs it. A certificate is `active` until it is
 * `retired` (replaced in a rotation) or `revoked` (by OCSP, a CRL, the directory or an operator);
 * neither of those authenticates a client or keeps a token bound to it alive.
 */

export const CERTIFICATE_STATUSES = ['active', 'retired', 'revoked'] as const;
export type CertificateStatus = (typeof CERTIFICATE_STATUSES)[number];
export type CertificateUsage = 'transport' | 'signing';
export type RevocationSource = 'ocsp' | 'crl' | 'directory' | 'operator';

export interface RegisteredCertificate extends Omit<CertificateProfile, 'pem'> {
  orgId: string;
  usage: CertificateUsage;
  status: CertificateStatus;
  revokedAt?: Date;
  revocationSource?: RevocationSource;
  revocationReason?: string;
  lastCheckedAt?: Date;
  lastCheckResult?: string;
  clients: string[];
  pem: string;
  issuerPem?: string;
}

export interface CertificateEvent {
  thumbprint: string;
  event: string;
  detail: Record<string, unknown>;
  at: Date;
}

export interface TppOrganisation {
  orgId: string;
  name: string;
  directoryIssuer: string;
  status: string;
  clients: { clientId: string; softwareId: string }[];
}

export interface CertificateRegistry {
  /** Records a certificate (idempotent) and links it to a client when given. */
  register(profile: CertificateProfile, link: { orgId: string; usage: CertificateUsage; clientId?: string; issuerPem?: string }): Promise<void>;
  /** The status of a registered certificate; undefined for one the registry does not know. */
  statusOf(thumbprint: string): Promise<{ status: CertificateStatus; lastCheckResult?: string } | undefined>;
  find(thumbprint: string): Promise<RegisteredCertificate | undefined>;
  list(filter?: { orgId?: string; status?: CertificateStatus; clientId?: string }): Promise<RegisteredCertificate[]>;
  /** Marks it revoked; false when it already was (or is unknown). */
  revoke(thumbprint: string, by: { source: RevocationSource; reason: string; at?: Date }): Promise<boolean>;
  /** Marks an active certificate retired (rotation done); false otherwise. */
  retire(thumbprint: string, reason: string): Promise<boolean>;
  recordCheck(thumbprint: string, result: string): Promise<void>;
  recordEvent(thumbprint: string, event: string, detail: Record<string, unknown>): Promise<void>;
  /** Active certificates expiring before `before`, soonest first. */
  expiring(before: Date): Promise<RegisteredCertificate[]>;
  events(thumbprint: string): Promise<CertificateEvent[]>;
  organisations(): Promise<TppOrganisation[]>;
}
