import { pino } from 'pino';
import type { AccountInformationDetail } from '../../src/consents/authorization-details.ts';
import { ConsentNotFound, ConsentStateConflict, IdempotencyConflict, TRANSITIONS, CONSENT_STATUSES } from '../../src/consents/consent.ts';
import { createConsentService, type ConsentService } from '../../src/consents/consent-service.ts';
import { createSqlConsentStore } from '../../src/storage/sql/consent-store.ts';
import type { SqlClient } from '../../src/storage/sql/sql-client.ts';
import { migratedSqlBackends } from '../support/databases.ts';

/*
 * The consent lifecycle on every SQL backend Moat ships (Postgres and the embedded PGlite): which
 * transitions are allowed, the audit trail of each, exactly-once under races, token revocation when
 * a consent ends, idempotent lodging and the expiry sweep.
 */

const backends = migratedSqlBackends();

const detail = (extra: Partial<AccountInformationDetail> = {}): AccountInformationDetail => ({
  type: 'account_information',
  permissions: ['ReadBalances'],
  ...extra,
});

describe('the lifecycle table', () => {
  it('ends in Rejected, Revoked, Expired and Consumed, and authorises only what awaits authorisation', () => {
    expect(TRANSITIONS.AwaitingAuthorisation).toEqual(['Authorised', 'Rejected']);
    expect(TRANSITIONS.Authorised).toEqual(['Revoked', 'Expired', 'Consumed']);
    for (const final of ['Rejected', 'Revoked', 'Expired', 'Consumed'] as const) expect(TRANSITIONS[final]).toEqual([]);
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...CONSENT_STATUSES].sort());
  });
});

