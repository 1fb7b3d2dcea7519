import { z } from 'zod';
import { AUDIT_EVENT_TYPES } from '../audit/audit-log.ts';
import { CERTIFICATE_STATUSES } from '../certificates/certificate-registry.ts';
import { CONSENT_STATUSES } from '../consents/consent.ts';

/*
 * The admin API's requests and answers as zod schemas: every route validates what it reads with
 * them, every answer is shaped by them (a domain object's other fields never leave the listener),
 * and docs/admin-api.openapi.json is generated from them (admin-openapi.ts). Dates travel as
 * RFC 3339 strings. Where a value is open by nature (an audit record's detail, the authorization
 * details a TPP lodged) the schema says so rather than guessing.
 */

const dateTime = z.iso.datetime({ offset: true });
const seconds = (name: string, max = 9_999_999_999) =>
  z
    .string()
    .regex(/^\d{1,10}$/, `${name} must be a number of seconds`)
    .transform(Number)
    .refine((n) => n <= max, `${name} must be at most ${max} seconds`);
const optionalText = z.string().min(1).optional();
const isoDate = (name: string) => z.string().refine((s) => !Number.isNaN(new Date(s).getTime()), `${name} must be an ISO 8601 date-time`);

// ---- requests -------------------------------------------------------------------------------

/** Every change is recorded in the audit log with the operator's reason. */
export const reasonBody = z.object({
  reason: z
    .string({ error: 'send {"reason": "..."}: it is recorded in the audit log' })
    .trim()
    .min(1, 'send {"reason": "..."}: it is recorded in the audit log')
    .max(1000, 'reason is at most 1000 characters'),
});

export const stepUpBody = reasonBody.extend({
  seconds: z
    .number({ error: 'seconds must be a whole number of seconds up to 30 days' })
    .int('seconds must be a whole number of seconds up to 30 days')
    .min(1, 'seconds must be a whole number of seconds up to 30 days')
    .max(30 * 86_400, 'seconds must be a whole number of seconds up to 30 days')
    .default(86_400),
});

export const releaseBody = reasonBody.extend({
  kind: z.enum(['quarantine', 'step-up'], { error: 'kind must be quarantine or step-up' }).default('quarantine'),
});

export const certificatesQuery = z
  .object({
    status: z.enum(CERTIFICATE_STATUSES, { error: `status must be one of ${CERTIFICATE_STATUSES.join(', ')}` }).optional(),
    org: optionalText,
    client: optionalText,
    /** Active certificates expiring within that many seconds, soonest first (`moat certs expiring`). */
    expiringWithin: seconds('expiringWithin').optional(),
  })
  .refine((q) => q.expiringWithin === undefined || (q.status === undefined && q.org === undefined && q.client === undefined), {
    message: 'expiringWithin cannot be combined with other filters',
    path: ['expiringWithin'],
  });

export const renewalsQuery = z.object({ within: seconds('within').optional() });

export const consentsQuery = z
  .object({ customer: optionalText, client: optionalText })
  .refine((q) => (q.customer === undefined) !== (q.client === undefined), { message: 'filter by exactly one of customer or client', path: ['customer'] });

export const flagsQuery = z.object({
  client: optionalText,
  since: isoDate('since').optional(),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, 'limit must be a number up to 9999')
    .transform(Number)
    .optional(),
});

export const restrictionsQuery = z.object({
  client: optionalText,
  all: z.enum(['1', 'true', '0', 'false'], { error: 'all is 1, true, 0 or false' }).optional(),
});

export const auditQuery = z.object({
  client: optionalText,
  org: optionalText,
  customer: optionalText,
  type: z.enum(AUDIT_EVENT_TYPES, { error: `type must be one of ${AUDIT_EVENT_TYPES.join(', ')}` }).optional(),
  since: isoDate('since').optional(),
  until: isoDate('until').optional(),
  limit: z
    .string()
    .regex(/^\d{1,5}$/, 'limit must be a number up to 99999')
    .transform((n) => Math.max(1, Number(n)))
    .optional(),
});

// ---- answers --------------------------------------------------------------------------------

export const errorAnswer = z.object({ error: z.string(), error_description: z.string() });

export const organisation = z.object({
  orgId: z.string(),
  name: z.string(),
  directoryIssuer: z.string(),
  status: z.string(),
  clients: z.array(z.object({ clientId: z.string(), softwareId: z.string() })),
});

/** A registered certificate: never its PEM (nor its issuer's). */
export const certificate = z.object({
  thumbprint: z.string(),
  subjectDn: z.string(),
  issuerDn: z.string(),
  serial: z.string(),
  sans: z.array(z.string()),
  notBefore: dateTime,
  notAfter: dateTime,
  keyType: z.string(),
  keySize: z.number().int(),
  organizationIdentifier: z.string().optional(),
  psd2: z.object({ roles: z.array(z.string()), ncaName: z.string(), ncaId: z.string() }).optional(),
  ocspUrls: z.array(z.string()),
  crlUrls: z.array(z.string()),
  orgId: z.string(),
  usage: z.enum(['transport', 'signing']),
  status: z.enum(CERTIFICATE_STATUSES),
  revokedAt: dateTime.optional(),
  revocationSource: z.enum(['ocsp', 'crl', 'directory', 'operator']).optional(),
  revocationReason: z.string().optional(),
  lastCheckedAt: dateTime.optional(),
  lastCheckResult: z.string().optional(),
  clients: z.array(z.string()),
});

