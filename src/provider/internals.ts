// @ts-expect-error -- oidc-provider publishes no types for its helpers; the one use below declares the shape it relies on.
import ServerChallenge from 'oidc-provider/lib/helpers/challenge.js';
import type { DpopNonces } from '../http/bearer-token.ts';

/*
 * Every place Moat reaches into oidc-provider's insides, each with the reason no public API does.
 */

/** oidc-provider's nonce maker (lib/helpers/challenge.js), as its token endpoint uses it. */
type Challenge = { nextChallenge(): string; checkChallenge(challenge: string): boolean };

/**
 * DPoP nonces (RFC 9449 §8, §9) exactly as the token endpoint makes and checks them:
 * oidc-provider's own ServerChallenge over the same nonce secret with the label its provider uses
 * ('DPoP', lib/provider.js). Moat's APIs share the token endpoint's origin, and clients keep one
 * DPoP-Nonce per origin (oauth4webapi does), so the APIs must accept the token endpoint's nonces
 * and hand out nonces the token endpoint accepts. oidc-provider has no public way to make or check
 * its nonces.
 */
export function createDpopNonces(nonceSecret: Buffer): DpopNonces {
  const challenge = new (ServerChallenge as new (secret: Buffer, info: string) => Challenge)(nonceSecret, 'DPoP');
  return {
    next: () => challenge.nextChallenge(),
    check: (nonce) => challenge.checkChallenge(nonce),
  };
}
