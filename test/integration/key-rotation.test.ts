import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { sampleSum, scrapeMetrics } from '../support/admin-metrics.ts';
import { runMoat } from '../support/cli.ts';
import { describeWithServices } from '../support/databases.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Signing keys rotated on a schedule, across instances, without restarts (issue 21): the keys live in
 * the database every instance reads (keys.source database, private keys sealed with
 * keys.encryptionKey); the next key is published keys.rotation.jwksCacheSeconds + checkIntervalSeconds
 * before it signs, the old one stays published until what it signed has expired. The schedule's
 * clock is the test's; each instance sees a change within its check interval (or at once, notified).
 */

const DAY = 86_400;
const JWKS_CACHE = 3600;
const CHECK = 1;
const PUBLISH_AHEAD = JWKS_CACHE + CHECK;
/** retainSeconds: the longest token lifetime (300 s by default) plus 60 s of skew. */
const RETAIN = 360;

function rotatingKeys(encryptionKey: string): Record<string, unknown> {
  return { source: 'database', algorithms: ['PS256'], encryptionKey, rotation: { every: '90d', jwksCacheSeconds: JWKS_CACHE, checkIntervalSeconds: CHECK } };
}

type Jwk = { kid: string; alg: string; key_ops?: string[] };

async function jwksOf(tpp: RegisteredTpp, h: Harness): Promise<{ keys: Jwk[] }> {
  const res = await tpp.fetch(`${h.issuer}/jwks`);
  expect(res.status).toBe(200);
  return (await res.json()) as { keys: Jwk[] };
}

