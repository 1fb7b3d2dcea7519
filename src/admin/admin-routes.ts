import { z } from 'zod';
import type { AuditLog } from '../audit/audit-log.ts';
import type { CertificateRegistry, RegisteredCertificate } from '../certificates/certificate-registry.ts';
import type { ExpiryNotices } from '../certificates/expiry-notices.ts';
import type { MetricsSource } from '../cluster/cluster.ts';
import type { ConfigDescription } from '../config/config-description.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import type { InstanceHeartbeat } from '../deployment/instance-heartbeat.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { PasskeyStore } from '../passkeys/passkey-store.ts';
import type { TotpFactor } from '../sca/totp-factor.ts';
import type { ClientRestrictions } from '../threats/client-restrictions.ts';
import * as schema from './admin-api-schemas.ts';
import { adminRouteFor, type AdminRoute } from './admin-route.ts';
import type { Operator } from './operator-authentication.ts';

/*
 * The admin API, route by route: what each reads and answers (admin-api-schemas.ts) and the
 * service call between them. Every change is audited as the operator who made it (certificate
 * subject DN, or admin-token) with the reason they gave.
 */

export interface AdminServices {
  metrics: MetricsSource;
  registry: CertificateRegistry;
  consents: ConsentService;
  audit: AuditLog;
  restrictions: ClientRestrictions;
  /** Customers' authentication factors, for the operator's reset (a lost phone). */
  factors?: { totp?: TotpFactor; customerExists(customerId: string): Promise<boolean> };
  /** Expiry notices to TPPs, when enabled: `GET /renewals` lists the TPPs that have not renewed. */
  notices?: ExpiryNotices;
  /** The warning horizons; the widest is the default window of `GET /renewals`. */
  expiryWarningDays?: readonly number[];
  /** The effective configuration (secrets as digests) and the deployment's instances, for `moat config plan`. */
  configuration?: { describe(): ConfigDescription; heartbeat: InstanceHeartbeat };
  passkeys: PasskeyStore;
}

const route = adminRouteFor<AdminServices>();
const by = (operator: Operator) => ({ actor: 'operator' as const, actorId: operator.id });
const audited = (deps: AdminServices, operator: Operator, action: string, detail: Record<string, unknown>) =>
  deps.audit.record({ type: 'admin.action', ...by(operator), detail: { action, ...detail } });

/** A certificate as the admin API shows it: never its PEM (nor its issuer's). */
function withoutPem({ pem: _pem, issuerPem: _issuer, ...certificate }: RegisteredCertificate): Omit<RegisteredCertificate, 'pem' | 'issuerPem'> {
  return certificate;
}

/** 404 for a customer the bank does not have: a typo must not look like a reset that found nothing. */
async function requireCustomer(deps: AdminServices, customerId: string): Promise<void> {
  if (deps.factors !== undefined && !(await deps.factors.customerExists(customerId)))
    throw new OAuthError('not_found', `customer ${customerId} does not exist`);
}

function describedConfiguration(deps: AdminServices): NonNullable<AdminServices['configuration']> {
  if (deps.configuration === undefined) throw new OAuthError('not_found', 'no configuration description on this listener');
  return deps.configuration;
}

