import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, importJWK, jwtVerify, SignJWT } from 'jose';
import { loadOrCreateSigningKeys, providerJwks, pruneRetiredKeys, rotateSigningKeys, type StoredKey } from '../../src/keys/signing-keys.ts';

const T0 = 1_800_000_000;

function keysDir(): string {
  return mkdtempSync(join(tmpdir(), 'moat-keys-'));
}

describe('signing keys', () => {
  it('generates one active key per algorithm on first start, with unique thumbprint kids, mode 0600', async () => {
    const dir = keysDir();
    const { keys, created, file } = await loadOrCreateSigningKeys(dir, ['PS256', 'ES256', 'EdDSA'], T0);
    expect(created).toHaveLength(3);
    expect(keys.map((k) => [k.alg, k.moat_state])).toEqual([
      ['PS256', 'active'],
      ['ES256', 'active'],
      ['EdDSA', 'active'],
    ]);
    expect(new Set(keys.map((k) => k.kid)).size).toBe(3);
    expect(Buffer.from(keys[0]!.n!, 'base64url').length * 8).toBeGreaterThanOrEqual(2048);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('loads the same keys on the next start instead of generating new ones', async () => {
    const dir = keysDir();
    const first = await loadOrCreateSigningKeys(dir, ['ES256'], T0);
    const second = await loadOrCreateSigningKeys(dir, ['ES256'], T0 + 10);
    expect(second.created).toEqual([]);
    expect(second.keys.map((k) => k.kid)).toEqual(first.keys.map((k) => k.kid));
  });

  it('rotates: the old key stays published verify-only and the new one signs', async () => {
    const dir = keysDir();
    const {
      keys: [old],
    } = await loadOrCreateSigningKeys(dir, ['ES256'], T0);
    const rotation = await rotateSigningKeys(dir, ['ES256'], { retainSeconds: 360, now: T0 + 100 });
    expect(rotation.retired.map((k) => k.kid)).toEqual([old!.kid]);
    const jwks = providerJwks(JSON.parse(readFileSync(join(dir, 'jwks.json'), 'utf8')).keys as StoredKey[]);
    expect(jwks.keys).toHaveLength(2);
    expect(jwks.keys[0]).toEqual(expect.objectContaining({ kid: rotation.activated[0]!.kid }));
    expect(jwks.keys[0]).not.toHaveProperty('key_ops');
    expect(jwks.keys[1]).toEqual(expect.objectContaining({ kid: old!.kid, key_ops: ['verify'] }));
    expect(jwks.keys.every((k) => !('moat_state' in k))).toBe(true);

    // A token the old key signed before the rotation still verifies against the published set.
    const { d: _d, ...publicOld } = old!;
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: old!.kid }).sign(await importJWK(old!, 'ES256'));
    const published = { keys: jwks.keys.map(({ d: _x, key_ops: _o, ...pub }) => pub) };
    await expect(jwtVerify(token, createLocalJWKSet(published as Parameters<typeof createLocalJWKSet>[0]))).resolves.toBeDefined();
    expect(publicOld.kid).toBe(old!.kid);
  });

  it('prunes a retired key only after every token it signed has expired', async () => {
    const dir = keysDir();
    await loadOrCreateSigningKeys(dir, ['ES256'], T0);
    await rotateSigningKeys(dir, ['ES256'], { retainSeconds: 360, now: T0 });
    expect(pruneRetiredKeys(dir, 360, T0 + 359)).toEqual([]);
    expect(pruneRetiredKeys(dir, 360, T0 + 360)).toHaveLength(1);
    const { keys } = await loadOrCreateSigningKeys(dir, ['ES256'], T0 + 361);
    expect(keys.map((k) => k.moat_state)).toEqual(['active']);
  });

  it('stages the next key so every instance publishes it before it signs', async () => {
    const dir = keysDir();
    await loadOrCreateSigningKeys(dir, ['ES256'], T0);
    const staged = await rotateSigningKeys(dir, ['ES256'], { retainSeconds: 360, stage: true, now: T0 });
    const next = staged.staged[0]!;
    const promoted = await rotateSigningKeys(dir, ['ES256'], { retainSeconds: 360, now: T0 + 60 });
    expect(promoted.activated[0]!.kid).toBe(next.kid);
  });
});
