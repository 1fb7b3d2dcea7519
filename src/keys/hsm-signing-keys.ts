import { createHash, randomBytes } from 'node:crypto';
import { fromBER, OctetString } from 'asn1js';
import type * as Graphene from 'graphene-pk11';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { Pkcs11Algorithm, Pkcs11Config, SigningAlgorithm } from '../config/schema.ts';
import { PKCS11_ALGORITHMS } from '../config/schema.ts';
import {
  algorithmsWithoutActiveKey,
  isExpired,
  KEY_STATES,
  keySetProblems,
  rotateKeys,
  type KeyState,
  type LifecycleKey,
  type RotationOptions,
  type RotationResult,
} from './key-lifecycle.ts';
import { HsmUnavailableError, openPkcs11Token, type Pkcs11Token } from './pkcs11-token.ts';

/*
 * Moat's signing keys kept in a PKCS#11 token. Each key is a pair of token objects sharing CKA_ID
 * (the kid, an RFC 7638 thumbprint) and CKA_LABEL, which carries the lifecycle Moat keeps for file
 * keys in JWK members: `moat:<alg>:<state>:<created>[:<retired>]`. The state lives in the token, so
 * every instance using the HSM sees the same keys after a restart, as they see the same JWKS file.
 * The private key is generated inside the token, sensitive and not extractable: Moat never has it.
 */

/** A key in the token: its lifecycle and the public JWK that Moat publishes. */
export interface HsmKey extends LifecycleKey {
  alg: Pkcs11Algorithm;
  publicJwk: JWK & { kid: string; alg: Pkcs11Algorithm; use: 'sig' };
}

const LABEL_PREFIX = 'moat';

/** FAPI 2.0 SP §5.4.1: RSA keys of at least 2048 bits. */
const RSA_MODULUS_BITS = 2048;
/** DER of the named curve P-256 (RFC 5480 §2.1.1.1, secp256r1), CKA_EC_PARAMS of an ES256 key. */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

export function keyLabel(key: LifecycleKey): string {
  return [LABEL_PREFIX, key.alg, key.moat_state, key.moat_created_at, ...(key.moat_retired_at === undefined ? [] : [key.moat_retired_at])].join(':');
}

/** The lifecycle in a label, or undefined for a token object that is not one of Moat's keys. */
export function parseKeyLabel(
  label: string,
): (Pick<LifecycleKey, 'moat_state' | 'moat_created_at' | 'moat_retired_at'> & { alg: Pkcs11Algorithm }) | undefined {
  const [prefix, alg, state, created, retired, ...rest] = label.split(':');
  if (prefix !== LABEL_PREFIX || rest.length > 0) return undefined;
  if (!PKCS11_ALGORITHMS.includes(alg as Pkcs11Algorithm) || !KEY_STATES.includes(state as KeyState)) return undefined;
  const createdAt = Number(created);
  const retiredAt = retired === undefined ? undefined : Number(retired);
  if (!Number.isSafeInteger(createdAt) || (retiredAt !== undefined && !Number.isSafeInteger(retiredAt))) return undefined;
  return {
    alg: alg as Pkcs11Algorithm,
    moat_state: state as KeyState,
    moat_created_at: createdAt,
    ...(retiredAt === undefined ? {} : { moat_retired_at: retiredAt }),
  };
}

