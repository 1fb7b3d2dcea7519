import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import {
  checkSenderConstraint,
  renderTokenRejected,
  requireScope,
  tokenFromHeader,
  TokenRejected,
  type PresentedToken,
  type SenderConstraintChecks,
} from '../http/bearer-token.ts';
import { readJsonObject } from '../http/read-body.ts';
import { ObieError, type ObieErrorCode, obieErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import type { Logger } from '../observability/logger.ts';
import {
  ACCOUNT_SCHEMES,
  AuthorizationDetailsInvalid,
  describeIssues,
  parseRequestedDetail,
  PERMISSIONS,
  ROLE_FOR_TYPE,
  type AccountInformationDetail,
  type PaymentInitiationDetail,
} from './authorization-details.ts';
import { ConsentNotFound, type Consent } from './consent.ts';
import type { ConsentService } from './consent-service.ts';

/*
 * The consent API a TPP lodges intents with, UK Open Banking Read/Write API v3.1 style:
 * account-access-consents (AISP) and domestic-payment-consents (PISP). A client-credentials token,
 * bound to the TPP's certificate or DPoP key like every Moat token, with the `accounts` or
 * `payments` scope. Errors use the OBIE error structure (Code, Id, Message, Errors[]) that UK TPPs
 * parse; token errors follow RFC 6750 §3.
 */

export const CONSENT_API_PREFIX = '/open-banking/v3.1';
const AISP = '/aisp/account-access-consents';
const PISP = '/pisp/domestic-payment-consents';

const obAccount = z.strictObject({
  SchemeName: z.enum(ACCOUNT_SCHEMES),
  Identification: z.string().min(1).max(256),
  Name: z.string().min(1).max(350).optional(),
});

const accountAccessRequest = z.strictObject({
  Data: z.strictObject({
    Permissions: z.array(z.enum(PERMISSIONS)).min(1),
    ExpirationDateTime: z.string().optional(),
    TransactionFromDateTime: z.string().optional(),
    TransactionToDateTime: z.string().optional(),
  }),
  Risk: z.record(z.string(), z.unknown()),
});

const domesticPaymentRequest = z.strictObject({
  Data: z.strictObject({
    Initiation: z.strictObject({
      InstructionIdentification: z.string().min(1).max(35),
      EndToEndIdentification: z.string().min(1).max(35),
      InstructedAmount: z.strictObject({ Amount: z.string(), Currency: z.string() }),
      CreditorAccount: obAccount,
      DebtorAccount: obAccount.optional(),
      RemittanceInformation: z.strictObject({ Reference: z.string().optional(), Unstructured: z.string().optional() }).optional(),
    }),
  }),
  Risk: z.record(z.string(), z.unknown()),
});

interface Deps {
  provider: Provider;
  consents: ConsentService;
  issuer: string;
  senderConstraint: SenderConstraintChecks;
  logger: Logger;
}

type Ctx = ParameterizedContext;

export function createConsentApiRouter(deps: Deps): Router {
  const { consents, logger } = deps;
  const router = new Router({ prefix: CONSENT_API_PREFIX });
  const base = deps.issuer.replace(/\/$/, '') + CONSENT_API_PREFIX;

  // Steps every call takes: errors mapped in one place, no caching, token checked.
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (err) {
      if (err instanceof TokenRejected) return renderTokenRejected(ctx, err);
      const ob = obieErrorResponse(err, (ctx.state.requestContext as { requestId?: string } | undefined)?.requestId);
      if (ob === undefined) throw err;
      writeErrorResponse(ctx, ob);
      logger.info({ event: 'consent_api.rejected', outcome: ob.errorCode, status: ob.status }, 'consent API request rejected');
    }
  });

  /** The calling TPP's client id, from a live, sender-constrained client-credentials token. */
  const authenticate = async (ctx: Ctx, scope: 'accounts' | 'payments'): Promise<string> => {
    const value = tokenFromHeader(ctx);
    const token = await deps.provider.ClientCredentials.find(value);
    if (token === undefined || token.isExpired) {
      throw new TokenRejected('invalid_token', 'the access token is not active; the consent API takes a client_credentials token');
    }
    // A deleted client's tokens are dead (RFC 7592 §2.3).
    if ((await deps.provider.Client.find(token.clientId!)) === undefined)
      throw new TokenRejected('invalid_token', 'the client of this access token no longer exists');
    requireScope(token, scope);
    await checkSenderConstraint(ctx, token as unknown as PresentedToken, value, deps.senderConstraint);
    return token.clientId!;
  };

  const requireRole = async (clientId: string, type: keyof typeof ROLE_FOR_TYPE) => {
    const client = await deps.provider.Client.find(clientId);
    const roles = (client?.metadata() as Record<string, unknown> | undefined)?.software_roles;
    const needed = ROLE_FOR_TYPE[type];
    if (Array.isArray(roles) && !roles.includes(needed)) {
      throw new ObieError(
        403,
        'UK.OBIE.Resource.ConsentMismatch',
        `this consent needs the ${needed} role; the client's software statement grants ${roles.join(', ') || 'none'}`,
      );
    }
  };

  router.post(AISP, async (ctx) => {
    const clientId = await authenticate(ctx, 'accounts');
    await requireRole(clientId, 'account_information');
    const body = parseBody(accountAccessRequest, await readJsonObject(ctx.req));
    const detail = toDetail({
      type: 'account_information',
      permissions: body.Data.Permissions,
      ...(body.Data.ExpirationDateTime === undefined ? {} : { expirationDateTime: body.Data.ExpirationDateTime }),
      ...(body.Data.TransactionFromDateTime === undefined ? {} : { transactionFromDateTime: body.Data.TransactionFromDateTime }),
      ...(body.Data.TransactionToDateTime === undefined ? {} : { transactionToDateTime: body.Data.TransactionToDateTime }),
    });
    const idempotencyKey = optionalIdempotencyKey(ctx);
    const { consent, replayed } = await consents.lodgeIntent({
      clientId,
      detail,
      scope: 'accounts',
      ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
    });
    ctx.status = replayed ? 200 : 201;
    ctx.body = accountAccessResponse(consent, `${base}${AISP}`);
  });

  router.get(`${AISP}/:consentId`, async (ctx) => {
    const clientId = await authenticate(ctx, 'accounts');
    const consent = await consents.getForClient(ctx.params.consentId!, clientId);
    if (consent.kind !== 'account_access') throw new ConsentNotFound(consent.id);
    ctx.body = accountAccessResponse(consent, `${base}${AISP}`);
  });

  router.delete(`${AISP}/:consentId`, async (ctx) => {
    const clientId = await authenticate(ctx, 'accounts');
    const consent = await consents.getForClient(ctx.params.consentId!, clientId);
    if (consent.kind !== 'account_access') throw new ConsentNotFound(consent.id);
    if (consent.status === 'AwaitingAuthorisation') await consents.withdraw(consent.id, clientId);
    else await consents.revoke(consent.id, { actor: 'tpp', actorId: clientId, reason: 'deleted through the consent API' });
    ctx.status = 204;
  });

  router.post(PISP, async (ctx) => {
    const clientId = await authenticate(ctx, 'payments');
    await requireRole(clientId, 'payment_initiation');
    // UK OB v3.1: payment consents are idempotent by x-idempotency-key.
    const idempotencyKey = optionalIdempotencyKey(ctx);
    if (idempotencyKey === undefined)
      throw new ObieError(400, 'UK.OBIE.Header.Missing', 'x-idempotency-key is required for payment consents', 'x-idempotency-key');
    const { Initiation: i } = parseBody(domesticPaymentRequest, await readJsonObject(ctx.req)).Data;
    const detail = toDetail(
      {
        type: 'payment_initiation',
        instructionIdentification: i.InstructionIdentification,
        endToEndIdentification: i.EndToEndIdentification,
        instructedAmount: { amount: i.InstructedAmount.Amount, currency: i.InstructedAmount.Currency },
        creditorName: i.CreditorAccount.Name ?? '',
        creditorAccount: fromObAccount(i.CreditorAccount),
        ...(i.DebtorAccount === undefined ? {} : { debtorAccount: fromObAccount(i.DebtorAccount) }),
        ...(i.RemittanceInformation === undefined
          ? {}
          : {
              remittanceInformation: {
                ...(i.RemittanceInformation.Reference === undefined ? {} : { reference: i.RemittanceInformation.Reference }),
                ...(i.RemittanceInformation.Unstructured === undefined ? {} : { unstructured: i.RemittanceInformation.Unstructured }),
              },
            }),
      },
      { creditorName: 'Data.Initiation.CreditorAccount.Name' },
    );
    const { consent, replayed } = await consents.lodgeIntent({ clientId, detail, scope: 'payments', idempotencyKey });
    ctx.status = replayed ? 200 : 201;
    ctx.body = paymentResponse(consent, `${base}${PISP}`);
  });

  router.get(`${PISP}/:consentId`, async (ctx) => {
    const clientId = await authenticate(ctx, 'payments');
    const consent = await consents.getForClient(ctx.params.consentId!, clientId);
    if (consent.kind !== 'domestic_payment') throw new ConsentNotFound(consent.id);
    ctx.body = paymentResponse(consent, `${base}${PISP}`);
  });

  return router;
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.map(String).join('.');
  const code: ObieErrorCode =
    issue.code === 'unrecognized_keys'
      ? 'UK.OBIE.Field.Unexpected'
      : issue.code === 'invalid_type' && issue.input === undefined
        ? 'UK.OBIE.Field.Missing'
        : 'UK.OBIE.Field.Invalid';
  throw new ObieError(400, code, describeIssues(result.error, 'body').replace(/^body\./, ''), path === '' ? undefined : path);
}

