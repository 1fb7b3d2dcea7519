import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { freePort, startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp } from '../support/tpp-client.ts';

/*
 * The shipped deploy/nginx/moat.conf in front of Moat, with a real nginx: only the addresses, the
 * certificate paths and the http2 directive (nginx ≥ 1.25) are rewritten for a loopback run.
 * Skipped, saying so, where no nginx binary is installed (`apt-get install nginx-light`).
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const nginx = spawnSync('nginx', ['-v']).error === undefined ? 'nginx' : undefined;
const run = promisify(execFile);

(nginx === undefined ? describe.skip : describe)('Moat behind nginx with deploy/nginx/moat.conf', () => {
  let h: Harness;
  let dir: string;

  beforeAll(async () => {
    const gatewayPort = await freePort();
    h = await startMoat({
      config: { issuer: `https://localhost:${gatewayPort}`, tls: { terminate: false }, trustedProxies: { addresses: ['127.0.0.1'], format: 'nginx' } },
    });
    dir = join(h.dataDir, 'nginx');
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    const material = await ensureSandboxMaterial(h.dataDir);
    copyFileSync(material.serverCertFile, join(dir, 'server.pem'));
    copyFileSync(material.serverKeyFile, join(dir, 'server.key'));
    const site = readFileSync(join(ROOT, 'deploy', 'nginx', 'moat.conf'), 'utf8')
      .replaceAll('/etc/nginx/certs', dir)
      .replace('server moat:8080 resolve;', `server 127.0.0.1:${h.port};`)
      .replace('listen 443 ssl;', `listen 127.0.0.1:${gatewayPort} ssl;`)
      .replace(/^\s*http2 on;\n/m, '');
    writeFileSync(join(dir, 'site.conf'), site);
    writeFileSync(
      join(dir, 'nginx.conf'),
      [
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/error.log;`,
        'events {}',
        'http {',
        `  access_log ${dir}/access.log;`,
        `  client_body_temp_path ${dir}/tmp;`,
        `  proxy_temp_path ${dir}/tmp;`,
        `  include ${dir}/site.conf;`,
        '}',
        '',
      ].join('\n'),
    );
    await run(nginx!, ['-c', join(dir, 'nginx.conf')]);
  });

  afterAll(async () => {
    await run(nginx!, ['-c', join(dir, 'nginx.conf'), '-s', 'stop']).catch(() => {});
    await h?.close();
  });

  it('carries registration, the customer flow and the certificate binding through the gateway', async () => {
    const tpp = await onboardTpp(h);
    try {
      const { tokens } = await authorizationCodeFlow(h, tpp);
      const res = await tpp.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(res.status).toBe(200);
      const other = await onboardTpp(h);
      try {
        const stolen = await other.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
        expect(stolen.status).toBe(401);
      } finally {
        await other.close();
      }
    } finally {
      await tpp.close();
    }
  });

  it('overwrites a certificate header a client tries to smuggle through', async () => {
    const tpp = await onboardTpp(h);
    try {
      const { tokens } = await authorizationCodeFlow(h, tpp);
      const { tlsFetch } = await import('../support/tpp-client.ts');
      const bare = tlsFetch(tpp.creds.serverCaPem);
      try {
        const res = await bare(`${h.issuer}/sandbox-api/accounts`, {
          headers: { authorization: `Bearer ${tokens.access_token}`, 'x-ssl-client-cert': encodeURIComponent(tpp.creds.certPem) },
        });
        expect(res.status).toBe(401);
      } finally {
        await bare.close();
      }
    } finally {
      await tpp.close();
    }
  });
});

if (nginx === undefined) {
  it.skip('nginx gateway test: no nginx binary on this machine (apt-get install nginx-light)', () => {});
}
