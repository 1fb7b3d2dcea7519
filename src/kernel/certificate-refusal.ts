/*
 * Why the TPP certificate registry refuses a presented certificate, as a code the edges branch on
 * (the mTLS outcome, a bound token's rejection) and a sentence for the caller's error_description.
 */
export type CertificateRefusalCode = 'revoked' | 'retired' | 'revocation_unknown';

export interface CertificateRefusal {
  code: CertificateRefusalCode;
  description: string;
}

/** The mTLS outcome (metrics label, call record) of a refused certificate. */
export const MTLS_OUTCOME_OF_REFUSAL: Readonly<Record<CertificateRefusalCode, string>> = {
  revoked: 'mtls_certificate_revoked',
  retired: 'mtls_certificate_retired',
  revocation_unknown: 'mtls_revocation_unknown',
};