describe.each(backends)('consents on %s', (_name, open) => {
  let sql: SqlClient;
  let drop: () => Promise<void>;
  let service: ConsentService;
  const revokedGrants: string[] = [];

  beforeAll(async () => {
    ({ sql, drop } = await open());
    service = createConsentService({
      store: createSqlConsentStore(sql),
      revokeGrant: async (grantId) => {
        revokedGrants.push(grantId);
      },
      logger: pino({ level: 'silent' }),
    });
  });
  afterAll(() => drop());

  const authorised = async (grantId: string, extra: Partial<AccountInformationDetail> = {}) => {
    const { consent } = await service.lodgeIntent({ clientId: 'tpp-a', detail: detail(extra), scope: 'accounts' });
    return service.authorise({
      intentId: consent.id,
      clientId: 'tpp-a',
      customerId: 'cust-alice',
      scope: 'accounts',
      grantId,
      granted: { ...detail(extra), accounts: [{ accountId: 'acc-1', schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '40001712345678' }] },
      ...(extra.expirationDateTime === undefined ? {} : { expiresAt: new Date(extra.expirationDateTime) }),
    });
  };

  it('binds an authorised consent to its customer and grant, with the granted detail and the consent id', async () => {
    const consent = await authorised('grant-1');
    expect(consent).toEqual(
      expect.objectContaining({ status: 'Authorised', customerId: 'cust-alice', grantId: 'grant-1', origin: 'intent', kind: 'account_access' }),
    );
    expect(consent.granted).toEqual(expect.objectContaining({ consentId: consent.id, accounts: [expect.objectContaining({ accountId: 'acc-1' })] }));
    expect(await service.findByGrantId('grant-1')).toEqual(consent);
  });

  it("records the TPP's last use of a consent by its grant: a later use replaces it, an earlier one never does (issue 18 point 6)", async () => {
    const consent = await authorised('grant-used');
    const listed = async () => (await service.listForCustomer('cust-alice')).find((c) => c.id === consent.id)!;
    expect((await listed()).lastUsedAt).toBeUndefined();
    await service.recordUse('grant-used', new Date('2031-01-02T10:00:00Z'));
    expect((await listed()).lastUsedAt).toEqual(new Date('2031-01-02T10:00:00Z'));
    // Two instances can write out of order: the older use does not win.
    await service.recordUse('grant-used', new Date('2031-01-02T09:59:00Z'));
    expect((await listed()).lastUsedAt).toEqual(new Date('2031-01-02T10:00:00Z'));
    await service.recordUse('grant-used', new Date('2031-01-02T10:05:00Z'));
    expect((await listed()).lastUsedAt).toEqual(new Date('2031-01-02T10:05:00Z'));
    // A grant no consent is bound to (an openid-only sign-in), or one no string can name: nothing.
    await expect(service.recordUse('grant-of-no-consent', new Date())).resolves.toBeUndefined();
    await expect(service.recordUse('grant\u0000', new Date())).resolves.toBeUndefined();
  });

  it('refuses to authorise a consent twice (it is bound to one customer)', async () => {
    const consent = await authorised('grant-2');
    await expect(
      service.authorise({ intentId: consent.id, clientId: 'tpp-a', customerId: 'cust-bob', scope: 'accounts', grantId: 'grant-x' }),
    ).rejects.toBeInstanceOf(ConsentStateConflict);
    expect((await service.getForCustomer(consent.id, 'cust-alice')).customerId).toBe('cust-alice');
    await expect(service.getForCustomer(consent.id, 'cust-bob')).rejects.toBeInstanceOf(ConsentNotFound);
  });

  it('lets only the TPP that created a consent read or authorise it', async () => {
    const { consent } = await service.lodgeIntent({ clientId: 'tpp-a', detail: detail(), scope: 'accounts' });
    await expect(service.getForClient(consent.id, 'tpp-b')).rejects.toBeInstanceOf(ConsentNotFound);
    await expect(
      service.authorise({ intentId: consent.id, clientId: 'tpp-b', customerId: 'cust-alice', scope: 'accounts', grantId: 'g' }),
    ).rejects.toBeInstanceOf(ConsentNotFound);
    expect((await service.getForClient(consent.id, 'tpp-a')).status).toBe('AwaitingAuthorisation');
  });

  it("revokes the grant's tokens when a consent is revoked, and records who did it", async () => {
    const consent = await authorised('grant-3');
    await service.revoke(consent.id, { actor: 'customer', actorId: 'cust-alice', reason: 'dashboard' });
    expect(revokedGrants).toContain('grant-3');
    const events = await service.events(consent.id);
    expect(events.map((e) => [e.toStatus, e.actor, e.actorId])).toEqual([
      ['AwaitingAuthorisation', 'tpp', 'tpp-a'],
      ['Authorised', 'customer', 'cust-alice'],
      ['Revoked', 'customer', 'cust-alice'],
    ]);
    expect(events[2]!.reason).toBe('dashboard');
  });

  it('records exactly one revocation of ten racing ones', async () => {
    const consent = await authorised('grant-4');
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => service.revoke(consent.id, { actor: 'tpp', actorId: 'tpp-a' })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof ConsentStateConflict)).toBe(true);
    expect((await service.events(consent.id)).filter((e) => e.toStatus === 'Revoked')).toHaveLength(1);
  });

  it('refuses transitions out of a final status', async () => {
    const consent = await authorised('grant-5');
    await service.consume(consent.id, { actor: 'tpp', actorId: 'tpp-a' });
    // Consumed is final and keeps the tokens (the payment's status stays readable).
    expect(revokedGrants).not.toContain('grant-5');
    await expect(service.revoke(consent.id, { actor: 'customer', actorId: 'cust-alice' })).rejects.toThrow(/is Consumed and cannot become Revoked/);
  });

  it('expires authorised consents past their expiry, and only those', async () => {
    const due = await authorised('grant-6', { expirationDateTime: new Date(Date.now() + 1500).toISOString() });
    const later = await authorised('grant-7', { expirationDateTime: new Date(Date.now() + 3_600_000).toISOString() });
    expect(await service.expireDue(new Date(Date.now() + 2000))).toBe(1);
    expect((await service.getForClient(due.id, 'tpp-a')).status).toBe('Expired');
    expect((await service.getForClient(later.id, 'tpp-a')).status).toBe('Authorised');
    expect(revokedGrants).toContain('grant-6');
    expect(revokedGrants).not.toContain('grant-7');
    expect((await service.events(due.id)).at(-1)).toEqual(expect.objectContaining({ toStatus: 'Expired', actor: 'system' }));
  });

  it('lodges idempotently per TPP and key, and refuses the key with another body', async () => {
    const first = await service.lodgeIntent({ clientId: 'tpp-a', detail: detail(), scope: 'accounts', idempotencyKey: 'k-1' });
    const again = await service.lodgeIntent({ clientId: 'tpp-a', detail: detail(), scope: 'accounts', idempotencyKey: 'k-1' });
    expect(again).toEqual({ consent: first.consent, replayed: true });
    const otherTpp = await service.lodgeIntent({ clientId: 'tpp-b', detail: detail(), scope: 'accounts', idempotencyKey: 'k-1' });
    expect(otherTpp.replayed).toBe(false);
    await expect(
      service.lodgeIntent({ clientId: 'tpp-a', detail: detail({ permissions: ['ReadAccountsBasic'] }), scope: 'accounts', idempotencyKey: 'k-1' }),
    ).rejects.toBeInstanceOf(IdempotencyConflict);
  });

  it("lists a customer's consents, newest change first", async () => {
    const list = await service.listForCustomer('cust-alice');
    expect(list.length).toBeGreaterThanOrEqual(6);
    const times = list.map((c) => c.statusUpdatedAt.getTime());
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect(list.every((c) => c.customerId === 'cust-alice')).toBe(true);
  });
});
