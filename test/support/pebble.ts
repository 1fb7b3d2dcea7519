import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, issueLeaf } from './pki.ts';
import { freePort } from './ports.ts';

/*
 * A real ACME CA for the tests: Debian's `pebble` (Let's Encrypt's ACME test server), one per test
 * file, on loopback ports of its own, with a listener certificate from a test CA made here (its
 * `caPem` is what acme.caFile names). Challenges are really validated: pebble fetches the http-01
 * answer from `localhost:<httpPort>`, which the test gives Moat as acme.http01.port — so
 * PEBBLE_VA_ALWAYS_VALID is not used. PEBBLE_VA_NOSLEEP skips pebble's random validation delay and
 * PEBBLE_WFE_NONCEREJECT=0 its deliberate 5% of rejected nonces (acme-client retries a badNonce
 * once; two in a row would fail an order at random). Where pebble is not installed the tests say
 * so and skip — except in CI (TEST_MOAT_REQUIRE_SERVICES=1), where .ci/run installs it.
 */

export const PEBBLE = '/usr/bin/pebble';

export function pebbleAvailable(): boolean {
  if (existsSync(PEBBLE)) return true;
  if (process.env.TEST_MOAT_REQUIRE_SERVICES === '1') {
    throw new Error('pebble is required for the ACME tests in CI and is not installed (apt-get install pebble)');
  }
  process.stderr.write('moat tests: pebble is not installed; the ACME tests are skipped (apt-get install pebble)\n');
  return false;
}

export interface Pebble {
  directoryUrl: string;
  /** The CA of pebble's own listener certificate (for acme.caFile), and that file. */
  caPem: string;
  caFile: string;
  /** The port pebble validates http-01 challenges on (acme.http01.port). */
  httpPort: number;
  /** The root every certificate pebble issues chains to (regenerated each run of pebble). */
  rootPem(): Promise<string>;
  close(): Promise<void>;
}

export async function startPebble(options: { validitySeconds?: number; externalAccountKeys?: Record<string, string> } = {}): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'moat-pebble-'));
  const ca = await createTestCa([{ CN: ['Moat test ACME listener CA'] }]);
  const listener = await issueLeaf(ca, { subject: [{ CN: ['localhost'] }], eku: ['serverAuth'], san: { dns: ['localhost'], ip: ['127.0.0.1'] } });
  const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), ca: join(dir, 'ca.pem'), config: join(dir, 'pebble.json') };
  writeFileSync(files.cert, listener.certPem);
  writeFileSync(files.key, listener.keyPem);
  writeFileSync(files.ca, ca.certPem);
  const [acmePort, managementPort, httpPort, tlsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(
    files.config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: files.cert,
        privateKey: files.key,
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        // With keys: accounts must be bound to one of them (RFC 8555 §7.3.4), by kid and base64url MAC key.
        externalAccountBindingRequired: options.externalAccountKeys !== undefined,
        externalAccountMACKeys: options.externalAccountKeys ?? {},
        certificateValidityPeriod: options.validitySeconds ?? 3600,
      },
    }),
  );
  const child: ChildProcess = spawn(PEBBLE, ['-config', files.config], {
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const agent = new Agent({ ca: ca.certPem, keepAlive: false });
  const fetchText = (url: string) =>
    new Promise<string>((resolve, reject) => {
      get(url, { agent }, (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (c: string) => {
            body += c;
          })
          .on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
      }).on('error', reject);
    });
  const directoryUrl = `https://127.0.0.1:${acmePort}/dir`;
  // Pebble listens within a second or two; wait for its directory rather than for a fixed time
  // (up to a minute: on a loaded CI machine starting a Go binary can take a while).
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await fetchText(directoryUrl);
      break;
    } catch (err) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill();
        throw new Error(`pebble did not start: ${(err as Error).message}\n${output}`, { cause: err });
      }
      await new Promise((done) => setTimeout(done, 100));
    }
  }
  return {
    directoryUrl,
    caPem: ca.certPem,
    caFile: files.ca,
    httpPort,
    rootPem: () => fetchText(`https://127.0.0.1:${managementPort}/roots/0`),
    close: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((done) => child.once('exit', done));
        child.kill();
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
