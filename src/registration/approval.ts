import type { IncomingMessage } from 'node:http';

/*
 * The mark Moat's registration policy puts on a request it approved. oidc-provider's client
 * metadata validator refuses a registration without it (create-provider.ts), so no path to the
 * registration endpoint — however it is spelled — creates a client without a verified SSA.
 */
const APPROVED = Symbol('moat.registrationApproved');

export function markRegistrationApproved(req: IncomingMessage): void {
  (req as unknown as Record<symbol, boolean>)[APPROVED] = true;
}

export function isRegistrationApproved(req: IncomingMessage): boolean {
  return (req as unknown as Record<symbol, boolean>)[APPROVED] === true;
}
