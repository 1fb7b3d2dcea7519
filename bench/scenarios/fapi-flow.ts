import { authorizationCode, redeemCode } from '../load/fapi-client.ts';
import { measureOnce, type Measurement } from '../measure.ts';
import type { Target } from '../targets.ts';
import { costRatio, loop, ratio, warmThenMeasure, type BenchContext, type ScenarioResult, type ScenarioRow } from './scenario.ts';

/*
 * The whole FAPI 2.0 flow per second: PAR (mTLS) → authorize → login (Argon2id password check) →
 * consent → token (mTLS), as one operation. TPPs share a keep-alive mTLS pool; customers' browsers
 * a keep-alive pool without a certificate, each flow with its own cookie jar.
 */
async function flows(target: Target, ctx: BenchContext): Promise<Measurement> {
  const { concurrency } = ctx.options;
  const tpp = target.tppPool(concurrency.flow);
  const browser = target.browserPool(concurrency.flow);
  const run = loop(concurrency.flow, async () => {
    const { code, codeVerifier } = await authorizationCode({ tpp, browser }, target.origin, target.client);
    await redeemCode(tpp, target.client, code, codeVerifier);
  });
  try {
    return await warmThenMeasure(ctx.options, (ms) => measureOnce(target.server, () => run(ms)), run);
  } finally {
    await Promise.all([tpp.close(), browser.close()]);
  }
}

export async function fapiFlow(ctx: BenchContext): Promise<ScenarioResult> {
  const rows: ScenarioRow[] = [];
  for (const target of [ctx.baseline, ctx.moat]) rows.push({ server: target.name, measurement: await flows(target, ctx) });
  return {
    id: 'fapi-flow',
    title: 'whole FAPI 2.0 flow: PAR → authorize → login → consent → token (one operation = one flow, 8 requests)',
    operation: 'flow',
    rows,
    ratios: [ratio(rows, 'moat', 'baseline'), costRatio(rows, 'moat', 'baseline')],
  };
}
