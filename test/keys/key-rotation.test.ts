import { randomBytes } from 'node:crypto';
import { dueTransitions, rotationOnDemand, type KeyTransition, type RotationPolicy, type SharedKey } from '../../src/keys/key-rotation.ts';
import { sealingMint } from '../../src/keys/shared-signing-keys.ts';
import { createSecretBox } from '../../src/sca/secret-box.ts';

/*
 * The rotation schedule of the shared keys as decisions (issue 21): which transitions are due at a
 * given time. Real keys, sealed with a real key-encryption key; the clock is the test's.
 */

const DAY = 86_400;
const T0 = 1_800_000_000;
const policy: RotationPolicy = { algorithms: ['ES256'], every: 90 * DAY, publishAhead: 3610, retain: 360 };
const mint = sealingMint(createSecretBox(randomBytes(32)));

/** Applies transitions as the store does, for the next step of a test. */
function apply(keys: SharedKey[], transitions: KeyTransition[]): SharedKey[] {
  let next = keys.map((k) => ({ ...k }));
  for (const t of transitions) {
    if ('key' in t) next.push(t.key);
    else if (t.kind === 'removed') {
      const { kid } = t;
      next = next.filter((k) => k.kid !== kid);
    } else {
      const { kid } = t;
      const key = next.find((k) => k.kid === kid)!;
      if (t.kind === 'scheduled') key.moat_activate_at = t.activateAt;
      if (t.kind === 'retired') Object.assign(key, { moat_state: 'retired', moat_retired_at: t.at });
      if (t.kind === 'activated') Object.assign(key, { moat_state: 'active', moat_activated_at: t.at, moat_activate_at: undefined });
    }
  }
  return next;
}

const kinds = (transitions: KeyTransition[]) => transitions.map((t) => t.kind);

describe('the rotation schedule of keys in the database', () => {
  it('generates an active key for an algorithm that has none, and nothing more until the period nears its end', async () => {
    const first = await dueTransitions([], policy, T0, mint);
    expect(kinds(first)).toEqual(['generated']);
    const keys = apply([], first);
    expect(keys[0]).toEqual(expect.objectContaining({ moat_state: 'active', moat_activated_at: T0 }));
    expect(await dueTransitions(keys, policy, T0 + 90 * DAY - policy.publishAhead - 1, mint)).toEqual([]);
  });

  it('stages the successor publishAhead before the period ends, activates it when the period ends, removes the old key once retain has passed', async () => {
    let keys = apply([], await dueTransitions([], policy, T0, mint));
    const staging = T0 + 90 * DAY - policy.publishAhead;
    const staged = await dueTransitions(keys, policy, staging, mint);
    expect(kinds(staged)).toEqual(['staged']);
    expect((staged[0] as { key: SharedKey }).key).toEqual(expect.objectContaining({ moat_state: 'next', moat_activate_at: T0 + 90 * DAY }));
    keys = apply(keys, staged);
    expect(await dueTransitions(keys, policy, T0 + 90 * DAY - 1, mint)).toEqual([]);
    const rotated = await dueTransitions(keys, policy, T0 + 90 * DAY, mint);
    // Retired before activated: one active key per algorithm at every moment.
    expect(kinds(rotated)).toEqual(['retired', 'activated']);
    keys = apply(keys, rotated);
    expect(await dueTransitions(keys, policy, T0 + 90 * DAY + policy.retain - 1, mint)).toEqual([]);
    expect(kinds(await dueTransitions(keys, policy, T0 + 90 * DAY + policy.retain, mint))).toEqual(['removed']);
  });

  it('never activates a successor published for less than publishAhead, even when its period is over (an instance that was down)', async () => {
    let keys = apply([], await dueTransitions([], policy, T0, mint));
    const late = T0 + 200 * DAY;
    const staged = await dueTransitions(keys, policy, late, mint);
    expect((staged[0] as { key: SharedKey }).key.moat_activate_at).toBe(late + policy.publishAhead);
    keys = apply(keys, staged);
    expect(await dueTransitions(keys, policy, late + policy.publishAhead - 1, mint)).toEqual([]);
    expect(kinds(await dueTransitions(keys, policy, late + policy.publishAhead, mint))).toEqual(['retired', 'activated']);
  });

  it('rotates only on demand when no period is configured', async () => {
    const manual = { ...policy, every: undefined };
    const keys = apply([], await dueTransitions([], manual, T0, mint));
    expect(await dueTransitions(keys, manual, T0 + 1000 * DAY, mint)).toEqual([]);
  });

  it('on demand: publishes a successor now that activates after publishAhead; leaves one scheduled at its earliest, brings a later one forward; --immediately activates at once', async () => {
    let keys = apply([], await dueTransitions([], policy, T0, mint));
    const demanded = await rotationOnDemand(keys, policy, T0 + DAY, mint, false);
    expect(kinds(demanded)).toEqual(['staged']);
    expect((demanded[0] as { key: SharedKey }).key.moat_activate_at).toBe(T0 + DAY + policy.publishAhead);

    const stagedAt = T0 + 90 * DAY - policy.publishAhead;
    const scheduled = apply(keys, await dueTransitions(keys, policy, stagedAt, mint));
    expect(await rotationOnDemand(scheduled, policy, stagedAt + 10, mint, false)).toEqual([]);
    // Staged under a longer JWKS cache, since lowered: the successor activates publishAhead after it was published.
    const longer = apply(keys, await dueTransitions(keys, { ...policy, publishAhead: 10 * DAY }, T0 + 80 * DAY, mint));
    expect(await rotationOnDemand(longer, policy, T0 + 80 * DAY + 10, mint, false)).toEqual([
      { kind: 'scheduled', kid: longer.find((k) => k.moat_state === 'next')!.kid, alg: 'ES256', activateAt: T0 + 80 * DAY + policy.publishAhead },
    ]);

    const immediately = await rotationOnDemand(keys, policy, T0 + DAY, mint, true);
    expect(kinds(immediately)).toEqual(['retired', 'generated']);
    keys = apply(keys, immediately);
    expect(keys.filter((k) => k.moat_state === 'active')).toHaveLength(1);
  });
});
