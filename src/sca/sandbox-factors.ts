import type { SecretBox } from './secret-box.ts';
import type { TotpStore } from './totp-store.ts';

/**
 * Sandbox customers come with an authenticator app already set up, its secret published (README,
 * start-up banner, sign-in page), so a TPP's CI can complete SCA by computing the code. Sandbox
 * mode only: these secrets are public.
 */
export async function seedSandboxTotp(store: TotpStore, box: SecretBox, customers: readonly { id: string; totpSecret: string }[], now: Date): Promise<void> {
  for (const c of customers) {
    if ((await store.find(c.id))?.confirmedAt !== undefined) continue;
    await store.savePending(c.id, box.seal(c.totpSecret, c.id));
    await store.confirm(c.id, now);
  }
}