export const ADMIN_ROUTES: readonly AdminRoute<AdminServices>[] = [
  route({
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    tag: 'operations',
    summary: "Prometheus metrics of the deployment (this instance's, and the cluster's when clustered)",
    answer: z.string(),
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    handle: ({ deps }) => deps.metrics.metrics(),
  }),
  route({
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    tag: 'operations',
    summary: 'The admin listener answers',
    answer: schema.health,
    handle: () => ({ status: 'ok' }),
  }),
  route({
    method: 'get',
    path: '/tpps',
    operationId: 'listTpps',
    tag: 'certificates',
    summary: 'The TPP organisations registered, with their clients',
    answer: z.array(schema.organisation),
    handle: ({ deps }) => deps.registry.organisations(),
  }),
  route({
    method: 'get',
    path: '/certificates',
    operationId: 'listCertificates',
    tag: 'certificates',
    summary: 'TPP certificates, filtered; or, with expiringWithin, the active ones expiring within that many seconds, soonest first',
    query: schema.certificatesQuery,
    answer: z.array(schema.certificate),
    handle: async ({ deps, query: q }) => {
      if (q.expiringWithin !== undefined) return (await deps.registry.expiring(new Date(Date.now() + q.expiringWithin * 1000))).map(withoutPem);
      const list = await deps.registry.list({
        ...(q.org === undefined ? {} : { orgId: q.org }),
        ...(q.client === undefined ? {} : { clientId: q.client }),
        ...(q.status === undefined ? {} : { status: q.status }),
      });
      return list.map(withoutPem);
    },
  }),
  route({
    method: 'get',
    path: '/certificates/:thumbprint',
    operationId: 'getCertificate',
    tag: 'certificates',
    summary: 'One certificate with its history (registered, checked, revoked, retired)',
    answer: schema.certificateWithEvents,
    failures: [404],
    handle: async ({ deps, params }) => {
      const found = await deps.registry.find(params.thumbprint!);
      if (found === undefined) throw new OAuthError('not_found', `no certificate ${params.thumbprint}`);
      return { ...withoutPem(found), events: await deps.registry.events(found.thumbprint) };
    },
  }),
  route({
    method: 'post',
    path: '/certificates/:thumbprint/revoke',
    operationId: 'revokeCertificate',
    tag: 'certificates',
    summary: 'Revokes a certificate: it authenticates nobody and the tokens bound to it stop working at once',
    body: schema.reasonBody,
    answer: schema.certificateChange,
    failures: [404],
    handle: async ({ deps, params, body, operator }) => {
      const { reason } = body;
      const thumbprint = params.thumbprint!;
      if ((await deps.registry.find(thumbprint)) === undefined) throw new OAuthError('not_found', `no certificate ${thumbprint}`);
      const changed = await deps.registry.revoke(thumbprint, { source: 'operator', reason });
      await audited(deps, operator, 'certificate.revoke', { thumbprint, reason, changed });
      return { thumbprint, status: 'revoked', changed };
    },
  }),
  route({
    method: 'post',
    path: '/certificates/:thumbprint/retire',
    operationId: 'retireCertificate',
    tag: 'certificates',
    summary: 'Retires an active certificate once the TPP has rotated to a newer one',
    body: schema.reasonBody,
    answer: schema.certificateChange,
    handle: async ({ deps, params, body, operator }) => {
      const { reason } = body;
      const thumbprint = params.thumbprint!;
      if (!(await deps.registry.retire(thumbprint, reason))) throw new OAuthError('invalid_request', 'only an active certificate can be retired');
      await audited(deps, operator, 'certificate.retire', { thumbprint, reason });
      return { thumbprint, status: 'retired' };
    },
  }),
  route({
    method: 'get',
    path: '/renewals',
    operationId: 'listUnrenewed',
    tag: 'certificates',
    summary:
      'TPPs that have not renewed: certificates expiring within the window (seconds; default the widest warning horizon) with no later one registered, and what each client was told',
    query: schema.renewalsQuery,
    answer: z.array(schema.unrenewedCertificate),
    failures: [404],
    handle: async ({ deps, query }) => {
      if (deps.notices === undefined) throw new OAuthError('not_found', 'expiry notices are disabled (certificates.expiryNotices.enabled)');
      const { within } = query;
      const seconds = within ?? Math.max(0, ...(deps.expiryWarningDays ?? [30])) * 86_400;
      return deps.notices.unrenewed(new Date(Date.now() + seconds * 1000));
    },
  }),
  route({
    method: 'get',
    path: '/config',
    operationId: 'describeConfiguration',
    tag: 'configuration',
    summary: "This instance's effective configuration, key by key: a secret as a digest salted per answer, never its value",
    answer: schema.configDescription,
    failures: [404],
    handle: ({ deps }) => {
      const configuration = describedConfiguration(deps);
      return { instanceId: configuration.heartbeat.instanceId, ...configuration.describe() };
    },
  }),
  route({
    method: 'get',
    path: '/config/instances',
    operationId: 'listInstances',
    tag: 'configuration',
    summary: "The deployment's live instances and the configuration each runs (drift when they differ)",
    answer: schema.deploymentInstances,
    failures: [404],
    handle: async ({ deps }) => {
      const { heartbeat } = describedConfiguration(deps);
      const instances = await heartbeat.live();
      return { configHash: heartbeat.configHash, drift: new Set(instances.map((i) => i.configHash)).size > 1, instances };
    },
  }),
  route({
    method: 'get',
    path: '/consents',
    operationId: 'listConsents',
    tag: 'consents',
    summary: "A customer's consents, or a client's",
    query: schema.consentsQuery,
    answer: z.array(schema.consent),
    handle: ({ deps, query }) => {
      const { customer, client } = query;
      return customer !== undefined ? deps.consents.listForCustomer(customer) : deps.consents.listForClient(client!);
    },
  }),
  route({
    method: 'post',
    path: '/consents/:id/revoke',
    operationId: 'revokeConsent',
    tag: 'consents',
    summary: 'Revokes a consent and every token issued under it',
    body: schema.reasonBody,
    answer: schema.consent,
    failures: [404, 409],
    handle: async ({ deps, params, body, operator }) => {
      const { reason } = body;
      const consent = await deps.consents.revoke(params.id!, { ...by(operator), reason });
      await audited(deps, operator, 'consent.revoke', { consentId: consent.id, reason });
      return consent;
    },
  }),
  route({
    method: 'post',
    path: '/customers/:id/factors/totp/reset',
    operationId: 'resetOneTimeCode',
    tag: 'customers',
    summary: "Removes a customer's one-time-code factor (a lost phone); audited as factor.reset; the customer enrols again",
    body: schema.reasonBody,
    answer: schema.factorReset,
    failures: [404],
    handle: async ({ deps, params, body, operator }) => {
      const { reason } = body;
      const customerId = params.id!;
      const totp = deps.factors?.totp;
      if (totp === undefined) throw new OAuthError('invalid_request', 'one-time codes are not enabled (sca.totp.enabled)');
      await requireCustomer(deps, customerId);
      return { customerId, factor: 'totp', removed: await totp.remove(customerId, { ...by(operator), reason }) };
    },
  }),
  route({
    method: 'post',
    path: '/customers/:id/factors/passkeys/reset',
    operationId: 'resetPasskeys',
    tag: 'customers',
    summary: "Removes every passkey of a customer who lost their device; only the bank's recovery path signs them in then",
    body: schema.reasonBody,
    answer: schema.factorReset,
    failures: [404],
    handle: async ({ deps, params, body, operator }) => {
      const { reason } = body;
      const customerId = params.id!;
      await requireCustomer(deps, customerId);
      const removed = await deps.passkeys.removeAll(customerId);
      await deps.audit.record({ type: 'factor.reset', ...by(operator), customerId, detail: { factor: 'passkey', removed, reason } });
      return { customerId, factor: 'passkey', removed };
    },
  }),
  route({
    method: 'get',
    path: '/threats/flags',
    operationId: 'listThreatFlags',
    tag: 'threats',
    summary: 'What threat detection flagged, newest first',
    query: schema.flagsQuery,
    answer: z.array(schema.threatFlag),
    handle: ({ deps, query: q }) => {
      return deps.restrictions.flags({
        ...(q.client === undefined ? {} : { clientId: q.client }),
        ...(q.since === undefined ? {} : { since: new Date(q.since) }),
        ...(q.limit === undefined ? {} : { limit: q.limit }),
      });
    },
  }),
  route({
    method: 'get',
    path: '/clients/restrictions',
    operationId: 'listRestrictions',
    tag: 'threats',
    summary: 'Quarantines and step-ups in force (all=1: released ones too)',
    query: schema.restrictionsQuery,
    answer: z.array(schema.restriction),
    handle: ({ deps, query: q }) => {
      return deps.restrictions.list({ ...(q.client === undefined ? {} : { clientId: q.client }), includeReleased: q.all === '1' || q.all === 'true' });
    },
  }),
  route({
    method: 'post',
    path: '/clients/:id/quarantine',
    operationId: 'quarantineClient',
    tag: 'threats',
    summary: 'Quarantines a client: it authenticates nowhere until released',
    body: schema.reasonBody,
    answer: schema.restriction,
    handle: ({ deps, params, body, operator }) => deps.restrictions.quarantine(params.id!, body.reason, by(operator)),
  }),
  route({
    method: 'post',
    path: '/clients/:id/step-up',
    operationId: 'stepUpClient',
    tag: 'threats',
    summary: 'Holds a client to fresh customer consent and short tokens for `seconds` (default a day)',
    body: schema.stepUpBody,
    answer: schema.restriction,
    handle: ({ deps, params, body, operator }) => {
      const { reason, seconds } = body;
      return deps.restrictions.stepUp(params.id!, reason, seconds, by(operator));
    },
  }),
  route({
    method: 'post',
    path: '/clients/:id/release',
    operationId: 'releaseClient',
    tag: 'threats',
    summary: 'Releases a quarantine or a step-up',
    body: schema.releaseBody,
    answer: schema.restriction,
    failures: [404],
    handle: async ({ deps, params, body, operator }) => {
      const { reason, kind } = body;
      const released = await deps.restrictions.release(params.id!, kind, operator.id);
      await audited(deps, operator, `client.release.${kind}`, { clientId: params.id, reason });
      return released;
    },
  }),
  route({
    method: 'get',
    path: '/audit',
    operationId: 'queryAudit',
    tag: 'audit',
    summary: 'Audit records, filtered, newest first',
    query: schema.auditQuery,
    answer: z.array(schema.auditRecord),
    handle: ({ deps, query: q }) => {
      return deps.audit.query({
        ...(q.client === undefined ? {} : { clientId: q.client }),
        ...(q.org === undefined ? {} : { orgId: q.org }),
        ...(q.customer === undefined ? {} : { customerId: q.customer }),
        ...(q.type === undefined ? {} : { type: q.type }),
        ...(q.since === undefined ? {} : { since: new Date(q.since) }),
        ...(q.until === undefined ? {} : { until: new Date(q.until) }),
        ...(q.limit === undefined ? {} : { limit: q.limit }),
      });
    },
  }),
  route({
    method: 'get',
    path: '/audit/verify',
    operationId: 'verifyAudit',
    tag: 'audit',
    summary: "Checks the audit log's hash chain from its first record",
    answer: schema.chainVerdict,
    handle: ({ deps }) => deps.audit.verify(),
  }),
];
