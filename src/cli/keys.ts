import { pino } from 'pino';
import { SIGNING_ALGORITHMS, type MoatConfig, type SigningAlgorithm } from '../config/schema.ts';
import { changeHsmKeys, loadOrCreateHsmKeys, rotateHsmKeys, stageHsmKey } from '../keys/hsm-signing-keys.ts';
import { activateKey, describeKey, KeyLifecycleError, retireKey, type LifecycleKey, type RotationResult } from '../keys/key-lifecycle.ts';
import { lifecycleInDatabase, retainSeconds, rotationPolicy, type KeyTransition, type SharedKey } from '../keys/key-rotation.ts';
import { HsmUnavailableError, openPkcs11Token } from '../keys/pkcs11-token.ts';
import { rotateSharedKeys, sealedKeyMaterial, signingKeyBox, type KeyMaterial } from '../keys/shared-signing-keys.ts';
import { hsmKeyMaterial, signingFailuresCounter } from '../provider/external-signing-keys.ts';
import { Registry } from 'prom-client';
import { changeSigningKeys, loadOrCreateSigningKeys, rotateSigningKeys, stageSigningKey } from '../keys/signing-keys.ts';
import { createSqlSigningKeyStore } from '../storage/sql/signing-key-store.ts';
import { withDirectDatabase } from './direct-database.ts';
import { EXIT_USAGE, type CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage: moat keys list | rotate [--stage | --immediately] | generate --alg ALG | activate KID | retire KID  [--config FILE]
  the signing keys where keys.source keeps them: the JWKS file under keys.dir, the PKCS#11 token (keys.pkcs11),
  or the database every instance shares (keys.source database, or pkcs11 with keys.rotation.every: list and rotate;
  instances follow without a restart)
  list                 the signing keys and their state
  rotate               retire the active keys (still published until their tokens expire) and activate new ones
  rotate --stage       also publish the next keys without signing with them yet (roll the instances, then rotate)
  generate --alg ALG   publish a new key of ALG as next (verify only); restart every instance before activating it
  activate KID         the key signs from the next restart; the key it replaces is retired, still published
  retire KID           a next key stops being offered (published until its retention ends)
  rotate (database, or pkcs11 on a schedule) publish the next keys now; every instance activates them once published for
                       keys.rotation.jwksCacheSeconds + checkIntervalSeconds, and retires the old ones
  rotate --immediately (database, a compromised key) activate the next keys now: clients must fetch the JWKS again
`;

const SUBCOMMANDS = ['list', 'rotate', 'generate', 'activate', 'retire'] as const;
/** What `moat keys activate|retire` may be given where the kid belongs: then the kid is missing. */
const KID_LOOKALIKE_OPTIONS: ReadonlySet<string> = new Set(['--config', '--data-dir', '--help', '-h', '--']);
type Subcommand = (typeof SUBCOMMANDS)[number];

/** The same commands over either key source. */
interface KeyStore {
  list(): Promise<LifecycleKey[]>;
  rotate(stage: boolean): Promise<RotationResult<LifecycleKey>>;
  generate(alg: SigningAlgorithm): Promise<LifecycleKey>;
  change(step: <K extends LifecycleKey>(keys: K[]) => K[]): Promise<LifecycleKey[]>;
  close(): void;
}

async function openKeyStore(config: MoatConfig): Promise<KeyStore> {
  const retain = retainSeconds(config);
  if (config.keys.source === 'pkcs11') {
    const token = await openPkcs11Token(config.keys.pkcs11!);
    return {
      list: async () => (await loadOrCreateHsmKeys(token, config.keys.algorithms)).keys,
      rotate: (stage) => rotateHsmKeys(token, config.keys.algorithms, { retainSeconds: retain, stage }),
      generate: (alg) => stageHsmKey(token, alg),
      change: (step) => changeHsmKeys(token, step),
      close: () => token.close(),
    };
  }
  const { dir } = config.keys;
  return {
    list: async () => (await loadOrCreateSigningKeys(dir, config.keys.algorithms)).keys,
    rotate: (stage) => rotateSigningKeys(dir, config.keys.algorithms, { retainSeconds: retain, stage }),
    generate: (alg) => stageSigningKey(dir, alg),
    change: async (step) => changeSigningKeys(dir, step),
    close: () => undefined,
  };
}

/** `moat keys …`: list, rotate, generate, activate and retire signing keys, in a file or in the HSM. */
export async function keysCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (!SUBCOMMANDS.includes(sub as Subcommand)) {
    io.stderr.write(USAGE);
    return 2;
  }
  const kid = sub === 'activate' || sub === 'retire' ? rest.shift() : undefined;
  // A kid may start with "-" (base64url); only a missing one, or an option where it should be, is refused.
  if ((sub === 'activate' || sub === 'retire') && (kid === undefined || KID_LOOKALIKE_OPTIONS.has(kid))) {
    io.stderr.write(`moat keys ${sub}: which key? give its kid (moat keys list shows them)\n`);
    return 2;
  }
  const options: Record<string, { type: 'string' | 'boolean' }> =
    sub === 'rotate' ? { stage: { type: 'boolean' }, immediately: { type: 'boolean' } } : sub === 'generate' ? { alg: { type: 'string' } } : {};
  const result = loadConfigOrReport(rest, io, options);
  if ('exitCode' in result) return result.exitCode;
  const { config } = result.loaded;
  if (lifecycleInDatabase(config)) return databaseKeys(sub as Subcommand, config, result.values.immediately === true, io);
  if (result.values.immediately === true) {
    io.stderr.write('moat keys rotate: --immediately is for keys.source database; a file or token rotation activates at once already\n');
    return EXIT_USAGE;
  }
  const alg = result.values.alg as string | undefined;
  if (sub === 'generate' && !config.keys.algorithms.includes(alg as SigningAlgorithm)) {
    io.stderr.write(
      `moat keys generate: --alg must be one of keys.algorithms (${config.keys.algorithms.join(', ')}); ${SIGNING_ALGORITHMS.join(', ')} exist\n`,
    );
    return 2;
  }
  let store: KeyStore;
  try {
    store = await openKeyStore(config);
  } catch (err) {
    if (!(err instanceof HsmUnavailableError)) throw err;
    io.stderr.write(`moat: ${err.message}\n`);
    return 1;
  }
  try {
    await run(sub as Subcommand, store, { config, kid: kid ?? '', alg: alg as SigningAlgorithm, stage: result.values.stage === true }, io);
    return 0;
  } catch (err) {
    if (!(err instanceof KeyLifecycleError || err instanceof HsmUnavailableError)) throw err;
    io.stderr.write(`moat: ${err.message}\n`);
    return 1;
  } finally {
    store.close();
  }
}

async function run(
  sub: Subcommand,
  store: KeyStore,
  args: { config: MoatConfig; kid: string; alg: SigningAlgorithm; stage: boolean },
  io: CliIo,
): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  const restart = 'restart (or roll) every Moat instance to load the new key set.\n';
  switch (sub) {
    case 'list':
      for (const k of await store.list()) io.stdout.write(`${describeKey(k)}\n`);
      return;
    case 'generate': {
      const k = await store.generate(args.alg);
      io.stdout.write(`next:    ${k.kid} (${k.alg}), published, signs once activated (moat keys activate ${k.kid})\n${restart}`);
      return;
    }
    case 'activate':
    case 'retire': {
      const changed = await store.change((keys) => (sub === 'activate' ? activateKey(keys, args.kid, now) : retireKey(keys, args.kid, now)));
      for (const k of changed) io.stdout.write(`${k.moat_state.padEnd(8)} ${k.kid} (${k.alg})\n`);
      io.stdout.write(changed.length === 0 ? `${args.kid} is ${sub === 'activate' ? 'active' : 'retired'} already\n` : restart);
      return;
    }
    case 'rotate': {
      const retain = retainSeconds(args.config);
      const rotation = await store.rotate(args.stage);
      for (const k of rotation.activated) io.stdout.write(`active:  ${k.kid} (${k.alg})\n`);
      for (const k of rotation.retired) io.stdout.write(`retired: ${k.kid} (${k.alg}), published for verification for ${retain} s more\n`);
      for (const k of rotation.staged) io.stdout.write(`staged:  ${k.kid} (${k.alg}), published, signs from the next rotation\n`);
      for (const k of rotation.pruned) io.stdout.write(`removed: ${k.kid} (${k.alg}), its tokens have all expired\n`);
      io.stdout.write(restart);
    }
  }
}

function describeShared(k: SharedKey): string {
  const at = k.moat_activate_at === undefined ? '' : ` activates ${new Date(k.moat_activate_at * 1000).toISOString()}`;
  return `${describeKey(k)}${at}`;
}

function describeTransition(t: KeyTransition, retain: number): string {
  switch (t.kind) {
    case 'generated':
      return `active:  ${t.key.kid} (${t.key.alg}), new`;
    case 'adopted':
      return `${t.key.moat_state.padEnd(8)} ${t.key.kid} (${t.key.alg}), kept from the token`;
    case 'staged':
      return `next:    ${t.key.kid} (${t.key.alg}), published now, signs from ${new Date(t.key.moat_activate_at! * 1000).toISOString()}`;
    case 'scheduled':
      return `next:    ${t.kid} (${t.alg}), signs from ${new Date(t.activateAt * 1000).toISOString()}`;
    case 'activated':
      return `active:  ${t.kid} (${t.alg})`;
    case 'retired':
      return `retired: ${t.kid} (${t.alg}), published for verification for ${retain} s more`;
    case 'removed':
      return `removed: ${t.kid} (${t.alg}), its tokens have all expired`;
  }
}

/**
 * keys.source database: the keys every instance reads. \`rotate\` makes the same transitions the
 * instances make on schedule, now, and audits them as the operator's; the instances pick them up.
 */
async function databaseKeys(sub: Subcommand, config: MoatConfig, immediately: boolean, io: CliIo): Promise<number> {
  const where = config.keys.source === 'pkcs11' ? 'keys.source pkcs11 with keys.rotation.every' : 'keys.source database';
  if (sub !== 'list' && sub !== 'rotate') {
    io.stderr.write(`moat keys ${sub}: not with ${where} — moat keys rotate publishes the next keys and the instances activate them\n`);
    return EXIT_USAGE;
  }
  let material: KeyMaterial;
  let closeToken = () => undefined as void;
  if (config.keys.source === 'pkcs11') {
    try {
      const token = await openPkcs11Token(config.keys.pkcs11!);
      closeToken = () => token.close();
      material = hsmKeyMaterial(token, { logger: pino({ level: 'silent' }), failures: signingFailuresCounter(new Registry()) });
    } catch (err) {
      if (!(err instanceof HsmUnavailableError)) throw err;
      io.stderr.write(`moat: ${err.message}\n`);
      return 1;
    }
  } else {
    material = sealedKeyMaterial(signingKeyBox(config));
  }
  try {
    return await sharedKeysCommand(sub, config, material, immediately, io);
  } finally {
    closeToken();
  }
}

function sharedKeysCommand(sub: 'list' | 'rotate', config: MoatConfig, material: KeyMaterial, immediately: boolean, io: CliIo): Promise<number> {
  return withDirectDatabase(config, io, async ({ sql, audit }) => {
    const store = createSqlSigningKeyStore(sql, config.keys.source === 'pkcs11' ? 'pkcs11' : 'database');
    if (sub === 'list') {
      for (const k of await store.list()) io.stdout.write(`${describeShared(k)}\n`);
      return 0;
    }
    const logger = pino({ level: 'silent' });
    const made = await rotateSharedKeys({ store, material, policy: rotationPolicy(config), audit, logger, now: Math.floor(Date.now() / 1000), immediately });
    await audit.drain();
    for (const t of made) io.stdout.write(`${describeTransition(t, retainSeconds(config))}\n`);
    io.stdout.write(
      made.length === 0
        ? 'nothing to change: the next keys are published and activate when shown (moat keys list)\n'
        : 'every instance picks the change up within seconds; no restart.\n',
    );
    return 0;
  });
}
