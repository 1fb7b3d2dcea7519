import type { IncomingMessage } from 'node:http';
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { CertificateRegistry } from '../certificates/certificate-registry.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { Logger } from '../observability/logger.ts';
import type { TrustAnchors } from '../pki/certificate-chain.ts';
import type { CertificateRefusal } from '../kernel/certificate-refusal.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import type { CallJournal, CallOwners, RecentCalls } from './call-journal.ts';
import { buildCallRecord, isTppCall, type CallRecord } from './call-record.ts';

/*
 * The TPP's side of "why did my call fail": every TPP call is recorded as Moat saw it, and the TPP
 * reads its own calls back over mutual TLS at /diagnostics/calls — by x-fapi-interaction-id, or the
 * newest. A call is the caller's when it was made with the very certificate the caller presents
 * (the TLS handshake proved it holds the key, even for a certificate Moat refused), or by a client
 * that the caller's trusted, registered certificate belongs to. Anything else answers as if absent.
 */

export const DIAGNOSTICS_PATH = '/diagnostics';
const CLIENT_ID = /^[\x21-\x7E]{1,200}$/;
const MAX_LIMIT = 100;
/**
 * How long a response waits for its call record. The record is kept before the response is sent, so a
 * TPP that reads its calls right after an answer finds it; that takes milliseconds. When storage is
 * slow or silent the record goes on after the response instead: a call is never held longer for its
 * own diagnostics (a stalled Postgres would otherwise add a query timeout to every failing call).
 */
const RECORD_WAIT_MS = 500;
/** Records still being kept at once, most of them after their responses; beyond it calls go unrecorded. */
const RECORDS_IN_FLIGHT_MAX = 1000;

export interface CallDiagnostics {
  /** Records the request just served, when it is a TPP call (called by the request-context middleware). */
  recordCall(ctx: ParameterizedContext, outcome: string): Promise<void>;
  /** The calls these owners may read, newest first, redacted for them. */
  recentFor(owners: CallOwners, limit: number): Promise<RecentCalls>;
  /** The kept calls with this interaction id that these owners may read, redacted for them. */
  callsFor(owners: CallOwners, interactionId: string): Promise<CallRecord[]>;
  router: Router;
}

interface Deps {
  journal: CallJournal;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  refusal: (req: IncomingMessage) => CertificateRefusal | undefined;
  registry: CertificateRegistry;
  anchors: TrustAnchors;
  logger: Logger;
  now?: () => Date;
  /** RECORDS_IN_FLIGHT_MAX unless given (a test's smaller bound). */
  recordsInFlightMax?: number;
}

