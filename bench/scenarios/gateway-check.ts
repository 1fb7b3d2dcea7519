import { Pool } from 'undici';
import { send } from '../load/fapi-client.ts';
import { createTlsPool } from '../load/tls-pools.ts';
import { measureOnce } from '../measure.ts';
import { accessTokens } from './introspection.ts';
import { costRatio, loop, ratio, warmThenMeasure, type BenchContext, type ScenarioResult, type ScenarioRow } from './scenario.ts';

/*
 * Issue 22: Moat's gateway check as nginx's auth_request calls it — plain HTTP keep-alive on
 * loopback with the shared secret, the TPP's certificate forwarded in X-SSL-Client-Cert, the
 * original method and URI — for certificate-bound tokens whose facts are cached (warm: every token
 * checked once before the measured window). Every check still compares the certificate with the
 * token's binding and asks the (cached) registry and the client's standing. Beside it, the raw
 * keep-alive floor: a bare node https server answering the same number of connections.
 * Target: the check answers at least half the floor's requests per second (issue 22).
 */

export const GATEWAY_CHECK_FLOOR_TARGET = 0.5;

export async function gatewayCheck(ctx: BenchContext): Promise<ScenarioResult> {
  const { options, fixtures, moat } = ctx;
  const port = moat.server.ports.gatewayCheck;
  if (port === undefined) throw new Error('gateway-check: Moat started without its gateway check listener');
  const tokens = await accessTokens(moat, ctx);
  const connections = options.concurrency.keepAlive;
  const rows: ScenarioRow[] = [];

  const check = new Pool(`http://127.0.0.1:${port}`, { connections, pipelining: 1 });
  const certificate = encodeURIComponent(fixtures.tpp.certPem);
  const checkOnce = async (token: string) => {
    const reply = await send(check, {
      method: 'GET',
      path: '/',
      headers: {
        'x-moat-gateway-secret': fixtures.gatewaySecret.value,
        authorization: `Bearer ${token}`,
        'x-ssl-client-cert': certificate,
        'x-original-method': 'GET',
        'x-original-uri': '/sandbox-api/accounts',
      },
    });
    if (reply.status !== 200) throw new Error(`gateway check: HTTP ${reply.status} ${reply.text.slice(0, 200)}`);
  };
  let next = 0;
  const checks = loop(connections, () => {
    next += 1;
    return checkOnce(tokens[next % tokens.length]!);
  });
  try {
    // Every token checked once: the measured window sees a warm cache.
    for (let i = 0; i < tokens.length; i += connections) await Promise.all(tokens.slice(i, i + connections).map(checkOnce));
    rows.push({ server: 'moat-gateway-check', measurement: await warmThenMeasure(options, (ms) => measureOnce(moat.server, () => checks(ms)), checks) });
  } finally {
    await check.close();
  }

  const floors = await ctx.floors();
  const floorPool = createTlsPool({
    origin: `https://127.0.0.1:${floors.ports.moatTls}`,
    serverCaPem: fixtures.sandbox.serverCaPem,
    identity: fixtures.tpp,
    connections,
  });
  const floor = loop(connections, async () => {
    const reply = await send(floorPool, { method: 'POST', path: '/token', form: { grant_type: 'client_credentials' } });
    if (reply.status !== 200) throw new Error(`floor: HTTP ${reply.status}`);
  });
  try {
    rows.push({ server: 'floor-keep-alive', measurement: await warmThenMeasure(options, (ms) => measureOnce(floors, () => floor(ms)), floor) });
  } finally {
    await floorPool.close();
  }

  return {
    id: 'gateway-check',
    title: 'gateway check (auth_request form, shared secret, forwarded certificate, warm token cache) beside the raw mTLS keep-alive floor',
    operation: 'request',
    rows,
    ratios: [ratio(rows, 'moat-gateway-check', 'floor-keep-alive', GATEWAY_CHECK_FLOOR_TARGET), costRatio(rows, 'moat-gateway-check', 'floor-keep-alive')],
    notes: [
      `${tokens.length} distinct certificate-bound tokens in turn; each checked once before the measured window`,
      'the floor is a bare https server over mTLS; the check is plain HTTP on loopback, as nginx reaches it',
    ],
  };
}
