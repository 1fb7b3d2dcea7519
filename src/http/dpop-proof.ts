import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, errors as joseErrors, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { challengeParameter, wwwAuthenticate } from '../kernel/error-responses.ts';
import { SIGNING_ALGORITHMS } from '../kernel/signing-algorithms.ts';
import { TokenRejected } from '../kernel/token-rejected.ts';

// The refusal and its challenge live in the kernel's error family; re-exported for the API guard.
export { challengeParameter, TokenRejected, wwwAuthenticate };

/*
 * A DPoP proof (RFC 9449) as a resource server checks it, and the refusal it gets (RFC 6750 §3 /
 * RFC 9449 §7.1), with nothing of Moat's server in it: Moat's own APIs (bearer-token.ts), the
 * gateway check (src/gateway-check/) and the in-process API guard a bank's Node service imports
 * (packages/api-guard/) all check proofs here. jose verifies the JWS; this file decides what the
 * claims must be.
 */

/** How far before the server's time a proof's iat may be without a nonce (RFC 9449 §11.1 leaves the window to the server). */
const DPOP_IAT_WINDOW_SECONDS = 60;
/**
 * With a server nonce (RFC 9449 §9) the nonce bounds freshness, so a client whose clock is off can
 * still make proofs; iat may then be as old as the oldest nonce still accepted (oidc-provider's
 * nonces live five 60-second steps).
 */
const DPOP_NONCE_IAT_WINDOW_SECONDS = 300;
/** How far after the server's time a proof's iat may be: clock skew, as FAPI 2.0 SP §5.3.2.1 allows for iat. */
const DPOP_FUTURE_TOLERANCE_SECONDS = 10;
/** A proof's jti is held for as long as the proof could be accepted at all. */
const DPOP_JTI_RETENTION_SECONDS = DPOP_NONCE_IAT_WINDOW_SECONDS + DPOP_FUTURE_TOLERANCE_SECONDS;
/** Claimed jtis of proofs at Moat's own APIs, apart from oidc-provider's ReplayDetection entries. */
const DPOP_JTI_MODEL = 'ResourceDPoPProof';

/** The description of a replayed proof, at the token endpoint, userinfo and Moat's own APIs alike. */
export const DPOP_PROOF_REPLAYED = 'DPoP proof replayed: its jti was already used; make a new proof, with a new jti, for every request (RFC 9449 §11.1)';

/** DPoP nonces a server hands out in DPoP-Nonce and accepts back in proofs (RFC 9449 §8, §9). */
export interface DpopNonces {
  /** The nonce to hand out now. */
  next(): string;
  /** Whether a proof's nonce is one handed out recently. */
  check(nonce: string): boolean;
}

/** Where proofs' jtis are claimed: an atomic insert-if-absent (the short-lived store's recordOnce). */
export interface ProofReplayStore {
  recordOnce(model: string, id: string, payload: { jti: string }, expiresIn: number): Promise<boolean>;
}

/** What was wrong with a proof that jose refused, in the words a TPP's developer needs. */
export function describeProofFailure(err: unknown, algorithms: readonly string[] = SIGNING_ALGORITHMS): string {
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the signature does not verify with the jwk in its header';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return `alg must be one of ${algorithms.join(', ')}`;
  if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'typ') return 'typ must be dpop+jwt';
  if (err instanceof joseErrors.JOSEError) return `not a valid DPoP proof JWT: ${err.message}`;
  return 'not a valid DPoP proof JWT';
}

/** A request's DPoP presentation, read by whoever serves the API (Moat itself or a gateway's check). */
export interface DpopPresentation {
  /** The Authorization header as sent. */
  authorization: string;
  /** The DPoP header ('' when absent). */
  proof: string;
  method: string;
  /** The URL the client called, as the API's owner names it (never the Host header). */
  htu: string;
  accessToken: string;
  /** The key thumbprint the token is bound to (cnf.jkt). */
  jkt: string;
}

/**
 * RFC 9449 §7.1: checks a DPoP-bound token's proof and claims its jti, atomically in the shared
 * short-lived store so that of the same proof sent to several instances (or gateways) one wins.
 * Resolves with the DPoP-Nonce to hand out (or undefined); throws TokenRejected, which carries a
 * DPoP-Nonce in `nonce` when it asks for one.
 */
