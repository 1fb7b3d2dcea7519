import { createHash } from 'node:crypto';
import { createMemoryModelStore } from '../src/storage/embedded/memory-model-store.ts';

/*
 * Heap bytes per live token in the embedded default's in-process store (issue 20: the embedded soak
 * holds ~100,000 of them, client_credentials at a few hundred a second for their 300 s), and the CPU
 * of writing and reading one. The payloads are shaped as Moat's own client_credentials tokens: one
 * client, one certificate. `node --expose-gc bench/store-entry.ts` (Node 24).
 */

const ENTRIES = 100_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

const clientId = 'f8ad31bd-b2f9-49f4-aad9-86838eb0e809';
const token = (jti: string) => ({
  iat: 1796686530,
  exp: 1796686830,
  scope: 'accounts',
  kind: 'ClientCredentials',
  jti,
  clientId,
  aud: 'https://localhost:8443/sandbox-api',
  'x5t#S256': 'MLj1iEDIsKy2mizcEwYpYKgE__aHTQirZxXrCDNg9iU',
  extra: {},
});

/** A token's id as oidc-provider makes them (43 base64url characters), made again for each read: a string held only by the store. */
const jtiOf = (run: number, i: number) => createHash('sha256').update(`${run}:${i}`).digest('base64url');

for (let run = 0; run < 3; run++) {
  const store = createMemoryModelStore();
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const writeStart = process.cpuUsage();
  for (let i = 0; i < ENTRIES; i++) {
    const id = jtiOf(run, i);
    await store.upsert('ClientCredentials', id, token(id), 300);
  }
  const written = process.cpuUsage(writeStart);
  gc();
  const bytes = (process.memoryUsage().heapUsed - heapBefore) / ENTRIES;
  const readStart = process.cpuUsage();
  for (let i = 0; i < ENTRIES; i++) await store.find('ClientCredentials', jtiOf(run, i));
  const read = process.cpuUsage(readStart);
  const µs = (u: NodeJS.CpuUsage) => ((u.user + u.system) / ENTRIES).toFixed(2);
  console.log(`${ENTRIES} client_credentials tokens: ${bytes.toFixed(0)} heap bytes each; µs CPU per upsert ${µs(written)}, per find ${µs(read)}`);
  await store.close();
}
