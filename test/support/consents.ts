import * as oauth from 'oauth4webapi';
import { pushAuthorization, type RegisteredTpp } from './tpp-client.ts';

/*
 * A TPP's side of the consent API and of token checks, over its own mTLS connection.
 */

export async function clientCredentialsToken(tpp: RegisteredTpp, scope: string): Promise<string> {
  const res = await oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope }), {
    [oauth.customFetch]: tpp.fetch,
  });
  return (await oauth.processClientCredentialsResponse(tpp.as, tpp.client, res)).access_token;
}

export interface ApiResponse {
  status: number;
  body: Record<string, any>;
  headers: Headers;
}

export async function consentApi(
  tpp: RegisteredTpp,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiResponse> {
  const url = new URL(`/open-banking/v3.1${path}`, tpp.as.issuer);
  const res = await tpp.fetch(url, {
    method,
    headers: {
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, any>), headers: res.headers };
}

export function accountAccessBody(data: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    Data: { Permissions: ['ReadAccountsDetail', 'ReadBalances', 'ReadTransactionsDetail', 'ReadTransactionsCredits', 'ReadTransactionsDebits'], ...data },
    Risk: {},
  };
}

export function domesticPaymentBody(initiation: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    Data: {
      Initiation: {
        InstructionIdentification: 'INSTR-1',
        EndToEndIdentification: 'E2E-1',
        InstructedAmount: { Amount: '42.50', Currency: 'GBP' },
        CreditorAccount: { SchemeName: 'UK.OBIE.SortCodeAccountNumber', Identification: '08080021325698', Name: 'ACME Energy Ltd' },
        RemittanceInformation: { Reference: 'INV-2026-118' },
        ...initiation,
      },
    },
    Risk: {},
  };
}

/** The claims parameter that names a lodged intent (UK OB). */
export function intentClaims(consentId: string): string {
  const claim = { openbanking_intent_id: { value: consentId, essential: true } };
  return JSON.stringify({ id_token: claim, userinfo: claim });
}

export async function introspect(tpp: RegisteredTpp, token: string): Promise<Record<string, any>> {
  const res = await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), token, { [oauth.customFetch]: tpp.fetch });
  return oauth.processIntrospectionResponse(tpp.as, tpp.client, res) as Promise<Record<string, any>>;
}

export async function redeem(
  tpp: RegisteredTpp,
  code: { params: URLSearchParams; codeVerifier: string },
): Promise<{ status: number; body: Record<string, any> }> {
  const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), code.params, tpp.redirectUri, code.codeVerifier, {
    [oauth.customFetch]: tpp.fetch,
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

export async function refresh(tpp: RegisteredTpp, refreshToken: string): Promise<{ status: number; body: Record<string, any> }> {
  const res = await oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), refreshToken, { [oauth.customFetch]: tpp.fetch });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

export function sandboxAccountsOf(username: 'alice' | 'bob'): string[] {
  return username === 'alice' ? ['acc-alice-current', 'acc-alice-savings', 'acc-alice-euro'] : ['acc-bob-current'];
}

/** The error body of a PAR that must fail (oauth4webapi throws ResponseBodyError). */
export async function parError(tpp: RegisteredTpp, extraParams: Record<string, string>): Promise<{ error: string; error_description?: string }> {
  try {
    await pushAuthorization(tpp, { extraParams });
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError)
      return { error: err.error, ...(err.error_description === undefined ? {} : { error_description: err.error_description }) };
    throw err;
  }
  throw new Error('the PAR succeeded');
}