export const certificateWithEvents = certificate.extend({
  events: z.array(z.object({ thumbprint: z.string(), event: z.string(), detail: z.record(z.string(), z.unknown()), at: dateTime })),
});

export const certificateChange = z.object({
  thumbprint: z.string(),
  status: z.enum(['revoked', 'retired']),
  /** For a revocation: false when it already was revoked. */
  changed: z.boolean().optional(),
});

const expiryNotice = z.object({
  thumbprint: z.string(),
  clientId: z.string(),
  horizonDays: z.number().int(),
  endpoint: z.string().optional(),
  status: z.string(),
  jti: z.string(),
  daysLeft: z.number().int(),
  attempts: z.number().int(),
  nextAttemptAt: dateTime,
  lastError: z.string().optional(),
  deliveredAt: dateTime.optional(),
  createdAt: dateTime,
});

export const unrenewedCertificate = z.object({
  thumbprint: z.string(),
  orgId: z.string(),
  subjectDn: z.string(),
  usage: z.enum(['transport', 'signing']),
  notAfter: dateTime,
  daysLeft: z.number().int(),
  clients: z.array(z.object({ clientId: z.string(), notices: z.array(expiryNotice) })),
});

const describedValue = z.union([z.object({ value: z.unknown() }), z.object({ secret: z.literal(true), digest: z.string() })]);

export const configDescription = z.object({
  instanceId: z.string(),
  hash: z.string(),
  salt: z.string(),
  keys: z.record(z.string(), describedValue),
});

export const deploymentInstances = z.object({
  configHash: z.string(),
  drift: z.boolean(),
  instances: z.array(
    z.object({
      instanceId: z.string(),
      configHash: z.string(),
      hostname: z.string(),
      pid: z.number().int(),
      startedAt: dateTime,
      lastSeenAt: dateTime,
    }),
  ),
});

export const consent = z.object({
  id: z.string(),
  kind: z.enum(['account_access', 'domestic_payment', 'scope']),
  origin: z.enum(['intent', 'authorization_details', 'scope']),
  clientId: z.string(),
  status: z.enum(CONSENT_STATUSES),
  customerId: z.string().optional(),
  grantId: z.string().optional(),
  /** The RFC 9396 authorization detail (or UK OB intent) as the TPP lodged it. */
  requested: z.record(z.string(), z.unknown()).optional(),
  /** What the customer granted: the requested detail narrowed to the chosen accounts. */
  granted: z.record(z.string(), z.unknown()).optional(),
  scope: z.string(),
  expiresAt: dateTime.optional(),
  /** How the customer was authenticated when authorising it (PSD2 RTS Art. 4, 5, 10a). */
  authentication: z
    .object({
      acr: z.string(),
      amr: z.array(z.string()),
      authTime: dateTime,
      link: z.record(z.string(), z.unknown()).optional(),
      linkHash: z.string().optional(),
    })
    .optional(),
  createdAt: dateTime,
  statusUpdatedAt: dateTime,
});

export const factorReset = z.object({
  customerId: z.string(),
  factor: z.enum(['totp', 'passkey']),
  /** true/false for the one-time code; the number of passkeys removed. */
  removed: z.union([z.boolean(), z.number().int()]),
});

export const threatFlag = z.object({
  id: z.number().int(),
  at: dateTime,
  entity: z.string(),
  clientId: z.string().optional(),
  signal: z.string(),
  severity: z.enum(['low', 'medium', 'high']),
  expected: z.number(),
  seen: z.number(),
  score: z.number().optional(),
  kind: z.enum(['baseline', 'rule']),
  explanation: z.string(),
  response: z.string(),
});

export const restriction = z.object({
  id: z.number().int(),
  clientId: z.string(),
  kind: z.enum(['quarantine', 'step-up']),
  reason: z.string(),
  flagId: z.number().int().optional(),
  since: dateTime,
  until: dateTime.optional(),
  createdBy: z.string(),
  releasedAt: dateTime.optional(),
  releasedBy: z.string().optional(),
});

export const auditRecord = z.object({
  seq: z.number().int(),
  at: dateTime,
  type: z.enum(AUDIT_EVENT_TYPES),
  actor: z.enum(['tpp', 'customer', 'operator', 'system']),
  actorId: z.string().optional(),
  clientId: z.string().optional(),
  orgId: z.string().optional(),
  customerId: z.string().optional(),
  subject: z.string().optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
  prevHash: z.string(),
  hash: z.string(),
});

export const chainVerdict = z.union([
  z.object({ intact: z.literal(true), records: z.number().int(), head: z.string() }),
  z.object({ intact: z.literal(false), records: z.number().int(), brokenAt: z.number().int(), reason: z.string() }),
]);

export const health = z.object({ status: z.literal('ok') });
