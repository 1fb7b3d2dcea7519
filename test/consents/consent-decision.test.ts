import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { GrantDecision, RequestedDetail } from '../../src/consents/authorization-details.ts';
import { approveConsent, consentIdAtDecision, denyConsent, type GrantWriter } from '../../src/consents/consent-decision.ts';
import { createConsentService, type ConsentService } from '../../src/consents/consent-service.ts';
import { createSqlConsentStore } from '../../src/storage/sql/consent-store.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { ModelStore } from '../../src/kernel/model-store.ts';
import { createPostgresModelStore } from '../../src/storage/sql/postgres-model-store.ts';
import type { SqlClient } from '../../src/storage/sql/sql-client.ts';
import { migratedSqlBackends, openMigratedPglite } from '../support/databases.ts';

/*
 * The customer's decision writes two records in two stores: oidc-provider's grant and Moat's
 * consent. They agree — both written or neither — even when one store goes away mid-decision. The
 * failures here are real: the store's database is closed, so its next query fails as it would in an
 * outage. Grants live in their own database (as in production, the adapter's durable store), so one
 * can fail while the other still answers.
 */

const silent = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));

const accountAccess: RequestedDetail = { type: 'account_information', permissions: ['ReadAccountsBasic', 'ReadBalances'] };
const chosen: GrantDecision = {
  type: 'account_information',
  permissions: ['ReadAccountsBasic', 'ReadBalances'],
  accounts: [{ schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '60161331926819', accountId: 'acc-1' }],
} as GrantDecision;

/** The grant writer over a real model store: the payload oidc-provider's Grant would save. */
function grantsIn(store: ModelStore): GrantWriter {
  return {
    async save(granted) {
      const jti = randomUUID();
      await store.upsert('Grant', jti, { jti, kind: 'Grant', ...(granted === undefined ? {} : { rar: [granted] }) } as never);
      return jti;
    },
    async merge(grantId, granted, asked) {
      const before = await store.find('Grant', grantId);
      if (before === undefined) return undefined;
      const carries = (before as { rar?: unknown }).rar !== undefined;
      await store.upsert('Grant', grantId, { ...before, ...(granted !== undefined && (asked || carries) ? { rar: [granted] } : {}) } as never);
      return { undo: () => store.upsert('Grant', grantId, before) };
    },
    destroy: (grantId) => store.destroy('Grant', grantId),
  };
}

/**
 * A migrated PGlite database, closed: its next query fails as it would in an outage. One per file
 * (opening a PGlite copy is seconds of CPU): a closed database stays closed and holds nothing, so the
 * tests that need a grant or consent store gone share it, each through a store of its own.
 */
let closed: Promise<SqlClient> | undefined;
function closedDatabase(): Promise<SqlClient> {
  closed ??= openMigratedPglite().then(async (db) => {
    await db.drop();
    return db.sql;
  });
  return closed;
}

