import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/*
 * A real HSM for the tests: Debian's SoftHSM2 with a configuration and token directory of the test
 * run's own, never the machine's: global-setup.ts writes one (privateSoftHsmConfig) and points
 * SOFTHSM2_CONF at it before Jest starts its workers — SoftHSM reads the variable when the library
 * is initialised, from the real environment, which a test file's `process.env` is not. Each test
 * file makes tokens with labels of its own in it. Where SoftHSM is not installed the tests say so
 * and skip — except in CI (TEST_MOAT_REQUIRE_SERVICES=1), where .ci/run installs it and its absence
 * is a failure.
 */

const LIBRARIES = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so'];

export const SOFTHSM_LIBRARY = LIBRARIES.find((p) => existsSync(p)) ?? LIBRARIES[0]!;

export function softHsmAvailable(): boolean {
  const util = ['/usr/bin/softhsm2-util', '/usr/local/bin/softhsm2-util'].some((p) => existsSync(p));
  if (util && existsSync(SOFTHSM_LIBRARY)) return true;
  if (process.env.TEST_MOAT_REQUIRE_SERVICES === '1') {
    throw new Error('SoftHSM2 is required for the HSM tests in CI and is not installed (apt-get install softhsm2)');
  }
  process.stderr.write('moat tests: SoftHSM2 is not installed; the HSM tests are skipped (apt-get install softhsm2)\n');
  return false;
}

/** Writes a SoftHSM configuration under a fresh temporary directory; returns the file and the directory. */
export function privateSoftHsmConfig(): { conf: string; root: string } {
  const root = mkdtempSync(join(tmpdir(), PRIVATE_PREFIX));
  const tokenDir = join(root, 'tokens');
  mkdirSync(tokenDir);
  const conf = join(root, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  return { conf, root };
}

const PRIVATE_PREFIX = 'moat-softhsm-';

export interface SoftHsm {
  library: string;
  /** Creates and initialises a token with a label unique to this run; returns its keys.pkcs11 configuration. */
  createToken(name: string, pin?: string): { library: string; tokenLabel: string; pin: string };
  /** Takes a token's files away, as if the HSM were unplugged; returns a function that puts them back. */
  removeToken(tokenLabel: string): () => void;
}

/** The run's private SoftHSM (refuses to touch any other, such as the machine's). */
export function useSoftHsm(): SoftHsm {
  const conf = process.env.SOFTHSM2_CONF;
  if (conf === undefined || !dirname(conf).startsWith(join(tmpdir(), PRIVATE_PREFIX))) {
    throw new Error(`SOFTHSM2_CONF (${String(conf)}) is not the test run's private SoftHSM configuration (test/support/global-setup.ts sets it)`);
  }
  const root = dirname(conf);
  const tokenDir = join(root, 'tokens');
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  // SoftHSM keeps each token in a directory of its own, whose token.object holds the label.
  const directoryOf = (label: string) =>
    readdirSync(tokenDir).find((d) => {
      const file = join(tokenDir, d, 'token.object');
      return existsSync(file) && readFileSync(file).includes(Buffer.from(label.padEnd(32, ' ')));
    });
  return {
    library: SOFTHSM_LIBRARY,
    createToken(name, pin = '123456') {
      const tokenLabel = `${name.slice(0, 20)}-${randomBytes(4).toString('hex')}`;
      execFileSync('softhsm2-util', ['--init-token', '--free', '--label', tokenLabel, '--pin', pin, '--so-pin', `so-${pin}`], { env, stdio: 'pipe' });
      return { library: SOFTHSM_LIBRARY, tokenLabel, pin };
    },
    removeToken(tokenLabel) {
      const dir = directoryOf(tokenLabel);
      if (dir === undefined) throw new Error(`no SoftHSM token labelled ${tokenLabel}`);
      const aside = join(root, `removed-${dir}`);
      renameSync(join(tokenDir, dir), aside);
      return () => renameSync(aside, join(tokenDir, dir));
    },
  };
}
