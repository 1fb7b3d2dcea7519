import { compactVerify, importJWK } from 'jose';
import { generateHsmKey, listHsmKeys, loadOrCreateHsmKeys, pruneRetiredHsmKeys, rotateHsmKeys, signWithHsmKey } from '../../src/keys/hsm-signing-keys.ts';
import { classifyPkcs11Error, HsmUnavailableError, hsmFailure, openPkcs11Token, type Pkcs11Token } from '../../src/keys/pkcs11-token.ts';
import { softHsmAvailable, useSoftHsm, type SoftHsm } from '../support/softhsm.ts';

const T0 = 1_800_000_000;
const describeWithHsm = softHsmAvailable() ? describe : describe.skip;

/** A compact JWS made by the token, verified with the public JWK alone (RFC 7515 §5.2). */
async function signedByToken(token: Pkcs11Token, key: { kid: string; alg: 'PS256' | 'ES256'; publicJwk: object }): Promise<boolean> {
  const header = Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ sub: 'alice' })).toString('base64url');
  const signature = await signWithHsmKey(token, key, Buffer.from(`${header}.${payload}`));
  const verified = await compactVerify(`${header}.${payload}.${Buffer.from(signature).toString('base64url')}`, await importJWK(key.publicJwk, key.alg));
  return JSON.parse(new TextDecoder().decode(verified.payload)).sub === 'alice';
}

describe('PKCS#11 failures, classified (PKCS#11 v2.40 §5.1 return values)', () => {
  // SoftHSM has no session limit and no PIN lockout: these two are checked by their codes alone.
  it('reads CKR_SESSION_COUNT as session_limit, naming keys.pkcs11.maxSessions', () => {
    const err = hsmFailure(Object.assign(new Error('CKR_SESSION_COUNT'), { code: 0xb1 }), 'opening a session with token "moat"');
    expect(err).toEqual(
      expect.objectContaining({
        reason: 'session_limit',
        message: 'keys.pkcs11.maxSessions: the token has no session left while opening a session with token "moat" (CKR_SESSION_COUNT)',
      }),
    );
  });

  it('reads CKR_PIN_LOCKED as pin_locked, naming keys.pkcs11.pin', () => {
    expect(hsmFailure(Object.assign(new Error('CKR_PIN_LOCKED'), { code: 0xa4 }), 'logging in').message).toBe(
      "keys.pkcs11.pin: the token's PIN is locked (too many wrong PINs) while logging in (CKR_PIN_LOCKED)",
    );
  });

  it('reads a removed device, a lost login and a stale key handle for what they are, and anything else as a device error', () => {
    expect([0x32, 0xe0, 0xb3, 0x101, 0x82, 0x30, 0x5].map((code) => classifyPkcs11Error({ code }))).toEqual([
      'token_missing',
      'token_missing',
      'token_missing',
      'not_logged_in',
      'key_missing',
      'device_error',
      'device_error',
    ]);
  });
});