function publicJwkOf(publicKey: Graphene.PublicKey, alg: Pkcs11Algorithm): JWK {
  if (alg === 'PS256') {
    const { modulus, publicExponent } = publicKey.getAttribute({ modulus: null, publicExponent: null });
    if (modulus === undefined || modulus === null || publicExponent === undefined || publicExponent === null) throw new Error('RSA public key without modulus');
    const n = modulus.subarray(modulus.findIndex((b) => b !== 0));
    if (n.length * 8 < RSA_MODULUS_BITS) throw new Error(`RSA key under ${RSA_MODULUS_BITS} bits`);
    return { kty: 'RSA', n: n.toString('base64url'), e: publicExponent.toString('base64url') };
  }
  // PKCS#11 v2.40 §2.3.3: CKA_EC_POINT is the DER encoding of an OCTET STRING holding the point.
  const { pointEC } = publicKey.getAttribute({ pointEC: null });
  const parsed = fromBER(new Uint8Array(pointEC ?? []));
  if (parsed.offset === -1 || !(parsed.result instanceof OctetString)) throw new Error('EC public key without a DER point');
  const point = Buffer.from(parsed.result.valueBlock.valueHexView);
  // SEC 1 §2.3.3: 0x04 then x and y, 32 bytes each on P-256.
  if (point.length !== 65 || point[0] !== 0x04) throw new Error('EC public key is not an uncompressed P-256 point');
  return { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') };
}

function objects<T extends Graphene.SessionObject>(session: Graphene.Session, template: Graphene.ITemplate): T[] {
  const found = session.find(template);
  return Array.from({ length: found.length }, (_, i) => found.items(i).toType<T>());
}

/** Moat's keys in the token, oldest first (then PS256 before ES256). Objects that are not Moat's are left alone. */
export async function listHsmKeys(token: Pkcs11Token): Promise<HsmKey[]> {
  const { graphene } = token;
  return token.withSession(async (session) => {
    const keys: HsmKey[] = [];
    for (const publicKey of objects<Graphene.PublicKey>(session, { class: graphene.ObjectClass.PUBLIC_KEY })) {
      const { label, id } = publicKey.getAttribute({ label: null, id: null });
      const lifecycle = parseKeyLabel(label ?? '');
      if (lifecycle === undefined || id === undefined || id === null) continue;
      const kid = id.toString('utf8');
      const jwk = publicJwkOf(publicKey, lifecycle.alg);
      keys.push({ kid, ...lifecycle, publicJwk: { ...jwk, kid, alg: lifecycle.alg, use: 'sig' } });
    }
    return keys.sort(
      (a, b) => a.moat_created_at - b.moat_created_at || PKCS11_ALGORITHMS.indexOf(a.alg) - PKCS11_ALGORITHMS.indexOf(b.alg) || a.kid.localeCompare(b.kid),
    );
  });
}

/** Generates a key pair inside the token: the private half sensitive, not extractable, signing only. */
export async function generateHsmKey(token: Pkcs11Token, alg: Pkcs11Algorithm, state: KeyState, now: number): Promise<HsmKey> {
  const { graphene } = token;
  return token.withSession(async (session) => {
    // A provisional CKA_ID until the public key, and with it the thumbprint, is known.
    const provisional = randomBytes(16);
    const label = keyLabel({ kid: '', alg, moat_state: state, moat_created_at: now });
    const common = { token: true, label, id: provisional };
    const pair =
      alg === 'PS256'
        ? session.generateKeyPair(
            graphene.KeyGenMechanism.RSA,
            { ...common, keyType: graphene.KeyType.RSA, verify: true, modulusBits: RSA_MODULUS_BITS, publicExponent: Buffer.from([1, 0, 1]) },
            { ...common, keyType: graphene.KeyType.RSA, sign: true, private: true, sensitive: true, extractable: false },
          )
        : session.generateKeyPair(
            graphene.KeyGenMechanism.EC,
            { ...common, keyType: graphene.KeyType.EC, verify: true, paramsEC: P256_PARAMS },
            { ...common, keyType: graphene.KeyType.EC, sign: true, private: true, sensitive: true, extractable: false },
          );
    const jwk = publicJwkOf(pair.publicKey, alg);
    const kid = await calculateJwkThumbprint(jwk);
    for (const half of [pair.publicKey, pair.privateKey]) half.setAttribute({ id: Buffer.from(kid, 'utf8') });
    return { kid, alg, moat_state: state, moat_created_at: now, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
  });
}

/** Writes a key's lifecycle (its label) to both of its token objects. */
async function storeLifecycle(token: Pkcs11Token, key: HsmKey): Promise<void> {
  const { graphene } = token;
  await token.withSession((session) => {
    const halves = objects<Graphene.Key>(session, { id: Buffer.from(key.kid, 'utf8') }).filter((o) =>
      [graphene.ObjectClass.PUBLIC_KEY, graphene.ObjectClass.PRIVATE_KEY].includes(o.class),
    );
    if (halves.length === 0) throw new HsmUnavailableError('key_missing', `signing key ${key.kid} is not in token "${token.label}"`);
    for (const half of halves) half.setAttribute({ label: keyLabel(key) });
  });
}

export async function destroyHsmKey(token: Pkcs11Token, kid: string): Promise<void> {
  await token.withSession((session) => {
    for (const half of objects(session, { id: Buffer.from(kid, 'utf8') })) session.destroy(half);
  });
}

function checkKeySet(token: Pkcs11Token, keys: readonly HsmKey[]): void {
  const [problem] = keySetProblems(keys);
  if (problem !== undefined) throw new Error(`token "${token.label}": ${problem}`);
}

/** Loads Moat's keys from the token, generating an active key for each configured algorithm that has none. */
export async function loadOrCreateHsmKeys(
  token: Pkcs11Token,
  algorithms: readonly SigningAlgorithm[],
  now = Math.floor(Date.now() / 1000),
): Promise<{ keys: HsmKey[]; created: HsmKey[] }> {
  const keys = await listHsmKeys(token);
  checkKeySet(token, keys);
  const created: HsmKey[] = [];
  for (const alg of algorithmsWithoutActiveKey(keys, algorithms)) {
    const key = await generateHsmKey(token, pkcs11Algorithm(alg), 'active', now);
    keys.push(key);
    created.push(key);
  }
  return { keys, created };
}

function pkcs11Algorithm(alg: SigningAlgorithm): Pkcs11Algorithm {
  if (!PKCS11_ALGORITHMS.includes(alg as Pkcs11Algorithm)) throw new Error(`keys.algorithms: ${alg} cannot be kept in a PKCS#11 token by Moat`);
  return alg as Pkcs11Algorithm;
}

/**
 * The file flow's rotation (key-lifecycle.ts) on the token's keys: the active key is retired (still
 * published), the staged `next` key or a new one becomes active, `stage` publishes a new `next`,
 * and retired keys past `retainSeconds` are destroyed in the token.
 */
export async function rotateHsmKeys(token: Pkcs11Token, algorithms: readonly SigningAlgorithm[], options: RotationOptions): Promise<RotationResult<HsmKey>> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const { keys } = await loadOrCreateHsmKeys(token, algorithms, now);
  const before = new Map(keys.map((k) => [k.kid, keyLabel(k)]));
  const { result, kept } = await rotateKeys(keys, algorithms, { ...options, now }, (alg, state) => generateHsmKey(token, pkcs11Algorithm(alg), state, now));
  checkKeySet(token, kept);
  // Retire before activating, so that no instance ever loads two active keys for one algorithm.
  const changed = kept
    .filter((k) => before.has(k.kid) && before.get(k.kid) !== keyLabel(k))
    .sort((a, b) => Number(b.moat_state === 'retired') - Number(a.moat_state === 'retired'));
  for (const key of changed) await storeLifecycle(token, key);
  for (const key of result.pruned) await destroyHsmKey(token, key.kid);
  return result;
}

/** Destroys retired keys whose tokens have all expired; returns them. */
export async function pruneRetiredHsmKeys(token: Pkcs11Token, retainSeconds: number, now = Math.floor(Date.now() / 1000)): Promise<HsmKey[]> {
  const pruned = (await listHsmKeys(token)).filter((k) => isExpired(k, retainSeconds, now));
  for (const key of pruned) await destroyHsmKey(token, key.kid);
  return pruned;
}

/**
 * Has the token sign `data` (a JWS signing input) with the key: RSASSA-PSS with SHA-256 and MGF1
 * SHA-256, salt 32 (RFC 7518 §3.5), or ECDSA P-256 over its SHA-256 digest, whose PKCS#11 output
 * r‖s is the JWS form already (RFC 7518 §3.4).
 */
export async function signWithHsmKey(token: Pkcs11Token, key: Pick<HsmKey, 'kid' | 'alg'>, data: Uint8Array): Promise<Buffer> {
  const { graphene } = token;
  return token.withSession(async (session) => {
    const [privateKey] = objects<Graphene.PrivateKey>(session, { class: graphene.ObjectClass.PRIVATE_KEY, id: Buffer.from(key.kid, 'utf8') });
    if (privateKey === undefined) throw new HsmUnavailableError('key_missing', `signing key ${key.kid} is not in token "${token.label}"`);
    const signer =
      key.alg === 'PS256'
        ? session.createSign(
            { name: 'SHA256_RSA_PKCS_PSS', params: new graphene.RsaPssParams(graphene.MechanismEnum.SHA256, graphene.RsaMgf.MGF1_SHA256, 32) },
            privateKey,
          )
        : session.createSign('ECDSA', privateKey);
    const input = key.alg === 'PS256' ? Buffer.from(data) : createHash('sha256').update(data).digest();
    return new Promise<Buffer>((resolve, reject) => {
      signer.once(input, (err, signature) => (err ? reject(err) : resolve(signature)));
    });
  });
}

/** `moat keys generate`: a new key published as `next` (verify only) until it is activated. */
export async function stageHsmKey(token: Pkcs11Token, alg: SigningAlgorithm, now = Math.floor(Date.now() / 1000)): Promise<HsmKey> {
  return generateHsmKey(token, pkcs11Algorithm(alg), 'next', now);
}

/** Applies a lifecycle step (activateKey, retireKey) to the token's keys; returns the keys it changed. */
export async function changeHsmKeys(token: Pkcs11Token, step: (keys: HsmKey[]) => HsmKey[]): Promise<HsmKey[]> {
  const keys = await listHsmKeys(token);
  const changed = step(keys);
  checkKeySet(token, keys);
  for (const key of changed) await storeLifecycle(token, key);
  return changed;
}

/**
 * `moat config validate --connect`: logs in to the token and lists Moat's keys in it, changing
 * nothing. Throws the HsmUnavailableError naming the key to fix when the token cannot be used.
 */
export async function describeHsmToken(config: Pkcs11Config): Promise<string> {
  const token = await openPkcs11Token(config);
  try {
    const keys = await listHsmKeys(token);
    const states = keys.map((k) => `${k.alg} ${k.moat_state} ${k.kid}`);
    return `token "${token.label}" present, PIN accepted, ${keys.length} Moat signing key${keys.length === 1 ? '' : 's'}${states.length === 0 ? ' (generated at first start)' : ` (${states.join(', ')})`}`;
  } finally {
    token.close();
  }
}
