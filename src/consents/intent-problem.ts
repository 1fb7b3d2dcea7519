import type { ConsentService } from './consent-service.ts';
import { INTENT_CLAIM } from './provider-hooks.ts';

/** Why an intent cannot be authorised by this client now, or undefined when it can. */
export async function intentProblem(consents: ConsentService, intentId: string, clientId: string): Promise<string | undefined> {
  let consent;
  try {
    consent = await consents.getForClient(intentId, clientId);
  } catch {
    return `${INTENT_CLAIM} ${intentId} is not a consent this client lodged`;
  }
  if (consent.status !== 'AwaitingAuthorisation') {
    return `consent ${intentId} is ${consent.status}, not AwaitingAuthorisation; lodge a new consent`;
  }
  if (consent.expiresAt !== undefined && consent.expiresAt.getTime() <= Date.now()) {
    return `consent ${intentId} reached its ExpirationDateTime; lodge a new consent`;
  }
  return undefined;
}
