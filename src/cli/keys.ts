import type { MoatConfig } from '../config/schema.ts';
import { loadOrCreateSigningKeys, rotateSigningKeys } from '../keys/signing-keys.ts';
import type { CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

/**
 * How long a retired key stays published: the longest lifetime of anything it may have signed
 * (ID tokens, JWT access tokens, JARM responses, signed introspection responses), plus clock skew.
 */
export function retainSeconds(config: MoatConfig): number {
  const lifetimes = [
    config.tokens.idTokenTtl, config.tokens.accessTokenTtl, config.tokens.clientCredentialsTtl,
    ...config.resourceServers.map((rs) => rs.accessTokenTtl ?? 0),
  ];
  return Math.max(...lifetimes) + 60;
}

export const USAGE = `usage: moat keys list | moat keys rotate [--stage] [--config FILE]
  list                 the signing keys under keys.dir and their state
  rotate               retire the active keys (still published until their tokens expire) and activate new ones
  rotate --stage       publish the next keys without signing with them yet (roll the instances, then rotate)
`;

/** `moat keys list` and `moat keys rotate [--stage]`. */
export async function keysCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'list' && sub !== 'rotate') {
    io.stderr.write(USAGE);
    return 2;
  }
  const result = loadConfigOrReport(rest, io, sub === 'rotate' ? { stage: { type: 'boolean' } } : {});
  if ('exitCode' in result) return result.exitCode;
  const { config } = result.loaded;
  if (sub === 'list') {
    const { keys } = await loadOrCreateSigningKeys(config.keys.dir, config.keys.algorithms);
    for (const k of keys) {
      const retired = k.moat_retired_at === undefined ? '' : ` retired ${new Date(k.moat_retired_at * 1000).toISOString()}`;
      io.stdout.write(`${k.kid}  ${k.alg.padEnd(6)} ${k.moat_state.padEnd(8)} created ${new Date(k.moat_created_at * 1000).toISOString()}${retired}\n`);
    }
    return 0;
  }
  const retain = retainSeconds(config);
  const rotation = await rotateSigningKeys(config.keys.dir, config.keys.algorithms, { retainSeconds: retain, stage: result.values.stage === true });
  for (const k of rotation.activated) io.stdout.write(`active:  ${k.kid} (${k.alg})\n`);
  for (const k of rotation.retired) io.stdout.write(`retired: ${k.kid} (${k.alg}), published for verification for ${retain} s more\n`);
  for (const k of rotation.staged) io.stdout.write(`staged:  ${k.kid} (${k.alg}), published, signs from the next rotation\n`);
  for (const k of rotation.pruned) io.stdout.write(`removed: ${k.kid} (${k.alg}), its tokens have all expired\n`);
  io.stdout.write('restart (or roll) every Moat instance to load the new key set.\n');
  return 0;
}