describe.each(migratedSqlBackends())('the consent decision on %s', (_name, open) => {
  let consentDb: { sql: SqlClient; drop(): Promise<void> };
  let grantDb: { sql: SqlClient; drop(): Promise<void> };
  let grantStore: ModelStore;
  let consents: ConsentService;

  // One consent database and grant store per backend, migrated copies of databases.ts's templates
  // (opening a PGlite database is seconds of CPU; the subject here is the decision, not the schema).
  // Every test's records have ids of their own; a test that needs a store gone closes one of its own.
  beforeAll(async () => {
    consentDb = await open();
    grantDb = await openMigratedPglite();
    grantStore = createPostgresModelStore(grantDb.sql);
    consents = createConsentService({ store: createSqlConsentStore(consentDb.sql), revokeGrant: (id) => grantStore.destroy('Grant', id), logger: silent });
  });
  afterAll(async () => {
    await grantDb?.drop();
    await consentDb?.drop();
  });

  /** A grant store whose database is closed, so its next query fails as it would in an outage. */
  async function unavailableGrantStore(): Promise<ModelStore> {
    return createPostgresModelStore(await closedDatabase());
  }

  it('authorises an intent under the id the grant names, minted once', async () => {
    const { consent: intent } = await consents.lodgeIntent({ clientId: 'tpp-1', detail: accountAccess, scope: 'openid accounts' });
    const request = { clientId: 'tpp-1', scope: 'openid accounts', intentId: intent.id, detail: accountAccess };
    const consentId = consentIdAtDecision(request, undefined);
    expect(consentId).toBe(intent.id);
    const decided = await approveConsent(consents, grantsIn(grantStore), { request, customerId: 'cust-1', consentId, granted: chosen, params: {} });
    if (!decided.ok) throw new Error(decided.description);
    expect(decided.consent).toEqual(expect.objectContaining({ id: intent.id, status: 'Authorised', grantId: decided.grantId, customerId: 'cust-1' }));
    const grant = await grantStore.find('Grant', decided.grantId);
    expect((grant as unknown as { rar: { consentId: string }[] }).rar[0]!.consentId).toBe(intent.id);
  });

  it('creates a scope consent under the id minted before the decision', async () => {
    const request = { clientId: 'tpp-1', scope: 'openid accounts' };
    const consentId = consentIdAtDecision(request, undefined);
    const decided = await approveConsent(consents, grantsIn(grantStore), { request, customerId: 'cust-1', consentId, granted: undefined, params: {} });
    expect(decided.ok && decided.consent.id).toBe(consentId);
  });

  it('leaves an intent AwaitingAuthorisation when the grant store is unavailable', async () => {
    const { consent: intent } = await consents.lodgeIntent({ clientId: 'tpp-1', detail: accountAccess, scope: 'openid accounts' });
    const request = { clientId: 'tpp-1', scope: 'openid accounts', intentId: intent.id, detail: accountAccess };
    const unavailable = await unavailableGrantStore();
    await expect(
      approveConsent(consents, grantsIn(unavailable), { request, customerId: 'cust-1', consentId: intent.id, granted: chosen, params: {} }),
    ).rejects.toThrow();
    expect((await consents.getForClient(intent.id, 'tpp-1')).status).toBe('AwaitingAuthorisation');
  });

  it('records no consent for a scope request when the grant store is unavailable', async () => {
    // A client of its own: the consent database is shared by this file's tests.
    const request = { clientId: 'tpp-no-grant-store', scope: 'openid accounts' };
    const unavailable = await unavailableGrantStore();
    await expect(
      approveConsent(consents, grantsIn(unavailable), {
        request,
        customerId: 'cust-1',
        consentId: consentIdAtDecision(request, undefined),
        granted: undefined,
        params: {},
      }),
    ).rejects.toThrow();
    expect(await consents.listForClient('tpp-no-grant-store')).toEqual([]);
  });

  it('removes the saved grant when the consent store is unavailable', async () => {
    const request = { clientId: 'tpp-1', scope: 'openid accounts' };
    const saved: string[] = [];
    const grants = grantsIn(grantStore);
    const watching: GrantWriter = {
      save: async (g) => {
        const id = await grants.save(g);
        saved.push(id);
        return id;
      },
      merge: grants.merge,
      destroy: grants.destroy,
    };
    // A consent store of its own on a closed database: the shared fixture's database is dropped after the test.
    const failing = createConsentService({
      store: createSqlConsentStore(await closedDatabase()),
      revokeGrant: (id) => grantStore.destroy('Grant', id),
      logger: silent,
    });
    await expect(
      approveConsent(failing, watching, { request, customerId: 'cust-1', consentId: consentIdAtDecision(request, undefined), granted: undefined, params: {} }),
    ).rejects.toThrow();
    expect(saved).toHaveLength(1);
    expect(await grantStore.find('Grant', saved[0]!)).toBeUndefined();
  });

  it('refuses a consent authorised meanwhile (another tab) and removes the second grant', async () => {
    const { consent: intent } = await consents.lodgeIntent({ clientId: 'tpp-1', detail: accountAccess, scope: 'openid accounts' });
    const request = { clientId: 'tpp-1', scope: 'openid accounts', intentId: intent.id, detail: accountAccess };
    const approval = { request, customerId: 'cust-1', consentId: intent.id, granted: chosen, params: {} };
    const first = await approveConsent(consents, grantsIn(grantStore), approval);
    const saved: string[] = [];
    const grants = grantsIn(grantStore);
    const second = await approveConsent(
      consents,
      {
        save: async (g) => {
          const id = await grants.save(g);
          saved.push(id);
          return id;
        },
        merge: grants.merge,
        destroy: grants.destroy,
      },
      approval,
    );
    expect(second.ok).toBe(false);
    expect(await grantStore.find('Grant', saved[0]!)).toBeUndefined();
    expect(first.ok && (await grantStore.find('Grant', first.grantId))).toEqual(expect.objectContaining({ kind: 'Grant' }));
    expect((await consents.getForClient(intent.id, 'tpp-1')).grantId).toBe(first.ok ? first.grantId : 'none');
  });

  describe('a Grant Management merge', () => {
    const more: GrantDecision = {
      ...chosen,
      accounts: [{ schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '60161331926820', accountId: 'acc-2' }],
    } as GrantDecision;
    const request = { clientId: 'tpp-1', scope: 'openid accounts', detail: accountAccess };
    const authorised = async (service: ConsentService) => {
      const first = await approveConsent(service, grantsIn(grantStore), {
        request,
        customerId: 'cust-1',
        consentId: consentIdAtDecision(request, undefined),
        granted: chosen,
        params: {},
      });
      if (!first.ok) throw new Error(first.description);
      return first;
    };
    const merge = (service: ConsentService, consentId: string) =>
      approveConsent(service, grantsIn(grantStore), {
        request,
        customerId: 'cust-1',
        consentId: consentIdAtDecision(request, undefined),
        granted: more,
        params: { grant_management_action: 'merge', grant_id: consentId },
      });
    const accountsOf = async (grantId: string) =>
      ((await grantStore.find('Grant', grantId)) as unknown as { rar: { accounts: { accountId: string }[] }[] }).rar[0]!.accounts.map((a) => a.accountId);

    it('writes the union into the consent’s own grant: the same grant id, the earlier grant kept', async () => {
      const first = await authorised(consents);
      const merged = await merge(consents, first.consent.id);
      if (!merged.ok) throw new Error(merged.description);
      expect(merged.grantId).toBe(first.grantId);
      expect(merged.consent).toMatchObject({ id: first.consent.id, status: 'Authorised', grantId: first.grantId });
      expect(await accountsOf(first.grantId)).toEqual(['acc-1', 'acc-2']);
    });

    it('refuses a merge into a grant revoked meanwhile, writing nothing back', async () => {
      const first = await authorised(consents);
      await consents.revoke(first.consent.id, { actor: 'customer', actorId: 'cust-1' });
      const merged = await merge(consents, first.consent.id);
      expect(merged).toEqual({ ok: false, description: expect.stringMatching(/no longer holds/) });
      expect(await grantStore.find('Grant', first.grantId)).toBeUndefined();
    });

    it('puts the grant back as it was when the consent cannot be amended', async () => {
      // A consent that ended while its grant was still there: the amendment fails after the grant was written.
      const keepingGrants = createConsentService({ store: createSqlConsentStore(consentDb.sql), revokeGrant: async () => undefined, logger: silent });
      const first = await authorised(keepingGrants);
      await keepingGrants.revoke(first.consent.id, { actor: 'customer', actorId: 'cust-1' });
      const merged = await merge(keepingGrants, first.consent.id);
      expect(merged.ok).toBe(false);
      expect(await accountsOf(first.grantId)).toEqual(['acc-1']);
    });
  });

  it('records a denial as Rejected without writing a grant', async () => {
    const { consent: intent } = await consents.lodgeIntent({ clientId: 'tpp-1', detail: accountAccess, scope: 'openid accounts' });
    const denied = await denyConsent(consents, {
      request: { clientId: 'tpp-1', scope: 'openid accounts', intentId: intent.id, detail: accountAccess },
      customerId: 'cust-1',
    });
    expect(denied.status).toBe('Rejected');
  });
});