/** Polls until `check` passes (the window of a notified change or one periodic check), failing with its last error. */
async function eventually(check: () => Promise<void>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const activeKid = (jwks: { keys: Jwk[] }) => jwks.keys.filter((k) => k.key_ops === undefined).map((k) => k.kid);
const kids = (jwks: { keys: Jwk[] }) => jwks.keys.map((k) => k.kid).sort();

describeWithServices('signing keys rotated on a schedule across two instances on one Postgres', () => {
  const encryptionKey = randomBytes(32).toString('base64url');
  let t = Math.floor(Date.now() / 1000);
  const clock = () => new Date(t * 1000);
  let a: Harness;
  let b: Harness;
  let tppA: RegisteredTpp;
  let tppB: RegisteredTpp;

  beforeAll(async () => {
    // What a deployment's instances share besides the database: its keys (here by value).
    const sca = { totp: { encryptionKey: randomBytes(32).toString('base64url') } };
    a = await startMoat({ config: { keys: rotatingKeys(encryptionKey), sca }, keysNow: clock });
    const { postgresUrl, redisUrl, redisKeyPrefix } = a.config.storage;
    b = await startMoat({ config: { keys: rotatingKeys(encryptionKey), sca, storage: { postgresUrl, redisUrl, redisKeyPrefix } }, keysNow: clock });
    tppA = await onboardTpp(a);
    tppB = await onboardTpp(b);
  }, 120_000);
  afterAll(async () => {
    await tppA?.close();
    await tppB?.close();
    await b?.close();
    await a?.close();
  });

  /**
   * An ID token from each instance, after checking that the key it is signed with was published by
   * both instances before the token was asked for: no instance signs with a key a verifier holding
   * either instance's JWKS has not been offered.
   */
  async function signedByBoth(): Promise<string[]> {
    const tokens: string[] = [];
    for (const [h, tpp] of [
      [a, tppA],
      [b, tppB],
    ] as const) {
      const published = [...kids(await jwksOf(tppA, a)), ...kids(await jwksOf(tppB, b))];
      const idToken = (await authorizationCodeFlow(h, tpp)).tokens.id_token!;
      expect(published).toContain(decodeProtectedHeader(idToken).kid);
      tokens.push(idToken);
    }
    return tokens;
  }

  async function verifiesWithJwksOf(h: Harness, tpp: RegisteredTpp, token: string): Promise<void> {
    const jwks = createLocalJWKSet((await jwksOf(tpp, h)) as JSONWebKeySet);
    await expect(jwtVerify(token, jwks)).resolves.toBeDefined();
  }

  it('stages, activates, retires and removes a key on schedule; both instances follow within seconds, tokens verify throughout', async () => {
    const first = await jwksOf(tppA, a);
    expect(first.keys).toHaveLength(1);
    expect(kids(await jwksOf(tppB, b))).toEqual(kids(first));
    const [k1] = activeKid(first);
    const before = await signedByBoth();
    for (const token of before) expect(decodeProtectedHeader(token).kid).toBe(k1);

    // publishAhead before the 90 days end: the successor is published, verify only, by both.
    t += 90 * DAY - PUBLISH_AHEAD;
    let k2 = '';
    await eventually(async () => {
      for (const [h, tpp] of [
        [a, tppA],
        [b, tppB],
      ] as const) {
        const jwks = await jwksOf(tpp, h);
        expect(jwks.keys).toHaveLength(2);
        expect(activeKid(jwks)).toEqual([k1]);
        k2 = jwks.keys.find((k) => k.kid !== k1)!.kid;
        expect(jwks.keys.find((k) => k.kid === k2)!.key_ops).toEqual(['verify']);
      }
    });
    for (const token of await signedByBoth()) expect(decodeProtectedHeader(token).kid).toBe(k1);
    for (const h of [a, b]) {
      const metrics = await scrapeMetrics(h);
      expect(sampleSum(metrics, 'moat_signing_keys', { state: 'next' })).toBe(1);
      expect(sampleSum(metrics, 'moat_signing_keys', { state: 'active' })).toBe(1);
    }

    // The period is over and the successor was published for publishAhead: it signs, the old key only verifies.
    t += PUBLISH_AHEAD;
    await eventually(async () => {
      for (const [h, tpp] of [
        [a, tppA],
        [b, tppB],
      ] as const) {
        const jwks = await jwksOf(tpp, h);
        expect(activeKid(jwks)).toEqual([k2]);
        expect(jwks.keys.find((k) => k.kid === k1)!.key_ops).toEqual(['verify']);
      }
    });
    const after = await signedByBoth();
    for (const token of after) expect(decodeProtectedHeader(token).kid).toBe(k2);
    // Tokens signed before the rotation still verify with the JWKS either instance publishes, as do the new ones.
    for (const token of [...before, ...after]) {
      await verifiesWithJwksOf(a, tppA, token);
      await verifiesWithJwksOf(b, tppB, token);
    }

    // Everything the old key signed has expired: it is no longer published.
    t += RETAIN;
    await eventually(async () => {
      for (const [h, tpp] of [
        [a, tppA],
        [b, tppB],
      ] as const)
        expect(kids(await jwksOf(tpp, h))).toEqual([k2]);
    });

    // Each transition audited once, though both instances found it due.
    const audited = async (type: string) => (await a.moat.audit.query({ type })).map((r) => r.subject);
    expect(await audited('key.generated')).toEqual([k1]);
    expect(await audited('key.staged')).toEqual([k2]);
    expect(await audited('key.activated')).toEqual([k2]);
    expect(await audited('key.retired')).toEqual([k1]);
    expect(await audited('key.removed')).toEqual([k1]);
    expect(await a.moat.audit.verify()).toEqual(expect.objectContaining({ intact: true }));
  }, 180_000);
});

describeWithServices('`moat keys rotate` on the keys in the database', () => {
  // The schedule's clock runs with the real one (the CLI's) until the test moves it on.
  let offset = 0;
  let h: Harness;
  let tpp: RegisteredTpp;
  beforeAll(async () => {
    h = await startMoat({ config: { keys: rotatingKeys(randomBytes(32).toString('base64url')) }, keysNow: () => new Date(Date.now() + offset * 1000) });
    tpp = await onboardTpp(h);
  }, 120_000);
  afterAll(async () => {
    await tpp?.close();
    await h?.close();
  });

  it('publishes the next key on demand; the running instance activates it once it has been published for publishAhead, without a restart', async () => {
    const [current] = activeKid(await jwksOf(tpp, h));
    const file = join(h.dataDir, 'moat-cli.yaml');
    writeFileSync(file, JSON.stringify(h.config));
    const rotated = await runMoat(['keys', 'rotate', '--config', file]);
    expect(rotated.err).toBe('');
    expect(rotated.code).toBe(0);
    expect(rotated.out).toMatch(/^next: {4}\S+ \(PS256\), published now, signs from /);
    expect(rotated.out).toContain('no restart');
    const staged = /^next: {4}(\S+)/.exec(rotated.out)![1]!;
    await eventually(async () => expect(kids(await jwksOf(tpp, h))).toContain(staged));
    const listed = await runMoat(['keys', 'list', '--config', file]);
    expect(listed.out).toMatch(new RegExp(`${staged}\\s+PS256\\s+next\\s+created .* activates `));
    expect(activeKid(await jwksOf(tpp, h))).toEqual([current]);
    expect(decodeProtectedHeader((await authorizationCodeFlow(h, tpp)).tokens.id_token!).kid).toBe(current);

    offset += PUBLISH_AHEAD + 1;
    await eventually(async () => {
      const jwks = await jwksOf(tpp, h);
      expect(activeKid(jwks)).toEqual([staged]);
      expect(jwks.keys.find((k) => k.kid === current)!.key_ops).toEqual(['verify']);
    });
    expect(decodeProtectedHeader((await authorizationCodeFlow(h, tpp)).tokens.id_token!).kid).toBe(staged);
    expect((await h.moat.audit.query({ type: 'key.staged' })).find((r) => r.subject === staged)).toEqual(expect.objectContaining({ actor: 'operator' }));
    expect((await h.moat.audit.query({ type: 'key.activated' })).find((r) => r.subject === staged)).toEqual(expect.objectContaining({ actor: 'system' }));
  }, 120_000);
});

describeWithServices('a change to the keys in the database, heard at once (LISTEN/NOTIFY)', () => {
  let h: Harness;
  let tpp: RegisteredTpp;
  let file: string;
  beforeAll(async () => {
    // An hour between periodic checks: what this instance sees within seconds, it was told.
    const keys = {
      ...rotatingKeys(randomBytes(32).toString('base64url')),
      rotation: { every: '90d', jwksCacheSeconds: JWKS_CACHE, checkIntervalSeconds: 3600 },
    };
    h = await startMoat({ config: { keys } });
    tpp = await onboardTpp(h);
    file = join(h.dataDir, 'moat-cli.yaml');
    writeFileSync(file, JSON.stringify(h.config));
  }, 120_000);
  afterAll(async () => {
    await tpp?.close();
    await h?.close();
  });

  it('`moat keys rotate --immediately` (a compromised key) activates a new key at once, and the running instance signs with it within seconds', async () => {
    const [current] = activeKid(await jwksOf(tpp, h));
    const rotated = await runMoat(['keys', 'rotate', '--immediately', '--config', file]);
    expect(rotated.code).toBe(0);
    expect(rotated.out).toContain(`retired: ${current} (PS256)`);
    const fresh = /^active: {2}(\S+) \(PS256\)/m.exec(rotated.out)![1]!;
    await eventually(async () => expect(activeKid(await jwksOf(tpp, h))).toEqual([fresh]), 10_000);
    expect(decodeProtectedHeader((await authorizationCodeFlow(h, tpp)).tokens.id_token!).kid).toBe(fresh);
    expect((await jwksOf(tpp, h)).keys.find((k) => k.kid === current)!.key_ops).toEqual(['verify']);
  }, 120_000);

  it('takes a kid that starts with "-" as the kid, not as an option (base64url kids do, 1 in 64)', async () => {
    // "-h…" once read as --help: the usage, exit 0, nothing activated (seen in hsm-signing.test.ts).
    for (const sub of ['activate', 'retire']) {
      const run = await runMoat(['keys', sub, '-hq2Zb_x', '--config', file]);
      expect(run.out).not.toContain('usage:');
      expect(run.err).not.toContain('which key?');
      expect(run.code).toBe(2);
      expect(run.err).toContain('not with keys.source database — moat keys rotate');
    }
    const missing = await runMoat(['keys', 'activate', '--config', file]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('which key?');
  });

  it('refuses generate, activate and retire for keys in the database, naming the command to use', async () => {
    const refused = await runMoat(['keys', 'activate', 'some-kid', '--config', file]);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('not with keys.source database — moat keys rotate');
  });
});

describeWithServices('keys in the database that cannot be used', () => {
  const encryptionKey = randomBytes(32).toString('base64url');
  let offset = 0;
  let h: Harness;
  let tpp: RegisteredTpp;
  beforeAll(async () => {
    h = await startMoat({ config: { keys: rotatingKeys(encryptionKey) }, keysNow: () => new Date(Date.now() + offset * 1000) });
    tpp = await onboardTpp(h);
  }, 120_000);
  afterAll(async () => {
    await tpp?.close();
    await h?.close();
  });

  it('refuses to start an instance whose keys.encryptionKey does not open them, naming the key', async () => {
    const { postgresUrl, redisUrl, redisKeyPrefix } = h.config.storage;
    await expect(
      startMoat({ config: { keys: rotatingKeys(randomBytes(32).toString('base64url')), storage: { postgresUrl, redisUrl, redisKeyPrefix } } }),
    ).rejects.toThrow(/^signing key \S+ in the database cannot be used: its private key does not decrypt with keys\.encryptionKey$/);
  }, 60_000);

  it('keeps signing with the keys it has, and says why, when a key it is to load is corrupt; never a 500', async () => {
    const [current] = activeKid(await jwksOf(tpp, h));
    const file = join(h.dataDir, 'moat-cli.yaml');
    writeFileSync(file, JSON.stringify(h.config));
    const staged = /^next: {4}(\S+)/.exec((await runMoat(['keys', 'rotate', '--config', file])).out)![1]!;
    await eventually(async () => expect(kids(await jwksOf(tpp, h))).toContain(staged));
    // The staged key's sealed private key damaged in the database; its activation is then due.
    await h.moat.storage.sql.query("UPDATE signing_key SET private_jwk_sealed = 'v1.AAAA.AAAA.AAAA' WHERE kid = $1", [staged]);
    offset += PUBLISH_AHEAD + 1;
    await eventually(async () =>
      expect(h.logs).toContainEqual(
        expect.objectContaining({
          event: 'keys.refresh_failed',
          err: expect.objectContaining({
            message: `signing key ${staged} in the database cannot be used: its private key does not decrypt with keys.encryptionKey`,
          }),
        }),
      ),
    );
    expect(sampleSum(await scrapeMetrics(h), 'moat_signing_keys_refresh_failures_total')).toBeGreaterThanOrEqual(1);
    // This instance still signs with the key it had, which it publishes; requests succeed.
    expect(activeKid(await jwksOf(tpp, h))).toEqual([current]);
    expect(decodeProtectedHeader((await authorizationCodeFlow(h, tpp)).tokens.id_token!).kid).toBe(current);
  }, 120_000);
});

describe('signing keys in the database, on whichever backend this pass runs (the embedded default included)', () => {
  let t = Math.floor(Date.now() / 1000);
  let h: Harness;
  let tpp: RegisteredTpp;
  beforeAll(async () => {
    // No encryption key configured: the sandbox generates one under keys.dir.
    h = await startMoat({
      config: { keys: { source: 'database', algorithms: ['PS256'], rotation: { every: '90d', jwksCacheSeconds: JWKS_CACHE, checkIntervalSeconds: CHECK } } },
      keysNow: () => new Date(t * 1000),
    });
    tpp = await onboardTpp(h);
  }, 120_000);
  afterAll(async () => {
    await tpp?.close();
    await h?.close();
  });

  it('rotates on schedule without a restart, and a token signed before still verifies', async () => {
    const [k1] = activeKid(await jwksOf(tpp, h));
    const before = (await authorizationCodeFlow(h, tpp)).tokens.id_token!;
    expect(decodeProtectedHeader(before).kid).toBe(k1);
    t += 90 * DAY - PUBLISH_AHEAD;
    await eventually(async () => expect((await jwksOf(tpp, h)).keys).toHaveLength(2));
    t += PUBLISH_AHEAD;
    await eventually(async () => expect(activeKid(await jwksOf(tpp, h))).not.toEqual([k1]));
    const after = (await authorizationCodeFlow(h, tpp)).tokens.id_token!;
    expect(decodeProtectedHeader(after).kid).not.toBe(k1);
    const jwks = await jwksOf(tpp, h);
    expect(kids(jwks)).toContain(decodeProtectedHeader(after).kid);
    for (const token of [before, after]) await expect(jwtVerify(token, createLocalJWKSet(jwks as JSONWebKeySet))).resolves.toBeDefined();
    expect(h.logs).toContainEqual(expect.objectContaining({ event: 'keys.activated', kid: decodeProtectedHeader(after).kid }));
  }, 120_000);
});
