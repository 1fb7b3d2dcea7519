import type { Harness } from '../support/moat-harness.ts';
import { authorize, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import { redeem } from '../support/consents.ts';

/*
 * What a TPP's life writes to the audit log, end to end: registration and its certificate, the
 * customer's consent (narrowed), the tokens, the revocation — identifiers only, never a token.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

it('records registration, certificate, a narrowed consent, tokens and the revocation, chained and without token values', async () => {
  const code = await authorize(h, tpp, {
    extraParams: { authorization_details: JSON.stringify([{ type: 'account_information', permissions: ['ReadBalances', 'ReadParty'] }]) },
    permissionGroups: ['account-details'],
  });
  const { body: tokens } = await redeem(tpp, code);
  await h.moat.consents.revoke(tokens.consent_id as string, { actor: 'customer', actorId: 'cust-alice' });

  const records = await h.moat.audit.query({ clientId: tpp.client.client_id });
  const types = records.map((r) => r.type);
  expect(types).toEqual(expect.arrayContaining(['client.registered', 'certificate.registered', 'consent.narrowed', 'token.issued', 'consent.revoked']));
  expect(records.find((r) => r.type === 'consent.narrowed')).toEqual(
    expect.objectContaining({ actor: 'customer', customerId: 'cust-alice', subject: tokens.consent_id }),
  );
  expect(records.filter((r) => r.type === 'token.issued').map((r) => r.detail?.binding)).toContain('mtls');
  const everything = JSON.stringify(await h.moat.audit.query({}));
  for (const secret of [tokens.access_token, tokens.refresh_token, tokens.id_token]) expect(everything).not.toContain(secret);
  expect(await h.moat.audit.verify()).toEqual(expect.objectContaining({ intact: true }));
});
