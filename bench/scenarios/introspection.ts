import { introspect, redeemCode } from '../load/fapi-client.ts';
import { measureOnce, type Measurement } from '../measure.ts';
import type { Target } from '../targets.ts';
import { costRatio, loop, ratio, warmThenMeasure, type BenchContext, type ScenarioResult, type ScenarioRow } from './scenario.ts';

/*
 * Introspection (RFC 7662) by a resource server authenticating with its own certificate
 * (tls_client_auth), of certificate-bound access tokens from the authorization_code grant.
 */

/** Distinct tokens introspected in turn (each from its own code, grant and session). */
const TOKENS = 500;

export async function accessTokens(target: Target, ctx: BenchContext): Promise<string[]> {
  const { code: template, codeVerifier } = await target.templateCode();
  const codes = await target.server.mintCodes(template, TOKENS);
  const pool = target.tppPool(ctx.options.concurrency.keepAlive);
  try {
    const tokens: string[] = [];
    for (let i = 0; i < codes.length; i += ctx.options.concurrency.keepAlive) {
      const batch = codes.slice(i, i + ctx.options.concurrency.keepAlive);
      tokens.push(...(await Promise.all(batch.map(async (code) => String((await redeemCode(pool, target.client, code, codeVerifier)).access_token)))));
    }
    return tokens;
  } finally {
    await pool.close();
  }
}

/** Issue 20's target: introspection by a resource server at ≥ 60 % of the baseline. */
const INTROSPECTION_TARGET = 0.6;

async function introspections(target: Target, ctx: BenchContext): Promise<Measurement> {
  const tokens = await accessTokens(target, ctx);
  const pool = target.resourceServerPool(ctx.options.concurrency.keepAlive);
  let next = 0;
  const run = loop(ctx.options.concurrency.keepAlive, async () => {
    const token = tokens[next % tokens.length]!;
    next += 1;
    await introspect(pool, ctx.fixtures.resourceServer.clientId, token);
  });
  try {
    return await warmThenMeasure(ctx.options, (ms) => measureOnce(target.server, () => run(ms)), run);
  } finally {
    await pool.close();
  }
}

export async function introspection(ctx: BenchContext): Promise<ScenarioResult> {
  const rows: ScenarioRow[] = [];
  for (const target of [ctx.baseline, ctx.moat, ...ctx.variants]) rows.push({ server: target.name, measurement: await introspections(target, ctx) });
  return {
    id: 'introspect',
    title: 'introspection by a resource server (tls_client_auth, mTLS keep-alive) of certificate-bound access tokens',
    operation: 'request',
    rows,
    ratios: [ratio(rows, 'moat', 'baseline', INTROSPECTION_TARGET), costRatio(rows, 'moat', 'baseline')],
  };
}
