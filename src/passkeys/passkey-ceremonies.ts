import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { ModelStore } from '../kernel/model-store.ts';
import { PasskeyAlreadyEnrolled, type Passkey, type PasskeyStore } from './passkey-store.ts';

// The types of @simplewebauthn/server by `import()` type queries rather than `import type`: the
// dependency rule that keeps it loaded lazily (optional-packages-loaded-lazily) sees an `import type`
// as a static import while dependency-cruiser cannot use this TypeScript (7.0) to tell them apart.
type WebAuthnServer = typeof import('@simplewebauthn/server');
type WebAuthnHelpers = typeof import('@simplewebauthn/server/helpers');
type AuthenticationResponseJSON = import('@simplewebauthn/server').AuthenticationResponseJSON;
type PublicKeyCredentialCreationOptionsJSON = import('@simplewebauthn/server').PublicKeyCredentialCreationOptionsJSON;
type PublicKeyCredentialRequestOptionsJSON = import('@simplewebauthn/server').PublicKeyCredentialRequestOptionsJSON;
type RegistrationResponseJSON = import('@simplewebauthn/server').RegistrationResponseJSON;

/*
 * The WebAuthn Level 2 ceremonies (registration §7.1, authentication §7.2) for passkeys, with
 * @simplewebauthn/server doing the CBOR/COSE, attestation and signature work. Moat's policy on top:
 *
 * - User verification is required in both ceremonies: the one gesture then proves possession of the
 *   key and the customer's PIN or biometric, two RTS Art. 4 elements, so a passkey alone is SCA.
 * - The relying party is the issuer: rpId its host, the only accepted origin its origin.
 * - Every challenge is single-use and bound to where it was issued (an interaction, a dashboard
 *   session): kept in the short-lived store under the challenge itself and consumed atomically
 *   before anything else is checked, so a replayed or raced response finds it spent.
 * - Dynamic linking (RTS Art. 5): a payment's challenge is 32 random bytes followed by the payment's
 *   link hash. The authenticator signs the challenge (inside clientDataJSON), so the hash it returns
 *   is what the customer's gesture committed to; authorisation compares it with the consent's values.
 */

/** How long a challenge stays usable: the browser's ceremony timeout plus a little. */
export const CHALLENGE_SECONDS = 300;
const CHALLENGE_MODEL = 'PasskeyChallenge';
/** The random part of every challenge (WebAuthn L2 §13.4.3 asks for at least 16 bytes). */
const RANDOM_BYTES = 32;

export type PasskeyRefusal =
  | 'malformed_response'
  | 'challenge_unknown'
  | 'challenge_used'
  | 'wrong_origin'
  | 'wrong_relying_party'
  | 'user_not_verified'
  | 'unknown_credential'
  | 'already_enrolled'
  | 'counter_regressed'
  | 'verification_failed'
  | 'payment_changed';

const REFUSAL_MESSAGES: Record<PasskeyRefusal, string> = {
  malformed_response: 'The passkey response could not be read. Try again.',
  challenge_unknown: 'This passkey request has expired or belongs to another page. Try again.',
  challenge_used: 'This passkey response was used already. Try again.',
  wrong_origin: 'The passkey response was made for another site.',
  wrong_relying_party: 'The passkey belongs to another site.',
  user_not_verified: 'Your device did not verify you (PIN, fingerprint or face). Use a passkey that asks for one.',
  unknown_credential: 'This passkey is not registered with your account.',
  already_enrolled: 'This passkey is registered already.',
  counter_regressed: 'This passkey could not be trusted (its use counter went backwards). Contact the bank.',
  verification_failed: 'The passkey could not be verified. Try again.',
  payment_changed: 'The payment details changed while you were approving. Check the amount and payee below, then use your passkey again.',
};

/** Every refusal, so the customer pages' catalogue can be checked to word each one (passkey.refused.<code>). */
export const PASSKEY_REFUSALS = Object.keys(REFUSAL_MESSAGES) as PasskeyRefusal[];

/** A passkey response Moat refuses; `message` is its English wording (logs, APIs), `code` what a page translates. */
export class PasskeyRefused extends Error {
  readonly code: PasskeyRefusal;
  constructor(code: PasskeyRefusal, options?: { cause?: unknown }) {
    super(REFUSAL_MESSAGES[code], options);
    this.name = 'PasskeyRefused';
    this.code = code;
  }
}