/** Builds the stored detail and runs the same schema the authorization_details path uses. */
function toDetail(detail: unknown, renamed: Record<string, string> = {}): AccountInformationDetail | PaymentInitiationDetail {
  try {
    return parseRequestedDetail(detail, '') as AccountInformationDetail | PaymentInitiationDetail;
  } catch (err) {
    if (!(err instanceof AuthorizationDetailsInvalid)) throw err;
    // Name the field as the TPP wrote it (Data.…), not as Moat stores it.
    let message = err.message.replace(/^\./, '');
    for (const [from, to] of Object.entries(renamed)) message = message.replace(from, to);
    throw new ObieError(400, 'UK.OBIE.Field.Invalid', message);
  }
}

function optionalIdempotencyKey(ctx: Ctx): string | undefined {
  const key = ctx.get('x-idempotency-key');
  if (key === '') return undefined;
  if (key.length > 40 || !/^[\x21-\x7e]+$/.test(key))
    throw new ObieError(400, 'UK.OBIE.Header.Invalid', 'x-idempotency-key is at most 40 printable characters', 'x-idempotency-key');
  return key;
}

function fromObAccount(a: z.infer<typeof obAccount>) {
  return { schemeName: a.SchemeName, identification: a.Identification, ...(a.Name === undefined ? {} : { name: a.Name }) };
}

