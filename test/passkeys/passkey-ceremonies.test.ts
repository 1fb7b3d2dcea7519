import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPasskeyCeremonies, PasskeyRefused, type PasskeyCeremonies, type PasskeyRefusal } from '../../src/passkeys/passkey-ceremonies.ts';
import type { PasskeyStore } from '../../src/passkeys/passkey-store.ts';
import { createSqlPasskeyStore } from '../../src/storage/sql/passkey-store.ts';
import { createMemoryModelStore } from '../../src/storage/embedded/memory-model-store.ts';
import type { ModelStore } from '../../src/kernel/model-store.ts';
import { connectRedis } from '../../src/storage/redis/redis-client.ts';
import { createRedisModelStore } from '../../src/storage/redis/redis-model-store.ts';
import { createPgliteSqlClient, createPgSqlClient } from '../../src/storage/sql/sql-client.ts';
import { chromiumAvailable, useChromium, useTabs } from '../support/chromium.ts';
import { copyMigratedEmbeddedDatabase, createMigratedThrowawayPostgres, withServices, redisTestPrefix } from '../support/databases.ts';
import { openCeremonyPage } from '../support/virtual-authenticator.ts';

/*
 * The WebAuthn ceremonies (WebAuthn L2 §7.1, §7.2) against responses a real authenticator made:
 * Chromium's virtual authenticator, on pages the browser answers at the right or a wrong origin.
 * The server side is driven directly, on both storage pairs Moat ships.
 */

const ISSUER = 'https://localhost:7443';
const ALICE = 'cust-alice';

interface Backends {
  store: PasskeyStore;
  challenges: ModelStore;
  close(): Promise<void>;
}

const backends: [string, () => Promise<Backends>][] = [
  [
    'PGlite and the in-process store',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'moat-passkeys-'));
      await copyMigratedEmbeddedDatabase(join(dir, 'pglite'));
      const sql = await createPgliteSqlClient(join(dir, 'pglite'));
      const challenges = createMemoryModelStore();
      return {
        store: createSqlPasskeyStore(sql),
        challenges,
        close: async () => {
          await sql.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
];
if (withServices()) {
  backends.push([
    'Postgres and Redis',
    async () => {
      const db = await createMigratedThrowawayPostgres();
      const sql = createPgSqlClient(db.url);
      const prefix = redisTestPrefix();
      const challenges = createRedisModelStore(await connectRedis(prefix.url), prefix.prefix);
      return {
        store: createSqlPasskeyStore(sql),
        challenges,
        close: async () => {
          await challenges.close();
          await prefix.cleanup();
          await sql.close();
          await db.drop();
        },
      };
    },
  ]);
}

const describeInBrowser = chromiumAvailable() ? describe : describe.skip;

const tabs = useTabs(useChromium());

async function refusal(promise: Promise<unknown>): Promise<PasskeyRefusal> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof PasskeyRefused) return err.code;
    throw err;
  }
  throw new Error('the response was accepted');
}