/** A verified passkey assertion: what the SCA record is made from (src/sca/authentication.ts). */
export interface PasskeyAuthentication {
  customerId: string;
  credentialId: string;
  /** Always true: a response without the UV flag is refused. */
  userVerified: true;
  /**
   * The key cannot leave its authenticator (not backup eligible): RFC 8176 `hwk`. A synced passkey
   * is `swk`. Without attestation this is the authenticator's own word (its BE flag).
   */
  deviceBound: boolean;
  /** The link hash the signed challenge carried (base64url), for a payment. */
  linkedHash?: string;
  /** What the options were issued with (`authenticationOptions`' `context`), read back from the spent challenge. */
  context: Record<string, string>;
  at: Date;
}

interface ChallengeRecord {
  purpose: 'registration' | 'authentication';
  /** Where the challenge was issued: `interaction:<uid>`, `dashboard:<customer>`. */
  binding: string;
  customerId?: string;
  context?: Record<string, string>;
  [key: string]: unknown;
}

export interface PasskeyCeremonies {
  /** Options for navigator.credentials.create(): a discoverable credential with user verification. */
  registrationOptions(input: { customerId: string; customerName: string; binding: string }): Promise<PublicKeyCredentialCreationOptionsJSON>;
  /** Verifies a registration response and stores the passkey; throws PasskeyRefused. */
  register(input: { customerId: string; binding: string; response: string; name: string }): Promise<Passkey>;
  /**
   * Options for navigator.credentials.get(); `link` (a link hash, base64url) is appended to the
   * challenge; `context` is kept with the challenge and given back with the verified assertion.
   */
  authenticationOptions(input: {
    binding: string;
    customerId?: string;
    link?: string;
    context?: Record<string, string>;
  }): Promise<PublicKeyCredentialRequestOptionsJSON>;
  /** Verifies an assertion; `customerId` when the customer is known already. Throws PasskeyRefused. */
  authenticate(input: { binding: string; response: string; customerId?: string }): Promise<PasskeyAuthentication>;
}

export interface PasskeyCeremonyOptions {
  /** The issuer: its host is the rpId, its origin the only expected origin. */
  issuer: string;
  /** Shown by the authenticator as whose passkey it is. */
  rpName: string;
  store: PasskeyStore;
  /** The short-lived store (Redis, or in-process) that keeps challenges. */
  challenges: ModelStore;
  now?: () => Date;
}

const base64url = z
  .string()
  .min(1)
  .max(65_536)
  .regex(/^[A-Za-z0-9_-]+={0,2}$/);
const registrationResponse = z
  .object({
    id: base64url,
    rawId: base64url,
    type: z.literal('public-key'),
    response: z.object({ clientDataJSON: base64url, attestationObject: base64url, transports: z.array(z.string().max(32)).max(16).optional() }).loose(),
    clientExtensionResults: z.record(z.string(), z.unknown()),
    authenticatorAttachment: z.string().optional(),
  })
  .loose();
const authenticationResponse = z
  .object({
    id: base64url,
    rawId: base64url,
    type: z.literal('public-key'),
    response: z.object({ clientDataJSON: base64url, authenticatorData: base64url, signature: base64url, userHandle: base64url.optional() }).loose(),
    clientExtensionResults: z.record(z.string(), z.unknown()),
    authenticatorAttachment: z.string().optional(),
  })
  .loose();

/**
 * @simplewebauthn/server (~5 MiB of heap) is loaded on the first passkey ceremony, not at start:
 * most processes never run one (issue 20 §6).
 */
let webauthnModules: Promise<WebAuthnServer & WebAuthnHelpers> | undefined;
function webauthn(): NonNullable<typeof webauthnModules> {
  webauthnModules ??= Promise.all([import('@simplewebauthn/server'), import('@simplewebauthn/server/helpers')]).then(([server, helpers]) => ({
    ...server,
    ...helpers,
  }));
  return webauthnModules;
}