function toObAccount(a: { schemeName: string; identification: string; name?: string }) {
  return { SchemeName: a.schemeName, Identification: a.identification, ...(a.name === undefined ? {} : { Name: a.name }) };
}

function envelope(consent: Consent, self: string, data: Record<string, unknown>) {
  return {
    Data: {
      ConsentId: consent.id,
      CreationDateTime: consent.createdAt.toISOString(),
      Status: consent.status,
      StatusUpdateDateTime: consent.statusUpdatedAt.toISOString(),
      ...data,
    },
    Risk: {},
    Links: { Self: `${self}/${consent.id}` },
    Meta: { TotalPages: 1 },
  };
}

function accountAccessResponse(consent: Consent, self: string) {
  const d = consent.requested as AccountInformationDetail;
  return envelope(consent, self, {
    Permissions: d.permissions,
    ...(d.expirationDateTime === undefined ? {} : { ExpirationDateTime: d.expirationDateTime }),
    ...(d.transactionFromDateTime === undefined ? {} : { TransactionFromDateTime: d.transactionFromDateTime }),
    ...(d.transactionToDateTime === undefined ? {} : { TransactionToDateTime: d.transactionToDateTime }),
  });
}

function paymentResponse(consent: Consent, self: string) {
  const d = consent.requested as PaymentInitiationDetail;
  return envelope(consent, self, {
    Initiation: {
      ...(d.instructionIdentification === undefined ? {} : { InstructionIdentification: d.instructionIdentification }),
      ...(d.endToEndIdentification === undefined ? {} : { EndToEndIdentification: d.endToEndIdentification }),
      InstructedAmount: { Amount: d.instructedAmount.amount, Currency: d.instructedAmount.currency },
      CreditorAccount: toObAccount({ ...d.creditorAccount, name: d.creditorAccount.name ?? d.creditorName }),
      ...(d.debtorAccount === undefined ? {} : { DebtorAccount: toObAccount(d.debtorAccount) }),
      ...(d.remittanceInformation === undefined
        ? {}
        : {
            RemittanceInformation: {
              ...(d.remittanceInformation.reference === undefined ? {} : { Reference: d.remittanceInformation.reference }),
              ...(d.remittanceInformation.unstructured === undefined ? {} : { Unstructured: d.remittanceInformation.unstructured }),
            },
          }),
    },
  });
}
