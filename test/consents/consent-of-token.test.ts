import type { KoaContextWithOIDC } from 'oidc-provider';
import { pino } from 'pino';
import { createConsentService, type ConsentService } from '../../src/consents/consent-service.ts';
import { consentOfTokenOnce, consentTokenClaims } from '../../src/consents/provider-hooks.ts';
import { createSqlConsentStore } from '../../src/storage/sql/consent-store.ts';
import { authenticationTokenClaims } from '../../src/provider/sca-policy.ts';
import { ACR_SCA, completedAuthentication, consentAuthentication, passwordFactor, totpFactor } from '../../src/sca/authentication.ts';
import { migratedSqlBackends } from '../support/databases.ts';

/*
 * extraTokenClaims is made of several hooks that each need the consent of the token being issued
 * (its id, the SCA claims, the RTS Art. 10a re-authentication rule): they share one lookup per token.
 */

describe.each(migratedSqlBackends())('the consent behind an issued token on %s', (_name, open) => {
  let drop: () => Promise<void>;
  let service: ConsentService;
  const lookups: string[] = [];

  beforeAll(async () => {
    const opened = await open();
    drop = opened.drop;
    const real = createConsentService({ store: createSqlConsentStore(opened.sql), revokeGrant: async () => {}, logger: pino({ level: 'silent' }) });
    service = {
      ...real,
      findByGrantId: (grantId) => {
        lookups.push(grantId);
        return real.findByGrantId(grantId);
      },
    };
    const { consent } = await service.lodgeIntent({
      clientId: 'tpp-a',
      scope: 'accounts',
      detail: { type: 'account_information', permissions: ['ReadAccountsBasic'] },
    });
    const auth = completedAuthentication({ customerId: 'cust-alice', factors: [passwordFactor(), totpFactor()], authTime: new Date('2026-12-05T10:00:00Z') });
    await service.authorise({
      intentId: consent.id,
      clientId: 'tpp-a',
      customerId: 'cust-alice',
      scope: 'accounts',
      grantId: 'grant-once-1',
      granted: { type: 'account_information', permissions: ['ReadAccountsBasic'], accounts: [] },
      authentication: consentAuthentication(auth),
    });
  });
  afterAll(() => drop());

  const ctx = { oidc: { params: { grant_type: 'authorization_code' }, entities: {} } } as unknown as KoaContextWithOIDC;

  it('looks the consent up once for all the claims of one access token', async () => {
    const consentOf = consentOfTokenOnce(service);
    const claims = authenticationTokenClaims(consentTokenClaims(consentOf), { consentOf, reauthDays: 90, now: () => new Date('2026-12-05T11:00:00Z') });
    lookups.length = 0;
    const issued = await claims(ctx, { grantId: 'grant-once-1' } as never);
    expect(issued).toEqual(expect.objectContaining({ consent_id: expect.stringMatching(/^aac-/), acr: ACR_SCA, amr: ['pwd', 'otp', 'mfa'] }));
    expect(lookups).toEqual(['grant-once-1']);
  });

  it('looks it up again for the next token, so a consent revoked in between is seen', async () => {
    const consentOf = consentOfTokenOnce(service);
    lookups.length = 0;
    await consentOf({ grantId: 'grant-once-1' });
    await consentOf({ grantId: 'grant-once-1' });
    expect(lookups).toEqual(['grant-once-1', 'grant-once-1']);
  });

  it('does not look anything up for a token without a grant (client_credentials)', async () => {
    const consentOf = consentOfTokenOnce(service);
    lookups.length = 0;
    expect(await consentOf({ clientId: 'tpp-a' })).toBeUndefined();
    expect(lookups).toEqual([]);
  });
});
