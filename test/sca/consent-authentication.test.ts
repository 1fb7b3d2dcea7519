import { pino } from 'pino';
import { createConsentService, type ConsentService } from '../../src/consents/consent-service.ts';
import { createSqlConsentStore } from '../../src/storage/sql/consent-store.ts';
import { ACR_SCA, completedAuthentication, consentAuthentication, passwordFactor, totpFactor } from '../../src/sca/authentication.ts';
import { paymentLinkHash, paymentLinkOf } from '../../src/sca/dynamic-linking.ts';
import type { SqlClient } from '../../src/storage/sql/sql-client.ts';
import { migratedSqlBackends } from '../support/databases.ts';

/* The consent records how and when its customer was authenticated (issue 16 §3), on every SQL backend. */

const payment = {
  type: 'payment_initiation' as const,
  instructedAmount: { amount: '10.50', currency: 'GBP' },
  creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber' as const, identification: '11223321325698' },
  creditorName: 'ACME Inc',
};

describe.each(migratedSqlBackends())('the SCA a consent records on %s', (_name, open) => {
  let sql: SqlClient;
  let drop: () => Promise<void>;
  let service: ConsentService;

  beforeAll(async () => {
    ({ sql, drop } = await open());
    service = createConsentService({ store: createSqlConsentStore(sql), revokeGrant: async () => {}, logger: pino({ level: 'silent' }) });
  });
  afterAll(() => drop());

  it("stores acr, amr, the time and what a payment's authentication was linked to", async () => {
    const { consent } = await service.lodgeIntent({ clientId: 'tpp-a', detail: payment, scope: 'payments' });
    const link = paymentLinkOf(consent.id, payment);
    const auth = completedAuthentication({
      customerId: 'cust-alice',
      factors: [passwordFactor(), totpFactor()],
      authTime: new Date('2026-12-05T10:00:00Z'),
      link,
    });
    const authorised = await service.authorise({
      intentId: consent.id,
      clientId: 'tpp-a',
      customerId: 'cust-alice',
      scope: 'payments',
      grantId: 'grant-sca-1',
      granted: { ...payment, debtorAccount: { accountId: 'acc-1', schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '40001712345678' } },
      authentication: consentAuthentication(auth),
    });
    const expected = { acr: ACR_SCA, amr: ['pwd', 'otp', 'mfa'], authTime: new Date('2026-12-05T10:00:00Z'), linkHash: paymentLinkHash(link) };
    expect(authorised.authentication).toEqual(expected);
    expect((await service.findByGrantId('grant-sca-1'))?.authentication).toEqual(expected);
    const { rows } = await sql.query<{ sca_link: unknown }>('SELECT sca_link FROM consent WHERE id = $1', [consent.id]);
    expect(rows[0]?.sca_link).toEqual(link);
  });
});