export async function verifyDpopProof(p: DpopPresentation, checks: ProofChecks): Promise<string | undefined> {
  if (!p.authorization.toLowerCase().startsWith('dpop '))
    throw new TokenRejected('invalid_token', 'this access token is DPoP-bound; use the DPoP authorization scheme (RFC 9449 §7.1)');
  if (p.proof === '') throw new TokenRejected('invalid_dpop_proof', 'DPoP proof missing');
  const rejected = (why: string) => new TokenRejected('invalid_dpop_proof', `DPoP proof rejected: ${why}`);
  let payload: JWTPayload;
  let jwk: JWK;
  try {
    ({
      payload,
      protectedHeader: { jwk },
    } = (await jwtVerify(p.proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [...(checks.algorithms ?? SIGNING_ALGORITHMS)] })) as {
      payload: JWTPayload;
      protectedHeader: { jwk: JWK };
    });
  } catch (err) {
    throw rejected(describeProofFailure(err, checks.algorithms));
  }
  if (typeof payload.jti !== 'string' || payload.jti === '') throw rejected('it needs a jti (RFC 9449 §4.2)');
  if (typeof payload.iat !== 'number') throw rejected('it needs an iat (RFC 9449 §4.2)');
  if (payload.htm !== p.method) throw rejected(`htm must be ${p.method} (RFC 9449 §4.3)`);
  const expected = new URL(p.htu).href;
  if (withoutQuery(payload.htu) !== expected) throw rejected(`htu must be ${expected} (RFC 9449 §4.3), not ${String(payload.htu).slice(0, 200)}`);
  if (payload.ath !== createHash('sha256').update(p.accessToken).digest('base64url')) throw rejected('ath does not match the access token');
  if ((await calculateJwkThumbprint(jwk)) !== p.jkt) throw rejected('the proof key is not the key the token is bound to');
  checkFreshness(payload as JWTPayload & { iat: number }, checks);
  // RFC 9449 §11.1: each proof once. Claimed atomically, so of proofs sent at once one wins.
  const id = createHash('sha256').update(`${p.jkt}:${payload.jti}`).digest('base64url');
  if (!(await checks.replay.recordOnce(DPOP_JTI_MODEL, id, { jti: id }, DPOP_JTI_RETENTION_SECONDS)))
    throw new TokenRejected('invalid_dpop_proof', DPOP_PROOF_REPLAYED);
  // As the token endpoint does: the next nonce, for a client that keeps proofs fresh with one.
  const next = checks.nonces?.next();
  return next === undefined || payload.nonce === next ? undefined : next;
}

/**
 * RFC 9449 §11.1: a proof is recent — its iat within a window around the server's time, or its
 * nonce one this server handed out (§9). A stale proof without a nonce is answered
 * `use_dpop_nonce` with a DPoP-Nonce, so a client with a wrong clock has a way in.
 */
function checkFreshness(payload: JWTPayload & { iat: number }, checks: ProofChecks): void {
  const now = checks.now?.() ?? Math.floor(Date.now() / 1000);
  const offset = payload.iat - now;
  const nonces = checks.nonces;
  // Without server nonces (an API checking proofs on its own) a stale proof is simply refused.
  const askForNonce = (why: string) =>
    nonces === undefined
      ? new TokenRejected('invalid_dpop_proof', `DPoP proof rejected: ${why}`)
      : new TokenRejected('use_dpop_nonce', `${why}: make a new proof with the nonce in the DPoP-Nonce header (RFC 9449 §9)`, undefined, nonces.next());
  if (payload.nonce !== undefined && nonces !== undefined) {
    if (typeof payload.nonce !== 'string' || !nonces.check(payload.nonce)) throw askForNonce('the DPoP proof nonce is not one this server handed out recently');
    if (offset > DPOP_FUTURE_TOLERANCE_SECONDS || -offset > DPOP_NONCE_IAT_WINDOW_SECONDS) {
      throw new TokenRejected(
        'invalid_dpop_proof',
        `DPoP proof rejected: iat is ${Math.abs(offset)} s ${offset < 0 ? 'before' : 'after'} the server's time, beyond what its nonce allows`,
      );
    }
    return;
  }
  if (offset > DPOP_FUTURE_TOLERANCE_SECONDS || -offset > DPOP_IAT_WINDOW_SECONDS + DPOP_FUTURE_TOLERANCE_SECONDS) {
    throw askForNonce(
      `DPoP proof iat is ${Math.abs(offset)} s ${offset < 0 ? 'before' : 'after'} the server's time (without a nonce a proof may be ${DPOP_IAT_WINDOW_SECONDS} s old, with ${DPOP_FUTURE_TOLERANCE_SECONDS} s of clock skew either way)`,
    );
  }
}

/** An htu as RFC 9449 §4.3 compares it: parsed, without query and fragment. */
function withoutQuery(htu: unknown): string | undefined {
  if (typeof htu !== 'string') return undefined;
  const url = URL.parse(htu);
  if (url === null) return undefined;
  url.search = '';
  url.hash = '';
  return url.href;
}

/** What a proof check needs: where jtis are claimed once, and optionally the server's nonces. */
export interface ProofChecks {
  replay: ProofReplayStore;
  /** Server nonces (RFC 9449 §9); without them a stale proof is refused rather than asked to retry with one. */
  nonces?: DpopNonces;
  /** Seconds since the epoch; a test may freeze it. */
  now?: () => number;
  /** JWS algorithms accepted; FAPI 2.0 SP §5.4.1's by default. */
  algorithms?: readonly string[];
}
