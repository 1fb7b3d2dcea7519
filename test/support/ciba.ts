import type { webcrypto } from 'node:crypto';
import { importJWK } from 'jose';
import * as oauth from 'oauth4webapi';
import type { RegisteredTpp } from './tpp-client.ts';

/*
 * A TPP's side of decoupled authorisation (CIBA), with oauth4webapi over its own mTLS connection.
 */

export const CIBA_GRANT = 'urn:openid:params:grant-type:ciba';

/** Registration metadata of a CIBA client in poll mode (or ping, with its endpoint). */
export function cibaRegistration(mode: { ping: string } | 'poll' = 'poll'): Record<string, unknown> {
  return {
    grant_types: ['authorization_code', 'refresh_token', CIBA_GRANT],
    ...(mode === 'poll'
      ? { backchannel_token_delivery_mode: 'poll' }
      : { backchannel_token_delivery_mode: 'ping', backchannel_client_notification_endpoint: mode.ping }),
  };
}

export async function tppSigningKey(tpp: RegisteredTpp): Promise<oauth.PrivateKey> {
  const jwk = tpp.creds.signingJwks.keys[0]!;
  return { key: (await importJWK(jwk, jwk.alg)) as webcrypto.CryptoKey, kid: jwk.kid };
}

/** A signed backchannel authentication request (FAPI-CIBA §5.2.2), or an unsigned one when asked. */
export async function backchannelRequest(tpp: RegisteredTpp, params: Record<string, string>, options: { signed?: boolean } = {}): Promise<Response> {
  const body = new URLSearchParams({ scope: 'openid accounts', ...params });
  const sent =
    options.signed === false ? body : new URLSearchParams({ request: await oauth.issueRequestObject(tpp.as, tpp.client, body, await tppSigningKey(tpp)) });
  return oauth.backchannelAuthenticationRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), sent, { [oauth.customFetch]: tpp.fetch });
}

/** The auth_req_id of a request the server accepted (throws with its answer otherwise). */
export async function startDecoupled(tpp: RegisteredTpp, params: Record<string, string>): Promise<oauth.BackchannelAuthenticationResponse> {
  const res = await backchannelRequest(tpp, params);
  if (res.status !== 200) throw new Error(`backchannel authentication refused: ${res.status} ${await res.text()}`);
  return oauth.processBackchannelAuthenticationResponse(tpp.as, tpp.client, res);
}

export function pollOnce(tpp: RegisteredTpp, authReqId: string): Promise<Response> {
  return oauth.backchannelAuthenticationGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), authReqId, { [oauth.customFetch]: tpp.fetch });
}
