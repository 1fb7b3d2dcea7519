import type { MoatConfig } from './schema.ts';

/**
 * Whether Moat offers decoupled authorisation (CIBA). Unless the operator says, the sandbox does (its
 * bank app is built in) and production does only once the bank's own app is configured: a
 * backchannel endpoint no customer can answer would leave every TPP polling until expired_token.
 */
export function cibaEnabled(config: Pick<MoatConfig, 'mode' | 'ciba'>): boolean {
  return config.ciba.enabled ?? (config.mode !== 'production' || config.ciba.bankApp !== undefined);
}
