import { send } from '../load/fapi-client.ts';
import { createTlsPool } from '../load/tls-pools.ts';
import { measureOnce } from '../measure.ts';
import { loop, warmThenMeasure, type BenchContext, type ScenarioResult } from './scenario.ts';

/*
 * The raw keep-alive floor: what a bare node https server answers per second over mTLS keep-alive
 * connections, for the same request form, on this machine and with this load generator. (The
 * handshake floors are measured next to each new-connection scenario.)
 */
export async function keepAliveFloor(ctx: BenchContext): Promise<ScenarioResult> {
  const { options, fixtures } = ctx;
  const floors = await ctx.floors();
  const pool = createTlsPool({
    origin: `https://127.0.0.1:${floors.ports.moatTls}`,
    serverCaPem: fixtures.sandbox.serverCaPem,
    identity: fixtures.tpp,
    connections: options.concurrency.keepAlive,
  });
  const form = { grant_type: 'client_credentials', client_id: ctx.moat.client.clientId, scope: 'accounts' };
  const run = loop(options.concurrency.keepAlive, async () => {
    const reply = await send(pool, { method: 'POST', path: '/token', form });
    if (reply.status !== 200) throw new Error(`floor: HTTP ${reply.status}`);
  });
  try {
    const measurement = await warmThenMeasure(options, (ms) => measureOnce(floors, () => run(ms)), run);
    return {
      id: 'floors',
      title: 'raw floor: bare node https server, mTLS keep-alive, same request form answered "ok"',
      operation: 'request',
      rows: [{ server: 'floor-keep-alive', measurement }],
      ratios: [],
    };
  } finally {
    await pool.close();
  }
}
