import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * TLS session resumption on Moat's public listener (RFC 8446 §2.2; tls/session-chains.ts): a TPP's
 * new connection resumes its session, and Moat authenticates it as it did the full handshake, with
 * the certificate of that handshake (RFC 8705 §2 client authentication, §3 certificate-bound
 * tokens) — and refuses it as it would a full handshake once that certificate is revoked.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

interface Reply {
  status: number;
  body: Record<string, unknown>;
  /** Whether the TLS session of this request's (new) connection was resumed. */
  reused: boolean;
}

/** A client that makes a new connection per request and offers its last TLS session, as a TPP's HTTP client does after an idle timeout. */
function resumingClient(creds: { certPem: string; keyPem: string; serverCaPem: string }) {
  const agent = new Agent({ keepAlive: false, maxCachedSessions: 10, ca: creds.serverCaPem, cert: creds.certPem, key: creds.keyPem });
  const send = (path: string, options: { form?: Record<string, string>; bearer?: string } = {}) =>
    new Promise<Reply>((resolve, reject) => {
      const body = options.form === undefined ? undefined : new URLSearchParams(options.form).toString();
      const req = request(
        new URL(path, h.issuer),
        {
          method: body === undefined ? 'GET' : 'POST',
          agent,
          headers: {
            ...(body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
            ...(options.bearer === undefined ? {} : { authorization: `Bearer ${options.bearer}` }),
          },
        },
        (res) => {
          const reused = (res.socket as TLSSocket).isSessionReused();
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            resolve({ status: res.statusCode ?? 0, body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {}, reused });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return { send, close: () => agent.destroy() };
}

const clientCredentials = (client: ReturnType<typeof resumingClient>, clientId: string) =>
  client.send('/token', { form: { grant_type: 'client_credentials', scope: 'accounts', client_id: clientId } });

function outcomeOf(path: string, since: number): unknown {
  return h.logs.slice(since).find((l) => l.event === 'request' && l.path === path)?.outcome;
}

it('authenticates a resumed session with the certificate of its full handshake (RFC 8705 §2, tls_client_auth)', async () => {
  const client = resumingClient(tpp.creds);
  try {
    const full = await clientCredentials(client, tpp.client.client_id);
    const resumed = await clientCredentials(client, tpp.client.client_id);
    expect([full.reused, resumed.reused]).toEqual([false, true]);
    expect([full.status, resumed.status]).toEqual([200, 200]);
    expect(resumed.body.token_type).toBe('Bearer');
  } finally {
    client.close();
  }
});

it('accepts a certificate-bound token on a resumed session of its certificate and nowhere else (RFC 8705 §3)', async () => {
  const { tokens } = await authorizationCodeFlow(h, tpp);
  const own = resumingClient(tpp.creds);
  const other = await onboardTpp(h);
  const stranger = resumingClient(other.creds);
  try {
    const replies = [];
    for (let i = 0; i < 2; i += 1) replies.push(await own.send('/sandbox-api/accounts', { bearer: tokens.access_token }));
    expect(replies.map((r) => [r.reused, r.status])).toEqual([
      [false, 200],
      [true, 200],
    ]);
    // Another TPP's resumed session is that TPP's, never the token's holder's.
    await clientCredentials(stranger, other.client.client_id);
    const since = h.logs.length;
    const theirs = await stranger.send('/sandbox-api/accounts', { bearer: tokens.access_token });
    expect([theirs.reused, theirs.status]).toEqual([true, 401]);
    expect(outcomeOf('/sandbox-api/accounts', since)).toBe('mtls_thumbprint_mismatch');
  } finally {
    own.close();
    stranger.close();
    await other.close();
  }
});

it('refuses a resumed session whose certificate has been revoked since its full handshake', async () => {
  const revokedTpp = await onboardTpp(h);
  const client = resumingClient(revokedTpp.creds);
  try {
    expect((await clientCredentials(client, revokedTpp.client.client_id)).status).toBe(200);
    await h.moat.certificates.registry.revoke(revokedTpp.creds.summary['x5t#S256'] as string, { source: 'operator', reason: 'test' });
    const since = h.logs.length;
    const resumed = await clientCredentials(client, revokedTpp.client.client_id);
    expect([resumed.reused, resumed.status, resumed.body.error]).toEqual([true, 401, 'invalid_client']);
    expect(outcomeOf('/token', since)).toBe('mtls_certificate_revoked');
  } finally {
    client.close();
    await revokedTpp.close();
  }
});