describeInBrowser.each(backends)('passkey ceremonies on %s', (_name, open) => {
  let b: Backends;
  let ceremonies: PasskeyCeremonies;
  beforeAll(async () => {
    b = await open();
    ceremonies = createPasskeyCeremonies({ issuer: ISSUER, rpName: 'Moat Bank', store: b.store, challenges: b.challenges });
  });
  afterAll(async () => {
    await b?.close();
  });

  /** A customer with a fresh authenticator and one passkey enrolled on it. */
  async function enrolled(customerId: string, options: Parameters<typeof openCeremonyPage>[2] = {}) {
    const device = await openCeremonyPage(tabs, ISSUER, options);
    const binding = `dashboard:${customerId}`;
    const response = await device.register(await ceremonies.registrationOptions({ customerId, customerName: customerId, binding }));
    const passkey = await ceremonies.register({ customerId, binding, response, name: 'Laptop' });
    return { device, passkey };
  }

  it('enrols a passkey made with user verification, with its public key, counter and flags (WebAuthn L2 §7.1)', async () => {
    const { device, passkey } = await enrolled('cust-enrol');
    try {
      const [stored] = await b.store.listForCustomer('cust-enrol');
      expect(stored).toMatchObject({
        id: passkey.id,
        customerId: 'cust-enrol',
        name: 'Laptop',
        deviceType: 'singleDevice',
        backedUp: false,
        transports: ['internal'],
      });
      expect(stored!.publicKey.length).toBeGreaterThan(60);
      expect(await device.credentialCount()).toBe(1);
    } finally {
      await device.close();
    }
  });

  it('signs in with a device-bound passkey verified by its user, and the counter moves forward', async () => {
    const { device, passkey } = await enrolled('cust-sign-in');
    try {
      const binding = 'interaction:abc';
      // No customer named: the authenticator offers its discoverable passkey and its user handle says whose.
      const options = await ceremonies.authenticationOptions({ binding });
      expect(options.userVerification).toBe('required');
      expect(options.rpId).toBe('localhost');
      const result = await ceremonies.authenticate({ binding, response: await device.authenticate(options) });
      expect(result).toMatchObject({ customerId: 'cust-sign-in', credentialId: passkey.id, userVerified: true, deviceBound: true });
      expect(result.linkedHash).toBeUndefined();
      const [stored] = await b.store.listForCustomer('cust-sign-in');
      expect(stored!.signCount).toBeGreaterThan(passkey.signCount);
      expect(stored!.lastUsedAt).toBeInstanceOf(Date);
    } finally {
      await device.close();
    }
  });

  it("refuses an assertion whose signature counter went backwards, as a cloned authenticator's would (WebAuthn L2 §6.1.1, §7.2 step 21)", async () => {
    const { device } = await enrolled('cust-counter');
    try {
      // Two assertions from one authenticator: the earlier one carries the lower counter. Presenting
      // the later one first leaves the earlier one looking like a copy of the key that fell behind.
      const first = { binding: 'interaction:first' };
      const second = { binding: 'interaction:second' };
      const earlier = await device.authenticate(await ceremonies.authenticationOptions(first));
      const later = await device.authenticate(await ceremonies.authenticationOptions(second));
      await ceremonies.authenticate({ ...second, response: later });
      const [afterLater] = await b.store.listForCustomer('cust-counter');
      expect(await refusal(ceremonies.authenticate({ ...first, response: earlier }))).toBe('counter_regressed');
      const [afterRefusal] = await b.store.listForCustomer('cust-counter');
      expect(afterRefusal!.signCount).toBe(afterLater!.signCount);
    } finally {
      await device.close();
    }
  });

  it('tells a synced (backup eligible) passkey from a device-bound one', async () => {
    const { device } = await enrolled('cust-synced', { backupEligible: true });
    try {
      const options = await ceremonies.authenticationOptions({ binding: 'interaction:synced' });
      const result = await ceremonies.authenticate({ binding: 'interaction:synced', response: await device.authenticate(options) });
      expect(result.deviceBound).toBe(false);
      expect((await b.store.listForCustomer('cust-synced'))[0]).toMatchObject({ deviceType: 'multiDevice', backedUp: true });
    } finally {
      await device.close();
    }
  });

  it('links a payment challenge to its hash: the signed challenge carries it back (RTS Art. 5)', async () => {
    const { device } = await enrolled('cust-pay');
    try {
      const link = Buffer.alloc(32, 7).toString('base64url');
      const options = await ceremonies.authenticationOptions({ binding: 'interaction:pay', customerId: 'cust-pay', link, context: { consentId: 'pay-1' } });
      // 32 random bytes, then the link: 64 bytes in base64url.
      expect(Buffer.from(options.challenge, 'base64url').subarray(32).toString('base64url')).toBe(link);
      expect(options.allowCredentials).toHaveLength(1);
      const result = await ceremonies.authenticate({ binding: 'interaction:pay', customerId: 'cust-pay', response: await device.authenticate(options) });
      expect(result.linkedHash).toBe(link);
      expect(result.context).toEqual({ consentId: 'pay-1' });
    } finally {
      await device.close();
    }
  });

  it('refuses a replayed assertion: each challenge is spent once', async () => {
    const { device } = await enrolled('cust-replay');
    try {
      const options = await ceremonies.authenticationOptions({ binding: 'interaction:replay' });
      const response = await device.authenticate(options);
      await ceremonies.authenticate({ binding: 'interaction:replay', response });
      expect(await refusal(ceremonies.authenticate({ binding: 'interaction:replay', response }))).toBe('challenge_used');
    } finally {
      await device.close();
    }
  });

  it('lets only one of two racing submissions of the same assertion through', async () => {
    const { device } = await enrolled('cust-race');
    try {
      const options = await ceremonies.authenticationOptions({ binding: 'interaction:race' });
      const response = await device.authenticate(options);
      const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => ceremonies.authenticate({ binding: 'interaction:race', response })));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      expect(outcomes.filter((o) => o.status === 'rejected').map((o) => ((o as PromiseRejectedResult).reason as PasskeyRefused).code)).toEqual([
        'challenge_used',
        'challenge_used',
        'challenge_used',
        'challenge_used',
      ]);
    } finally {
      await device.close();
    }
  });

  it('refuses a challenge issued for another interaction', async () => {
    const { device } = await enrolled('cust-bound');
    try {
      const options = await ceremonies.authenticationOptions({ binding: 'interaction:one' });
      const response = await device.authenticate(options);
      expect(await refusal(ceremonies.authenticate({ binding: 'interaction:two', response }))).toBe('challenge_unknown');
    } finally {
      await device.close();
    }
  });

  it('refuses a registration and an assertion made on another origin, and enrols nothing', async () => {
    const { device } = await enrolled('cust-origin');
    try {
      // Same rpId (localhost), another port: a phishing page on the same host name.
      await device.goto('https://localhost:7444');
      const registrationOptions = await ceremonies.registrationOptions({ customerId: 'cust-origin', customerName: 'x', binding: 'dashboard:origin' });
      const registration = await device.register({ ...registrationOptions, excludeCredentials: [] });
      expect(await refusal(ceremonies.register({ customerId: 'cust-origin', binding: 'dashboard:origin', response: registration, name: 'x' }))).toBe(
        'wrong_origin',
      );
      const options = await ceremonies.authenticationOptions({ binding: 'interaction:origin' });
      expect(await refusal(ceremonies.authenticate({ binding: 'interaction:origin', response: await device.authenticate(options) }))).toBe('wrong_origin');
      expect(await b.store.listForCustomer('cust-origin')).toHaveLength(1);
    } finally {
      await device.close();
    }
  });

  it("refuses a response whose relying party id is not the issuer's host, even from the issuer's origin", async () => {
    // An issuer at login.moat-bank.example: a page there may use the parent domain as rpId (WebAuthn
    // L2 §5.1.3 step 8), which Moat refuses.
    const issuer = 'https://login.moat-bank.example:7443';
    const sub = createPasskeyCeremonies({ issuer, rpName: 'Moat Bank', store: b.store, challenges: b.challenges });
    const device = await openCeremonyPage(tabs, issuer);
    try {
      const options = await sub.registrationOptions({ customerId: 'cust-rp', customerName: 'x', binding: 'dashboard:rp' });
      const response = await device.register(options, 'moat-bank.example');
      expect(await refusal(sub.register({ customerId: 'cust-rp', binding: 'dashboard:rp', response, name: 'x' }))).toBe('wrong_relying_party');
      expect(await b.store.listForCustomer('cust-rp')).toEqual([]);
    } finally {
      await device.close();
    }
  });

  it('refuses a registration without user verification, and enrols nothing', async () => {
    const device = await openCeremonyPage(tabs, ISSUER, { hasUserVerification: false, isUserVerified: false });
    try {
      const options = await ceremonies.registrationOptions({ customerId: 'cust-no-uv', customerName: 'x', binding: 'dashboard:no-uv' });
      // A client that asks an authenticator without user verification to go ahead anyway, whatever the options said.
      const discouraged = { ...options, authenticatorSelection: { residentKey: 'discouraged', requireResidentKey: false, userVerification: 'discouraged' } };
      const response = await device.register(discouraged);
      expect(await refusal(ceremonies.register({ customerId: 'cust-no-uv', binding: 'dashboard:no-uv', response, name: 'x' }))).toBe('user_not_verified');
      expect(await b.store.listForCustomer('cust-no-uv')).toEqual([]);
    } finally {
      await device.close();
    }
  });

  it('refuses an assertion without user verification', async () => {
    const { device } = await enrolled('cust-no-uv-sign-in');
    try {
      await device.setUserVerified(false);
      const options = await ceremonies.authenticationOptions({ binding: 'interaction:no-uv' });
      const response = await device.authenticate({ ...options, userVerification: 'discouraged' });
      expect(await refusal(ceremonies.authenticate({ binding: 'interaction:no-uv', response }))).toBe('user_not_verified');
    } finally {
      await device.close();
    }
  });

  it('refuses a passkey it does not know, and one of another customer when the customer is known', async () => {
    const { device } = await enrolled('cust-known');
    try {
      await b.store.removeAll('cust-known');
      const options = await ceremonies.authenticationOptions({ binding: 'interaction:unknown' });
      expect(await refusal(ceremonies.authenticate({ binding: 'interaction:unknown', response: await device.authenticate(options) }))).toBe(
        'unknown_credential',
      );
    } finally {
      await device.close();
    }
    const other = await enrolled('cust-other');
    try {
      const options = await ceremonies.authenticationOptions({ binding: 'interaction:someone-else' });
      const response = await other.device.authenticate(options);
      expect(await refusal(ceremonies.authenticate({ binding: 'interaction:someone-else', customerId: ALICE, response }))).toBe('unknown_credential');
    } finally {
      await other.device.close();
    }
  });

  it('refuses the same authenticator enrolling one passkey twice, without a second row', async () => {
    const { device, passkey } = await enrolled('cust-twice');
    try {
      const options = await ceremonies.registrationOptions({ customerId: 'cust-twice', customerName: 'x', binding: 'dashboard:twice' });
      expect(options.excludeCredentials?.map((c) => c.id)).toEqual([passkey.id]);
      // A registration response replayed under a new challenge cannot pass; enrolling it again by the
      // store's own check: the same credential id is refused.
      await expect(b.store.add({ ...passkey })).rejects.toThrow('enrolled already');
      expect(await b.store.listForCustomer('cust-twice')).toHaveLength(1);
    } finally {
      await device.close();
    }
  });

  it('refuses malformed responses with malformed_response, and a forged signature with verification_failed', async () => {
    const { device } = await enrolled('cust-malformed');
    try {
      const binding = 'interaction:malformed';
      for (const response of [
        '',
        'not json',
        '{}',
        '[]',
        '{"id":"x","rawId":"x","type":"public-key","response":{},"clientExtensionResults":{}}',
        JSON.stringify({
          id: 'x',
          rawId: 'x',
          type: 'public-key',
          clientExtensionResults: {},
          response: { clientDataJSON: 'e30', authenticatorData: 'AA', signature: 'AA' },
        }),
        JSON.stringify({
          id: 'x\u0000',
          rawId: 'x',
          type: 'public-key',
          clientExtensionResults: {},
          response: { clientDataJSON: '!!', authenticatorData: 'AA', signature: 'AA' },
        }),
      ]) {
        expect(await refusal(ceremonies.authenticate({ binding, response }))).toBe('malformed_response');
      }
      const options = await ceremonies.authenticationOptions({ binding });
      const real = JSON.parse(await device.authenticate(options)) as { response: { signature: string } };
      const signature = Buffer.from(real.response.signature, 'base64url');
      signature[signature.length - 1]! ^= 0xff;
      real.response.signature = signature.toString('base64url');
      expect(await refusal(ceremonies.authenticate({ binding, response: JSON.stringify(real) }))).toBe('verification_failed');
      // Registration: an attestation object that is not CBOR.
      const regOptions = await ceremonies.registrationOptions({ customerId: 'cust-malformed', customerName: 'x', binding: 'dashboard:m' });
      const reg = JSON.parse(await device.register({ ...regOptions, excludeCredentials: [] })) as { response: { attestationObject: string } };
      reg.response.attestationObject = 'AAAA';
      expect(await refusal(ceremonies.register({ customerId: 'cust-malformed', binding: 'dashboard:m', response: JSON.stringify(reg), name: 'x' }))).toBe(
        'malformed_response',
      );
      expect(await b.store.listForCustomer('cust-malformed')).toHaveLength(1);
    } finally {
      await device.close();
    }
  });
});