describeWithHsm('signing keys in a PKCS#11 token (SoftHSM2)', () => {
  let hsm: SoftHsm;
  beforeAll(() => {
    hsm = useSoftHsm();
  });

  it('generates an active PS256 and ES256 key in the token whose signatures verify with the published public key', async () => {
    const token = await openPkcs11Token({ ...hsm.createToken('sign'), maxSessions: 2 });
    try {
      const { keys, created } = await loadOrCreateHsmKeys(token, ['PS256', 'ES256'], T0);
      expect(created.map((k) => [k.alg, k.moat_state])).toEqual([
        ['PS256', 'active'],
        ['ES256', 'active'],
      ]);
      expect(keys.find((k) => k.alg === 'PS256')!.publicJwk).toEqual(expect.objectContaining({ kty: 'RSA', alg: 'PS256', use: 'sig' }));
      expect(keys.find((k) => k.alg === 'ES256')!.publicJwk).toEqual(expect.objectContaining({ kty: 'EC', crv: 'P-256', alg: 'ES256' }));
      for (const key of keys) {
        expect(key.publicJwk).not.toHaveProperty('d');
        await expect(signedByToken(token, key)).resolves.toBe(true);
      }
      // A second start finds the same keys and generates none.
      const again = await loadOrCreateHsmKeys(token, ['PS256', 'ES256'], T0 + 10);
      expect(again.created).toEqual([]);
      expect(again.keys.map((k) => k.kid).sort()).toEqual(keys.map((k) => k.kid).sort());
    } finally {
      token.close();
    }
  });

  it('keeps the private key sensitive and unextractable: the token refuses to reveal it', async () => {
    const token = await openPkcs11Token({ ...hsm.createToken('sensitive'), maxSessions: 1 });
    try {
      const key = await generateHsmKey(token, 'ES256', 'active', T0);
      const { graphene } = token;
      await token.withSession((session) => {
        const found = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, id: Buffer.from(key.kid) });
        expect(found.length).toBe(1);
        const privateKey = found.items(0).toType<import('graphene-pk11').PrivateKey>();
        expect(privateKey.getAttribute({ sensitive: null, extractable: null })).toEqual({ sensitive: true, extractable: false });
        expect(() => privateKey.getAttribute({ value: null })).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
      });
    } finally {
      token.close();
    }
  });

  it('rotates with overlapping publication: stage publishes next, rotate activates it and retires the old one, expired ones are destroyed', async () => {
    const token = await openPkcs11Token({ ...hsm.createToken('rotate'), maxSessions: 2 });
    try {
      const {
        keys: [first],
      } = await loadOrCreateHsmKeys(token, ['ES256'], T0);
      const staged = await rotateHsmKeys(token, ['ES256'], { retainSeconds: 600, stage: true, now: T0 + 100 });
      // Staging on a first rotation activates a new key and stages another.
      expect(staged.retired.map((k) => k.kid)).toEqual([first!.kid]);
      const nextKid = staged.staged[0]!.kid;
      let listed = await listHsmKeys(token);
      expect(listed.map((k) => [k.kid, k.moat_state])).toEqual(
        expect.arrayContaining([
          [first!.kid, 'retired'],
          [nextKid, 'next'],
        ]),
      );

      const rotated = await rotateHsmKeys(token, ['ES256'], { retainSeconds: 600, now: T0 + 200 });
      expect(rotated.activated.map((k) => k.kid)).toEqual([nextKid]);
      listed = await listHsmKeys(token);
      expect(listed.filter((k) => k.moat_state === 'active').map((k) => k.kid)).toEqual([nextKid]);
      expect(listed.filter((k) => k.moat_state === 'retired')).toHaveLength(2);
      // The retired keys still verify (their public halves stay), and still sign in the token.
      for (const key of listed) await expect(signedByToken(token, key)).resolves.toBe(true);

      // Past retainSeconds, the first retired key is gone from the token, both halves.
      const pruned = await pruneRetiredHsmKeys(token, 600, T0 + 701);
      expect(pruned.map((k) => k.kid)).toEqual([first!.kid]);
      expect((await listHsmKeys(token)).map((k) => k.kid)).not.toContain(first!.kid);
      await expect(signWithHsmKey(token, first!, Buffer.from('x'))).rejects.toEqual(expect.objectContaining({ reason: 'key_missing' }));
    } finally {
      token.close();
    }
  });

  it('signs on several sessions at once (the library initialised with CKF_OS_LOCKING_OK) and queues signatures beyond maxSessions, every one verifying', async () => {
    const token = await openPkcs11Token({ ...hsm.createToken('pool'), maxSessions: 4 });
    try {
      const { keys } = await loadOrCreateHsmKeys(token, ['PS256', 'ES256'], T0);
      // Without CKF_OS_LOCKING_OK SoftHSM crashed or hung the process under such load (not every run).
      let next = 0;
      const verified: boolean[] = [];
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < 300) {
            next += 1;
            verified.push(await signedByToken(token, keys[next % 2]!));
          }
        }),
      );
      expect(verified).toEqual(Array(verified.length).fill(true));
      expect(verified.length).toBeGreaterThanOrEqual(300);
    } finally {
      token.close();
    }
  });

  it('refuses a wrong PIN naming keys.pkcs11.pin', async () => {
    const { library, tokenLabel } = hsm.createToken('wrong-pin');
    const opening = openPkcs11Token({ library, tokenLabel, pin: '000000', maxSessions: 1 });
    await expect(opening).rejects.toBeInstanceOf(HsmUnavailableError);
    await expect(opening).rejects.toEqual(
      expect.objectContaining({
        reason: 'pin_incorrect',
        configKey: 'keys.pkcs11.pin',
        message: expect.stringMatching(/^keys\.pkcs11\.pin: the token refused the PIN/),
      }),
    );
  });

  it('refuses a token that is not there naming keys.pkcs11.tokenLabel', async () => {
    await expect(openPkcs11Token({ library: hsm.library, tokenLabel: 'absent', pin: '123456', maxSessions: 1 })).rejects.toEqual(
      expect.objectContaining({ reason: 'token_missing', message: expect.stringMatching(/^keys\.pkcs11\.tokenLabel: .*no token labelled "absent"/) }),
    );
  });

  it('refuses a library that is not PKCS#11 naming keys.pkcs11.library', async () => {
    await expect(openPkcs11Token({ library: '/nonexistent/libpkcs11.so', tokenLabel: 'x', pin: '1', maxSessions: 1 })).rejects.toEqual(
      expect.objectContaining({ reason: 'library_unavailable', configKey: 'keys.pkcs11.library' }),
    );
  });

  it('fails a signature with token_missing while the token is removed, and signs again once it is back', async () => {
    const config = hsm.createToken('removable');
    const token = await openPkcs11Token({ ...config, maxSessions: 2 });
    try {
      const {
        keys: [key],
      } = await loadOrCreateHsmKeys(token, ['PS256'], T0);
      await expect(signedByToken(token, key!)).resolves.toBe(true);
      const putBack = hsm.removeToken(config.tokenLabel);
      await expect(signWithHsmKey(token, key!, Buffer.from('x'))).rejects.toEqual(expect.objectContaining({ reason: 'token_missing' }));
      putBack();
      await expect(signedByToken(token, key!)).resolves.toBe(true);
    } finally {
      token.close();
    }
  });
});