export function createPasskeyCeremonies(options: PasskeyCeremonyOptions): PasskeyCeremonies {
  const { store, challenges } = options;
  const now = options.now ?? (() => new Date());
  const origin = new URL(options.issuer).origin;
  const rpId = new URL(options.issuer).hostname;
  const rpIdHash = createHash('sha256').update(rpId).digest();

  const issueChallenge = async (record: ChallengeRecord, link?: string): Promise<string> => {
    const w = await webauthn();
    const challenge = w.isoBase64URL.fromBuffer(Buffer.concat([randomBytes(RANDOM_BYTES), ...(link === undefined ? [] : [Buffer.from(link, 'base64url')])]));
    await challenges.upsert(CHALLENGE_MODEL, challenge, record, CHALLENGE_SECONDS);
    return challenge;
  };

  /** Reads the response, spends its challenge and checks what can be told apart clearly. */
  const spendChallenge = async (
    clientDataJSON: string,
    purpose: ChallengeRecord['purpose'],
    binding: string,
    authData: Uint8Array,
  ): Promise<{ challenge: string; record: ChallengeRecord }> => {
    const w = await webauthn();
    let clientData: ReturnType<WebAuthnHelpers['decodeClientDataJSON']>;
    try {
      clientData = w.decodeClientDataJSON(clientDataJSON);
    } catch (err) {
      throw new PasskeyRefused('malformed_response', { cause: err });
    }
    if (typeof clientData?.challenge !== 'string' || !/^[A-Za-z0-9_-]{43,128}$/.test(clientData.challenge)) throw new PasskeyRefused('malformed_response');
    const record = (await challenges.find(CHALLENGE_MODEL, clientData.challenge)) as ChallengeRecord | undefined;
    if (record === undefined || record.purpose !== purpose || record.binding !== binding) throw new PasskeyRefused('challenge_unknown');
    // Spent before the signature is checked: a failed attempt needs a fresh challenge too.
    if ((await challenges.consume(CHALLENGE_MODEL, clientData.challenge)) !== 'consumed') throw new PasskeyRefused('challenge_used');
    if (clientData.origin !== origin) throw new PasskeyRefused('wrong_origin');
    let parsed: ReturnType<WebAuthnHelpers['parseAuthenticatorData']>;
    try {
      parsed = w.parseAuthenticatorData(new Uint8Array(authData));
    } catch (err) {
      throw new PasskeyRefused('malformed_response', { cause: err });
    }
    if (!timingSafeEqual(Buffer.from(parsed.rpIdHash), rpIdHash)) throw new PasskeyRefused('wrong_relying_party');
    // WebAuthn L2 §7.1 step 15 / §7.2 step 17: user verification required.
    if (!parsed.flags.uv) throw new PasskeyRefused('user_not_verified');
    return { challenge: clientData.challenge, record };
  };

  const parseJson = <T>(schema: z.ZodType<T>, text: string): T => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new PasskeyRefused('malformed_response', { cause: err });
    }
    const result = schema.safeParse(value);
    if (!result.success) throw new PasskeyRefused('malformed_response', { cause: result.error });
    return result.data;
  };

  return {
    async registrationOptions({ customerId, customerName, binding }) {
      const w = await webauthn();
      const existing = await store.listForCustomer(customerId);
      const challenge = await issueChallenge({ purpose: 'registration', binding, customerId });
      return w.generateRegistrationOptions({
        rpName: options.rpName,
        rpID: rpId,
        userID: w.isoBase64URL.toBuffer(await store.userHandle(customerId)),
        userName: customerName,
        userDisplayName: customerName,
        challenge: w.isoBase64URL.toBuffer(challenge),
        timeout: CHALLENGE_SECONDS * 1000,
        // No attestation asked: Moat trusts the customer's choice of authenticator, not its make.
        attestationType: 'none',
        excludeCredentials: existing.map((p) => ({ id: p.id, transports: p.transports })),
        authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
      });
    },

    async register({ customerId, binding, response, name }) {
      const w = await webauthn();
      const parsed = parseJson(registrationResponse, response) as RegistrationResponseJSON;
      let authData: Uint8Array;
      try {
        const attestation = w.decodeAttestationObject(w.isoBase64URL.toBuffer(parsed.response.attestationObject));
        authData = attestation.get('authData');
        if (!(authData instanceof Uint8Array)) throw new Error('no authData');
      } catch (err) {
        throw new PasskeyRefused('malformed_response', { cause: err });
      }
      const { challenge, record } = await spendChallenge(parsed.response.clientDataJSON, 'registration', binding, authData);
      if (record.customerId !== customerId) throw new PasskeyRefused('challenge_unknown');
      let verified: Awaited<ReturnType<WebAuthnServer['verifyRegistrationResponse']>>;
      try {
        verified = await w.verifyRegistrationResponse({
          response: parsed,
          expectedChallenge: challenge,
          expectedOrigin: origin,
          expectedRPID: rpId,
          requireUserVerification: true,
        });
      } catch (err) {
        throw new PasskeyRefused('verification_failed', { cause: err });
      }
      if (!verified.verified) throw new PasskeyRefused('verification_failed');
      const info = verified.registrationInfo;
      const passkey = {
        id: info.credential.id,
        customerId,
        publicKey: info.credential.publicKey,
        signCount: info.credential.counter,
        transports: parsed.response.transports ?? [],
        deviceType: info.credentialDeviceType,
        backedUp: info.credentialBackedUp,
        aaguid: info.aaguid,
        name: name.trim() === '' ? 'Passkey' : name.trim().slice(0, 64),
      };
      try {
        await store.add(passkey);
      } catch (err) {
        if (err instanceof PasskeyAlreadyEnrolled) throw new PasskeyRefused('already_enrolled', { cause: err });
        throw err;
      }
      return { ...passkey, createdAt: now() };
    },

    async authenticationOptions({ binding, customerId, link, context }) {
      const w = await webauthn();
      const allowed = customerId === undefined ? [] : await store.listForCustomer(customerId);
      const challenge = await issueChallenge(
        {
          purpose: 'authentication',
          binding,
          ...(customerId === undefined ? {} : { customerId }),
          ...(context === undefined ? {} : { context }),
        },
        link,
      );
      return w.generateAuthenticationOptions({
        rpID: rpId,
        challenge: w.isoBase64URL.toBuffer(challenge),
        timeout: CHALLENGE_SECONDS * 1000,
        userVerification: 'required',
        // Empty when the customer is not known yet: the authenticator offers its discoverable passkeys.
        allowCredentials: allowed.map((p) => ({ id: p.id, transports: p.transports as never })),
      });
    },

    async authenticate({ binding, response, customerId }) {
      const w = await webauthn();
      const parsed = parseJson(authenticationResponse, response) as AuthenticationResponseJSON;
      let authData: Uint8Array;
      try {
        authData = w.isoBase64URL.toBuffer(parsed.response.authenticatorData);
      } catch (err) {
        throw new PasskeyRefused('malformed_response', { cause: err });
      }
      const { challenge, record } = await spendChallenge(parsed.response.clientDataJSON, 'authentication', binding, authData);
      if (record.customerId !== undefined && record.customerId !== customerId) throw new PasskeyRefused('challenge_unknown');
      const passkey = await store.find(parsed.id);
      if (passkey === undefined || (customerId !== undefined && passkey.customerId !== customerId)) throw new PasskeyRefused('unknown_credential');
      let verified: Awaited<ReturnType<WebAuthnServer['verifyAuthenticationResponse']>>;
      try {
        verified = await w.verifyAuthenticationResponse({
          response: parsed,
          expectedChallenge: challenge,
          expectedOrigin: origin,
          expectedRPID: rpId,
          requireUserVerification: true,
          credential: {
            id: passkey.id,
            publicKey: passkey.publicKey as Uint8Array<ArrayBuffer>,
            counter: passkey.signCount,
            transports: passkey.transports as never,
          },
        });
      } catch (err) {
        const counter = err instanceof Error && /counter value/.test(err.message);
        throw new PasskeyRefused(counter ? 'counter_regressed' : 'verification_failed', { cause: err });
      }
      if (!verified.verified) throw new PasskeyRefused('verification_failed');
      const at = now();
      const { newCounter, credentialBackedUp } = verified.authenticationInfo;
      if (!(await store.recordUse(passkey.id, newCounter, credentialBackedUp, at))) throw new PasskeyRefused('counter_regressed');
      const bytes = w.isoBase64URL.toBuffer(challenge);
      return {
        customerId: passkey.customerId,
        credentialId: passkey.id,
        userVerified: true,
        deviceBound: passkey.deviceType === 'singleDevice',
        ...(bytes.length > RANDOM_BYTES ? { linkedHash: w.isoBase64URL.fromBuffer(bytes.subarray(RANDOM_BYTES)) } : {}),
        context: record.context ?? {},
        at,
      };
    },
  };
}
