import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { listHsmKeys, loadOrCreateHsmKeys, stageHsmKey, type HsmKey } from '../../src/keys/hsm-signing-keys.ts';
import { openPkcs11Token } from '../../src/keys/pkcs11-token.ts';
import { runMoat } from '../support/cli.ts';
import { withServices } from '../support/databases.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { softHsmAvailable, useSoftHsm } from '../support/softhsm.ts';
import { authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * The bank's HSM on a schedule (issue 21): keys.source pkcs11 with keys.rotation.every. Keys are
 * generated in the token (SoftHSM2), their states kept in Postgres, which every instance reads: the
 * next key is published keys.rotation.jwksCacheSeconds + checkIntervalSeconds before it signs,
 * activated, the old one retired, then removed and destroyed in the token — without a restart, each
 * transition made and audited once however many instances find it due. The schedule's clock is the
 * test's.
 */

const describeWithHsmAndServices = withServices() && softHsmAvailable() ? describe : describe.skip;
type Pkcs11 = { library: string; tokenLabel: string; pin: string };

const DAY = 86_400;
const JWKS_CACHE = 3600;
const CHECK = 1;
const PUBLISH_AHEAD = JWKS_CACHE + CHECK;
/** retainSeconds: the longest token lifetime (300 s by default) plus 60 s of skew. */
const RETAIN = 360;

function scheduledHsmKeys(pkcs11: Pkcs11, checkIntervalSeconds = CHECK): Record<string, unknown> {
  return { source: 'pkcs11', algorithms: ['PS256'], pkcs11, rotation: { every: '90d', jwksCacheSeconds: JWKS_CACHE, checkIntervalSeconds } };
}

type Jwk = { kid: string; alg: string; key_ops?: string[] };

async function jwksOf(tpp: RegisteredTpp, h: Harness): Promise<{ keys: Jwk[] }> {
  const res = await tpp.fetch(`${h.issuer}/jwks`);
  expect(res.status).toBe(200);
  return (await res.json()) as { keys: Jwk[] };
}

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

async function inToken<T>(pkcs11: Pkcs11, use: (token: Awaited<ReturnType<typeof openPkcs11Token>>) => Promise<T>): Promise<T> {
  const token = await openPkcs11Token({ ...pkcs11, maxSessions: 1 });
  try {
    return await use(token);
  } finally {
    token.close();
  }
}
const kidsInToken = async (pkcs11: Pkcs11) => (await inToken(pkcs11, listHsmKeys)).map((k: HsmKey) => k.kid).sort();

const activeKid = (jwks: { keys: Jwk[] }) => jwks.keys.filter((k) => k.key_ops === undefined).map((k) => k.kid);
const kids = (jwks: { keys: Jwk[] }) => jwks.keys.map((k) => k.kid).sort();

describeWithHsmAndServices('HSM keys rotated on a schedule across two instances on one Postgres (keys.source pkcs11, keys.rotation.every)', () => {
  let t = Math.floor(Date.now() / 1000);
  const clock = () => new Date(t * 1000);
  let pkcs11: Pkcs11;
  let k1 = '';
  let a: Harness;
  let b: Harness;
  let tppA: RegisteredTpp;
  let tppB: RegisteredTpp;

  beforeAll(async () => {
    // A deployment's token from before the schedule: one active key, its state in its label.
    pkcs11 = useSoftHsm().createToken('scheduled');
    k1 = (await inToken(pkcs11, (token) => loadOrCreateHsmKeys(token, ['PS256'], t))).keys[0]!.kid;
    // What a deployment's instances share besides the database and the HSM: the one-time-code key.
    const sca = { totp: { encryptionKey: randomBytes(32).toString('base64url') } };
    a = await startMoat({ config: { keys: scheduledHsmKeys(pkcs11), sca }, keysNow: clock });
    const { postgresUrl, redisUrl, redisKeyPrefix } = a.config.storage;
    b = await startMoat({ config: { keys: scheduledHsmKeys(pkcs11), sca, storage: { postgresUrl, redisUrl, redisKeyPrefix } }, keysNow: clock });
    tppA = await onboardTpp(a);
    tppB = await onboardTpp(b);
  }, 120_000);
  afterAll(async () => {
    await tppA?.close();
    await tppB?.close();
    await b?.close();
    await a?.close();
  });

  /** An ID token from each instance, checking first that both instances published the key it is signed with. */
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

  it("adopts the token's key, then stages, activates, retires, removes and destroys keys on schedule in the token; both instances follow, tokens verify throughout", async () => {
    for (const [h, tpp] of [
      [a, tppA],
      [b, tppB],
    ] as const)
      expect(activeKid(await jwksOf(tpp, h))).toEqual([k1]);
    const before = await signedByBoth();
    for (const token of before) expect(decodeProtectedHeader(token).kid).toBe(k1);

    // publishAhead before the 90 days end: the successor is generated in the token and published, verify only.
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
    expect(await kidsInToken(pkcs11)).toEqual([k1, k2].sort());
    // Never signs with the key before it has been published for publishAhead.
    for (const token of await signedByBoth()) expect(decodeProtectedHeader(token).kid).toBe(k1);

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
    for (const token of [...before, ...after]) {
      for (const [h, tpp] of [
        [a, tppA],
        [b, tppB],
      ] as const) {
        await expect(jwtVerify(token, createLocalJWKSet((await jwksOf(tpp, h)) as JSONWebKeySet))).resolves.toBeDefined();
      }
    }

    // Everything the old key signed has expired: unpublished, and destroyed in the token.
    t += RETAIN;
    await eventually(async () => {
      for (const [h, tpp] of [
        [a, tppA],
        [b, tppB],
      ] as const)
        expect(kids(await jwksOf(tpp, h))).toEqual([k2]);
    });
    await eventually(async () => expect(await kidsInToken(pkcs11)).toEqual([k2]));

    // Each transition made and audited once, though both instances found it due.
    const audited = async (type: string) => (await a.moat.audit.query({ type })).map((r) => r.subject);
    expect(await audited('key.adopted')).toEqual([k1]);
    expect(await audited('key.generated')).toEqual([]);
    expect(await audited('key.staged')).toEqual([k2]);
    expect(await audited('key.activated')).toEqual([k2]);
    expect(await audited('key.retired')).toEqual([k1]);
    expect(await audited('key.removed')).toEqual([k1]);
  }, 180_000);
});

describeWithHsmAndServices('`moat keys rotate` on HSM keys on a schedule', () => {
  let offset = 0;
  let pkcs11: Pkcs11;
  let h: Harness;
  let tpp: RegisteredTpp;
  let file: string;
  beforeAll(async () => {
    pkcs11 = useSoftHsm().createToken('rotate-cli');
    h = await startMoat({ config: { keys: scheduledHsmKeys(pkcs11) }, keysNow: () => new Date(Date.now() + offset * 1000) });
    tpp = await onboardTpp(h);
    file = join(h.dataDir, 'moat-cli.yaml');
    writeFileSync(file, JSON.stringify(h.config));
  }, 120_000);
  afterAll(async () => {
    await tpp?.close();
    await h?.close();
  });

  it('generates the next key in the token on demand; the running instance publishes it at once and signs with it once published for publishAhead, no restart', async () => {
    const [current] = activeKid(await jwksOf(tpp, h));
    expect((await h.moat.audit.query({ type: 'key.generated' })).map((r) => r.subject)).toEqual([current]);
    const rotated = await runMoat(['keys', 'rotate', '--config', file]);
    expect(rotated.err).toBe('');
    expect(rotated.code).toBe(0);
    expect(rotated.out).toMatch(/^next: {4}\S+ \(PS256\), published now, signs from /);
    expect(rotated.out).toContain('no restart');
    const staged = /^next: {4}(\S+)/.exec(rotated.out)![1]!;
    expect(await kidsInToken(pkcs11)).toContain(staged);
    await eventually(async () => expect(kids(await jwksOf(tpp, h))).toContain(staged));
    expect(activeKid(await jwksOf(tpp, h))).toEqual([current]);
    expect(decodeProtectedHeader((await authorizationCodeFlow(h, tpp)).tokens.id_token!).kid).toBe(current);
    const listed = await runMoat(['keys', 'list', '--config', file]);
    expect(listed.out).toMatch(new RegExp(`${staged}\\s+PS256\\s+next\\s+created .* activates `));

    offset += PUBLISH_AHEAD + 1;
    await eventually(async () => expect(activeKid(await jwksOf(tpp, h))).toEqual([staged]));
    expect(decodeProtectedHeader((await authorizationCodeFlow(h, tpp)).tokens.id_token!).kid).toBe(staged);
    expect((await h.moat.audit.query({ type: 'key.staged' })).find((r) => r.subject === staged)).toEqual(expect.objectContaining({ actor: 'operator' }));
    expect((await h.moat.audit.query({ type: 'key.activated' })).find((r) => r.subject === staged)).toEqual(expect.objectContaining({ actor: 'system' }));

    const refused = await runMoat(['keys', 'activate', staged, '--config', file]);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('not with keys.source pkcs11 with keys.rotation.every — moat keys rotate');
  }, 120_000);
});

describeWithHsmAndServices('a token with a key staged by hand, moved to the schedule', () => {
  const t = Math.floor(Date.now() / 1000);
  let pkcs11: Pkcs11;
  let h: Harness;
  let tpp: RegisteredTpp;
  beforeAll(async () => {
    pkcs11 = useSoftHsm().createToken('adopt-next');
    await inToken(pkcs11, async (token) => {
      await loadOrCreateHsmKeys(token, ['PS256'], t);
      await stageHsmKey(token, 'PS256', t);
    });
    h = await startMoat({ config: { keys: scheduledHsmKeys(pkcs11) }, keysNow: () => new Date(t * 1000) });
    tpp = await onboardTpp(h);
  }, 120_000);
  afterAll(async () => {
    await tpp?.close();
    await h?.close();
  });

  it("keeps both keys in their states, the staged one to sign when the active key's period ends", async () => {
    const jwks = await jwksOf(tpp, h);
    expect(jwks.keys).toHaveLength(2);
    const [active] = activeKid(jwks);
    const staged = jwks.keys.find((k) => k.kid !== active)!;
    expect(staged.key_ops).toEqual(['verify']);
    const { rows } = await h.moat.storage.sql.query<{ kid: string; state: string; activate_at: Date | null }>(
      "SELECT kid, state, activate_at FROM signing_key WHERE source = 'pkcs11'",
    );
    expect(rows.find((r) => r.kid === staged.kid)).toEqual(expect.objectContaining({ state: 'next', activate_at: new Date((t + 90 * DAY) * 1000) }));
    expect((await h.moat.audit.query({ type: 'key.adopted' })).map((r) => r.subject).sort()).toEqual([active, staged.kid].sort());
    expect(decodeProtectedHeader((await authorizationCodeFlow(h, tpp)).tokens.id_token!).kid).toBe(active);
  }, 60_000);
});