export function createCallDiagnostics(deps: Deps): CallDiagnostics {
  const now = deps.now ?? (() => new Date());

  /** Trusted and not refused (revoked, retired…): only such a certificate speaks for the clients it is registered for. */
  const inGoodStanding = (ctx: ParameterizedContext, presented: PresentedCertificate) => presented.verification.trusted && deps.refusal(ctx.req) === undefined;

  let recordsInFlight = 0;
  let dropping = false;

  const recordCall = (ctx: ParameterizedContext, outcome: string): Promise<void> => {
    if (!isTppCall(ctx.path)) return Promise.resolve();
    const bound = deps.recordsInFlightMax ?? RECORDS_IN_FLIGHT_MAX;
    // Records that outlive their responses (storage slow or silent) are bounded: past the bound a call
    // goes unrecorded rather than piling up work and pool connections behind an outage. Said once per
    // episode: the episode ends when half the bound is free again.
    if (recordsInFlight >= bound) {
      if (!dropping) deps.logger.warn({ event: 'diagnostics.records_dropped' }, 'call records are not kept while storage is slow');
      dropping = true;
      return Promise.resolve();
    }
    if (recordsInFlight < bound / 2) dropping = false;
    const kept = recordOf(ctx, outcome);
    if (kept === undefined) return Promise.resolve();
    recordsInFlight += 1;
    const recording = storeRecord(kept).finally(() => {
      recordsInFlight -= 1;
    });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, RECORD_WAIT_MS);
    });
    return Promise.race([recording.finally(() => clearTimeout(timer)), waited]);
  };

  interface RecordToKeep {
    record: CallRecord;
    clientId: string | undefined;
    /** The certificate whose registration says whether the client made the call (trusted, not refused). */
    thumbprint: string | undefined;
  }

  /**
   * All a record takes from the request, read now: the record may be finished after the response,
   * and the request's context must not stay alive until then (a suspended async function keeps its
   * parameters, so storeRecord is not given it). Undefined when there is nothing to record, or the
   * record cannot be made (logged: it must never fail the call it describes).
   */
  const recordOf = (ctx: ParameterizedContext, outcome: string): RecordToKeep | undefined => {
    try {
      const presented = deps.clientCertificate(ctx.req);
      const clientId = clientOf(ctx);
      if (presented === undefined && clientId === undefined) return undefined;
      const record = buildCallRecord({ ctx, outcome, presented, anchors: deps.anchors, now: now(), ...(clientId === undefined ? {} : { clientId }) });
      const thumbprint = clientId !== undefined && presented !== undefined && inGoodStanding(ctx, presented) ? presented.thumbprint : undefined;
      return { record, clientId, thumbprint };
    } catch (err) {
      deps.logger.warn({ err, event: 'diagnostics.record_failed' }, 'call record not kept');
      return undefined;
    }
  };

  /** Never rejects: a lost record is logged. */
  const storeRecord = async ({ record, clientId, thumbprint }: RecordToKeep): Promise<void> => {
    try {
      const madeByClient = thumbprint !== undefined && ((await deps.registry.find(thumbprint))?.clients.includes(clientId!) ?? false);
      await deps.journal.record(clientId === undefined ? record : { ...record, madeByClient });
    } catch (err) {
      // A lost diagnostic record must never fail the call it describes.
      deps.logger.warn({ err, event: 'diagnostics.record_failed' }, 'call record not kept');
    }
  };

  /** Who the caller is, for reading records: its certificate, and the clients that certificate is registered for. */
  const ownersOf = async (ctx: ParameterizedContext): Promise<CallOwners> => {
    const presented = deps.clientCertificate(ctx.req);
    if (presented === undefined) {
      throw new OAuthError(
        'invalid_client',
        'present your transport certificate (mutual TLS): call records are shown only to the certificate that made the call or to the client it belongs to',
      );
    }
    const clientIds = inGoodStanding(ctx, presented) ? ((await deps.registry.find(presented.thumbprint))?.clients ?? []) : [];
    return { thumbprints: [presented.thumbprint], clientIds };
  };

  const recentFor = async (owners: CallOwners, limit: number): Promise<RecentCalls> => {
    const { made, named } = await deps.journal.recent(owners, limit);
    return { made: made.map((r) => redactFor(r, owners)), named: named.map((r) => redactFor(r, owners)) };
  };
  const callsFor = async (owners: CallOwners, interactionId: string) =>
    (await deps.journal.byInteractionId(interactionId)).filter((r) => ownedBy(r, owners)).map((r) => redactFor(r, owners));

  const router = new Router({ prefix: `${DIAGNOSTICS_PATH}/calls` });
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });
  router.get('/', async (ctx) => {
    const limit = ctx.query.limit === undefined ? 20 : Number(ctx.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
      throw new OAuthError('invalid_request', `limit must be a whole number from 1 to ${MAX_LIMIT}`);
    const owners = await ownersOf(ctx);
    const { made, named } = await recentFor(owners, limit);
    // Anyone can send a client's id; calls that only named it are listed apart, so they can never
    // crowd out the calls the client made itself.
    ctx.body = { calls: made, callsNamingYourClient: named };
  });
  router.get('/:interactionId', async (ctx) => {
    const interactionId = ctx.params.interactionId!;
    const owners = await ownersOf(ctx);
    const calls = await callsFor(owners, interactionId);
    // The same answer for "no such call" and "not yours": the endpoint must not tell whose calls exist.
    if (calls.length === 0) {
      throw new OAuthError(
        'not_found',
        `no call with x-fapi-interaction-id ${interactionId.slice(0, 64)} made with this certificate or by a client it is registered for (calls are kept for a limited time)`,
      );
    }
    ctx.body = { interactionId, calls };
  });

  return { recordCall, recentFor, callsFor, router };
}

function ownedBy(record: CallRecord, owners: CallOwners): boolean {
  const thumbprint = record.certificate?.['x5t#S256'];
  return (thumbprint !== undefined && owners.thumbprints.includes(thumbprint)) || (record.clientId !== undefined && owners.clientIds.includes(record.clientId));
}

/** A client's registered data is shown only to a caller authenticated as that client. */
function redactFor(record: CallRecord, owners: CallOwners): CallRecord {
  const { failed } = record;
  if (failed?.expectedIsClientData !== true || (record.clientId !== undefined && owners.clientIds.includes(record.clientId))) return record;
  const { expected: _hidden, expectedIsClientData: _flag, ...rest } = failed;
  return {
    ...record,
    failed: { ...rest, expected: `(registered for client ${record.clientId ?? '?'}: shown only when you call with a certificate registered for that client)` },
  };
}

/** The client the call was made by or for: the one oidc-provider identified, else the client_id it was sent. */
function clientOf(ctx: ParameterizedContext): string | undefined {
  const oidc = (ctx as { oidc?: { client?: { clientId?: string }; params?: { client_id?: unknown } } }).oidc;
  const id = oidc?.client?.clientId ?? oidc?.params?.client_id ?? ctx.state.clientId;
  return typeof id === 'string' && CLIENT_ID.test(id) ? id : undefined;
}
