import { performance } from 'node:perf_hooks';
import { importJWK, SignJWT } from 'jose';
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from '../../src/config/schema.ts';
import { loadOrCreateSigningKeys } from '../../src/keys/signing-keys.ts';
import type { BenchContext } from './scenario.ts';

/*
 * The JWS floor: how many ID-token-sized JWTs this machine signs per second with Moat's own signing
 * keys, through jose (what oidc-provider signs with), one at a time and eight at once (jose signs
 * with WebCrypto, whose work runs on libuv's thread pool, so several signatures can use both cores).
 */

export interface JwsRate {
  alg: SigningAlgorithm;
  /** The algorithm Moat signs ID tokens with by default (keys.algorithms[0]), and the bench TPP registers. */
  configured: boolean;
  sequentialPerSecond: number;
  parallelPerSecond: number;
}

const SECONDS_PER_MEASUREMENT = 2;
const PARALLEL = 8;

function idTokenClaims(): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: 'https://127.0.0.1:8443',
    sub: 'cust-alice',
    aud: 'G8P3Uq7OpedAcr55y-QAtq4gxzgD-h5jU0qb8Pkayep',
    iat: now,
    exp: now + 300,
    auth_time: now,
    at_hash: 'kZ0hEqfbZ9hH8pK4xjYgOQ',
    c_hash: 'x4Wf0yM0Jm7a1pQ2hZ9lXw',
    openbanking_intent_id: 'aac-3f0b0c3e-5d7b-4a57',
  };
}

async function rate(sign: () => Promise<unknown>, inFlight: number, seconds = SECONDS_PER_MEASUREMENT): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let count = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        await sign();
        count += 1;
      }
    }),
  );
  return Number((count / ((performance.now() - started) / 1000)).toFixed(0));
}

export async function jwsSigningRates(ctx: BenchContext): Promise<JwsRate[]> {
  const { keys } = await loadOrCreateSigningKeys(ctx.fixtures.keysDir, SIGNING_ALGORITHMS);
  const rates: JwsRate[] = [];
  for (const alg of SIGNING_ALGORITHMS) {
    const stored = keys.find((k) => k.alg === alg && k.moat_state === 'active');
    if (stored === undefined) continue;
    const key = await importJWK(stored, alg);
    const sign = () => new SignJWT(idTokenClaims()).setProtectedHeader({ alg, kid: stored.kid, typ: 'JWT' }).sign(key);
    await rate(sign, PARALLEL, 0.5); // warm-up
    rates.push({ alg, configured: alg === SIGNING_ALGORITHMS[0], sequentialPerSecond: await rate(sign, 1), parallelPerSecond: await rate(sign, PARALLEL) });
  }
  return rates;
}
