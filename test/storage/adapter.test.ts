import { errors } from 'oidc-provider';
import { createAdapterFactory, DURABLE_MODELS } from '../../src/storage/adapter.ts';
import { createMemoryModelStore } from '../../src/storage/embedded/memory-model-store.ts';

/*
 * The adapter turns a lost consume race into the replay it is. The stores' atomicity is covered by
 * the contract suite against every backend; here both stores are in-process so the adapter's own
 * decisions are what is tested.
 */
function setup() {
  const stores = { durable: createMemoryModelStore(), shortLived: createMemoryModelStore() };
  const Adapter = createAdapterFactory(stores, errors);
  return { stores, Adapter };
}

describe('the oidc-provider adapter', () => {
  it('keeps clients, grants and refresh tokens in the durable store and the rest in the short-lived one', async () => {
    const { stores, Adapter } = setup();
    await new Adapter('Client').upsert('c1', { client_id: 'c1' });
    await new Adapter('RefreshToken').upsert('r1', { jti: 'r1' }, 60);
    await new Adapter('AuthorizationCode').upsert('a1', { jti: 'a1' }, 60);
    await new Adapter('PushedAuthorizationRequest').upsert('p1', { jti: 'p1' }, 60);
    expect(await stores.durable.find('Client', 'c1')).toBeDefined();
    expect(await stores.durable.find('RefreshToken', 'r1')).toBeDefined();
    expect(await stores.shortLived.find('AuthorizationCode', 'a1')).toBeDefined();
    expect(await stores.shortLived.find('PushedAuthorizationRequest', 'p1')).toBeDefined();
    expect([...DURABLE_MODELS].sort()).toEqual(['Client', 'Grant', 'InitialAccessToken', 'RefreshToken', 'RegistrationAccessToken']);
  });

  it('lets one of 20 racing authorization code redemptions through and answers the rest invalid_grant, revoking the grant', async () => {
    const { stores, Adapter } = setup();
    await new Adapter('Grant').upsert('g1', { jti: 'g1', kind: 'Grant' });
    await new Adapter('AuthorizationCode').upsert('code1', { jti: 'code1', grantId: 'g1' }, 60);
    await new Adapter('AccessToken').upsert('at1', { jti: 'at1', grantId: 'g1' }, 60);
    await new Adapter('RefreshToken').upsert('rt1', { jti: 'rt1', grantId: 'g1' }, 60);
    const code = new Adapter('AuthorizationCode');
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => code.consume('code1')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected).toHaveLength(19);
    for (const r of rejected) {
      expect(r.reason).toBeInstanceOf(errors.InvalidGrant);
      // The detail is logged; the client sees oidc-provider's generic description.
      expect(r.reason.error_detail).toBe('authorization code already consumed');
    }
    expect(await stores.durable.find('Grant', 'g1')).toBeUndefined();
    expect(await stores.shortLived.find('AccessToken', 'at1')).toBeUndefined();
    expect(await stores.durable.find('RefreshToken', 'rt1')).toBeUndefined();
  });

  it('lets one of 20 racing uses of a request_uri through and answers the rest invalid_request_uri (FAPI 2.0 SP §5.3.2.2)', async () => {
    const { Adapter } = setup();
    const par = new Adapter('PushedAuthorizationRequest');
    await par.upsert('p1', { jti: 'p1' }, 60);
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => par.consume('p1')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x): x is PromiseRejectedResult => x.status === 'rejected')) {
      expect(r.reason).toBeInstanceOf(errors.InvalidRequestUri);
    }
    expect(results).toHaveLength(20);
  });

  it('refuses to consume what has vanished (revoked or expired after it was read)', async () => {
    const { Adapter } = setup();
    await expect(new Adapter('AuthorizationCode').consume('never-existed')).rejects.toBeInstanceOf(errors.InvalidGrant);
    await expect(new Adapter('RefreshToken').consume('never-existed')).rejects.toBeInstanceOf(errors.InvalidGrant);
  });
});
