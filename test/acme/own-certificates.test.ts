import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, createServer as createHttpsServer, request, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { Writable } from 'node:stream';
import { parser } from '@prometheus-io/lezer-promql';
import { Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { createConfiguredAccountService } from '../../src/accounts/account-source.ts';
import { createOwnCertificates, type OwnCertificates } from '../../src/acme/own-certificates.ts';
import { validateConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { metricFamilies, scrapeMetrics, sampleSum } from '../support/admin-metrics.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { pebbleAvailable, startPebble, type Pebble } from '../support/pebble.ts';
import { createTestCa, issueLeaf } from '../support/pki.ts';

/*
 * Issue 21 point 2: Moat's own certificates from an ACME CA (RFC 8555) — Debian's pebble, with
 * real http-01 validation against Moat's responder — renewed at a fraction of their lifetime and
 * swapped in while running. The renewal clock is Moat's injected `now`, moved by the test; the
 * certificates themselves are real and valid for real time (pebble issues them for an hour).
 */

const describeWithPebble = pebbleAvailable() ? describe : describe.skip;

/** A fresh TLS handshake with Moat, verifying the chain against pebble's root; resolves with the leaf's serial. */
function handshakeSerial(port: number, root: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: root, rejectUnauthorized: true }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

/** GET /healthz on `agent`'s connections; resolves with the status and the serial the connection saw. */
function healthz(port: number, agent: Agent): Promise<{ status: number; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, servername: 'localhost', path: '/healthz', agent }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      res.resume().on('end', () => resolve({ status: res.statusCode ?? 0, serial }));
    });
    req.on('error', reject);
    req.end();
  });
}

function serialOf(pem: string): string {
  return new X509Certificate(pem).serialNumber;
}

/** The metric names an expression selects, by Prometheus's own grammar; throws on a syntax error. */
function metricsOf(promql: string): string[] {
  const names: string[] = [];
  parser.parse(promql).iterate({
    enter(ref) {
      if (ref.type.isError) throw new Error(`PromQL syntax error at offset ${ref.from} in: ${promql}`);
      const name = ref.name === 'VectorSelector' ? ref.node.getChild('Identifier') : null;
      if (name !== null) names.push(promql.slice(name.from, name.to));
    },
  });
  return names;
}

describeWithPebble("Moat's server certificate by ACME (RFC 8555), from pebble", () => {
  let pebble: Pebble;
  let root: string;
  let h: Harness;
  let certDir: string;
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);

  beforeAll(async () => {
    pebble = await startPebble({ validitySeconds: 3600 });
    root = await pebble.rootPem();
    certDir = mkdtempSync(join(tmpdir(), 'moat-acme-'));
    h = await startMoat({
      now,
      config: {
        tls: { certFile: join(certDir, 'server.pem'), keyFile: join(certDir, 'server.key') },
        acme: {
          enabled: true,
          directoryUrl: pebble.directoryUrl,
          caFile: pebble.caFile,
          contact: ['mailto:pki@bank.example'],
          http01: { host: '127.0.0.1', port: pebble.httpPort },
          // Checks are driven by the test; the timer would race it.
          checkIntervalSeconds: 3600,
        },
      },
    });
  }, 120_000);

  afterAll(async () => {
    await h?.close();
    await pebble?.close();
  });

  it('orders the server certificate at start (http-01 answered by Moat) and serves it, chained to the CA', async () => {
    const renewal = h.moat.ownCertificates!.server!;
    const state = renewal.state();
    const served = await handshakeSerial(h.port, root);
    expect(served).toBe(state.serial);
    // Kept where a restart finds it: the files named by tls.certFile and tls.keyFile.
    expect(serialOf(readFileSync(join(certDir, 'server.pem'), 'utf8'))).toBe(state.serial);
    // RFC 8555 §8.3 done for real: the issued certificate names the issuer's host.
    expect(new X509Certificate(renewal.current().certPem).checkHost('localhost')).toBe('localhost');
    // Renewal is due at the default 2/3 of the lifetime.
    const lifetime = state.notAfter.getTime() - state.notBefore.getTime();
    expect(state.renewAt.getTime() - state.notBefore.getTime()).toBeCloseTo(lifetime * (2 / 3), -3);
    expect(h.logs.some((l) => l.event === 'own_certificate.issued' && l.certificate === 'server')).toBe(true);
  });

  it('does not call the CA before the renewal time', async () => {
    await expect(h.moat.ownCertificates!.server!.check()).resolves.toBe('not_due');
  });

  it('starts again with the certificate in its files, without ordering another', async () => {
    const current = h.moat.ownCertificates!.server!.state();
    const again = await startMoat({
      now,
      config: {
        tls: { certFile: join(certDir, 'server.pem'), keyFile: join(certDir, 'server.key') },
        acme: { enabled: true, directoryUrl: pebble.directoryUrl, caFile: pebble.caFile, http01: { host: '127.0.0.1', port: 0 }, checkIntervalSeconds: 3600 },
      },
    });
    try {
      expect(again.moat.ownCertificates!.server!.state().serial).toBe(current.serial);
      expect(await handshakeSerial(again.port, root)).toBe(current.serial);
      expect(again.logs.some((l) => l.event === 'own_certificate.loaded')).toBe(true);
      expect(again.logs.some((l) => l.event === 'own_certificate.issued' || l.event === 'own_certificate.ordering')).toBe(false);
    } finally {
      await again.close();
    }
  });

  it('renews under load: connections in flight keep working, new handshakes get the new certificate', async () => {
    const renewal = h.moat.ownCertificates!.server!;
    const before = renewal.state();

    // A connection in the middle of a request: its headers half sent when the certificate changes.
    const inFlight = connect({ host: '127.0.0.1', port: h.port, servername: 'localhost', ca: root });
    await new Promise<void>((done, fail) => inFlight.once('secureConnect', () => done()).once('error', fail));
    inFlight.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');

    // Load: eight keep-alive connections requesting without pause through the renewal.
    const agent = new Agent({ keepAlive: true, maxSockets: 8, ca: root });
    let running = true;
    const answers: { status: number; serial: string; afterRenewal: boolean }[] = [];
    const failures: unknown[] = [];
    let renewed = false;
    const loops = Array.from({ length: 8 }, async () => {
      while (running) {
        try {
          const answer = await healthz(h.port, agent);
          answers.push({ ...answer, afterRenewal: renewed });
        } catch (err) {
          failures.push(err);
        }
      }
    });
    while (answers.length < 40) await new Promise((done) => setTimeout(done, 10));

    offsetMs = before.renewAt.getTime() - Date.now() + 1000;
    await expect(renewal.check()).resolves.toBe('renewed');
    renewed = true;
    const after = renewal.state();
    expect(after.serial).not.toBe(before.serial);
    const answersAtRenewal = answers.length;
    while (answers.length < answersAtRenewal + 40) await new Promise((done) => setTimeout(done, 10));
    running = false;
    await Promise.all(loops);

    // Nothing was dropped, and the connections opened before the swap went on with the old certificate.
    expect(failures).toEqual([]);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(answers.filter((a) => a.afterRenewal && a.serial === before.serial).length).toBeGreaterThan(0);
    agent.destroy();

    // The half-sent request completes on its old connection.
    const response = new Promise<string>((resolve) => {
      let text = '';
      inFlight.setEncoding('utf8').on('data', (c: string) => {
        text += c;
        if (text.includes('\r\n\r\n')) resolve(text);
      });
    });
    inFlight.write('\r\n');
    expect(await response).toMatch(/^HTTP\/1\.1 200/);
    expect(inFlight.getPeerCertificate().serialNumber).toBe(before.serial);
    inFlight.destroy();

    // Every new handshake sees the new one, which the files now hold too.
    expect(await handshakeSerial(h.port, root)).toBe(after.serial);
    expect(serialOf(readFileSync(join(certDir, 'server.pem'), 'utf8'))).toBe(after.serial);
    expect(h.logs.some((l) => l.event === 'own_certificate.renewed' && l.serial === after.serial)).toBe(true);

    const metrics = await scrapeMetrics(h);
    expect(sampleSum(metrics, 'moat_own_certificate_renewals_total', { certificate: 'server', outcome: 'renewed' })).toBe(1);
    expect(sampleSum(metrics, 'moat_own_certificate_renewal_overdue', { certificate: 'server' })).toBe(0);
    expect(sampleSum(metrics, 'moat_own_certificate_not_after_timestamp_seconds', { certificate: 'server' })).toBe(after.notAfter.getTime() / 1000);
  });

  it('ships Prometheus alert rules on these metrics (deploy/prometheus/alerts.yml), in valid PromQL', async () => {
    const { groups } = parseYaml(readFileSync(join(import.meta.dirname, '..', '..', 'deploy', 'prometheus', 'alerts.yml'), 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const rules = groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(['MoatCertificateRenewalOverdue', 'MoatCertificateExpiresSoon']);
    const families = metricFamilies(await scrapeMetrics(h));
    for (const rule of rules) {
      const names = metricsOf(rule.expr);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) expect([rule.alert, families.get(name)]).toEqual([rule.alert, 'gauge']);
    }
  });

  describe('with an ACME server that answers errors', () => {
    let broken: Server;
    let brokenUrl: string;
    let brokenCaFile: string;

    beforeAll(async () => {
      const ca = await createTestCa([{ CN: ['Broken ACME CA'] }]);
      const leaf = await issueLeaf(ca, { subject: [{ CN: ['127.0.0.1'] }], eku: ['serverAuth'], san: { ip: ['127.0.0.1'] } });
      brokenCaFile = join(certDir, 'broken-ca.pem');
      writeFileSync(brokenCaFile, ca.certPem);
      // RFC 8555 §6.7: every answer a problem document.
      broken = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem }, (_req, res) => {
        res
          .writeHead(503, { 'content-type': 'application/problem+json' })
          .end(JSON.stringify({ type: 'urn:ietf:params:acme:error:serverInternal', detail: 'the CA is down for maintenance' }));
      });
      const port = await new Promise<number>((resolve) => broken.listen(0, '127.0.0.1', () => resolve((broken.address() as { port: number }).port)));
      brokenUrl = `https://127.0.0.1:${port}/directory`;
    });

    afterAll(async () => {
      await new Promise<void>((done) => {
        broken.close(() => done());
        broken.closeAllConnections();
      });
    });

    it('keeps serving the current certificate, retries with doubling back-off, and raises the metric and an error log line', async () => {
      // A second instance starts with the certificate already issued (copied), past its renewal time.
      const dir = mkdtempSync(join(tmpdir(), 'moat-acme-broken-'));
      copyFileSync(join(certDir, 'server.pem'), join(dir, 'server.pem'));
      copyFileSync(join(certDir, 'server.key'), join(dir, 'server.key'));
      const current = new X509Certificate(readFileSync(join(dir, 'server.pem')));
      let offset = new Date(current.validTo).getTime() - 10 * 60_000 - Date.now();
      const clock = () => new Date(Date.now() + offset);
      const second = await startMoat({
        now: clock,
        config: {
          tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') },
          acme: {
            enabled: true,
            directoryUrl: brokenUrl,
            caFile: brokenCaFile,
            http01: { host: '127.0.0.1', port: 0 },
            retry: { initialSeconds: 60, maxSeconds: 600 },
            checkIntervalSeconds: 3600,
          },
        },
      });
      try {
        const renewal = second.moat.ownCertificates!.server!;
        // Started: the renewal failed once, the old certificate serves.
        expect(renewal.state()).toMatchObject({ serial: current.serialNumber, failures: 1 });
        expect(renewal.state().nextAttemptAt!.getTime() - clock().getTime()).toBeGreaterThan(55_000);
        expect(await handshakeSerial(second.port, root)).toBe(current.serialNumber);

        // Within the back-off the CA is left alone; after it, tried again, and the next wait doubles.
        await expect(renewal.check()).resolves.toBe('backing_off');
        offset += 61_000;
        await expect(renewal.check()).resolves.toBe('failed');
        const state = renewal.state();
        expect(state.failures).toBe(2);
        const wait = state.nextAttemptAt!.getTime() - clock().getTime();
        expect(wait).toBeGreaterThan(119_000);
        expect(wait).toBeLessThanOrEqual(120_000);

        const lines = second.logs.filter((l) => l.event === 'own_certificate.renewal_failed');
        expect(lines).toHaveLength(2);
        expect(lines[1]).toMatchObject({
          level: 50,
          certificate: 'server',
          attempts: 2,
          serial: current.serialNumber,
          notAfter: current.validToDate.toISOString(),
          daysLeft: 0,
        });
        expect(String(lines[1]!.msg)).toMatch(/server certificate renewal failed \(attempt 2, next at .*\); the current one expires at /);
        expect(JSON.stringify(lines[1]!.err)).toMatch(/the ACME order for localhost failed: .*error 503/);

        const metrics = await scrapeMetrics(second);
        expect(sampleSum(metrics, 'moat_own_certificate_renewal_overdue', { certificate: 'server' })).toBe(1);
        expect(sampleSum(metrics, 'moat_own_certificate_renewals_total', { certificate: 'server', outcome: 'failed' })).toBe(2);
        expect(await handshakeSerial(second.port, root)).toBe(current.serialNumber);
      } finally {
        await second.close();
      }
    });

    it('refuses to start without a certificate when the CA cannot issue one, saying why', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'moat-acme-none-'));
      await expect(
        startMoat({
          config: {
            tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') },
            acme: { enabled: true, directoryUrl: brokenUrl, caFile: brokenCaFile, http01: { host: '127.0.0.1', port: 0 } },
          },
        }),
      ).rejects.toThrow(
        /^acme: no server certificate \(no certificate in its files yet\) and the ACME order failed: the ACME order for localhost failed: .*error 503/,
      );
    });
  });
});

describeWithPebble('the account service client certificate by ACME', () => {
  let pebble: Pebble;
  let root: string;
  let service: Server;
  let own: OwnCertificates | undefined;
  let servicePort: number;
  let dir: string;
  const seen: string[] = [];

  beforeAll(async () => {
    pebble = await startPebble({ validitySeconds: 3600 });
    root = await pebble.rootPem();
    const ca = await createTestCa([{ CN: ['Test Bank account service CA'] }]);
    const leaf = await issueLeaf(ca, { subject: [{ CN: ['accounts.test-bank'] }], eku: ['serverAuth'], san: { ip: ['127.0.0.1'] } });
    // The bank's service trusts the bank's CA (here pebble's root) for its clients.
    service = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem, ca: root, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      seen.push((req.socket as TLSSocket).getPeerCertificate().serialNumber);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ accounts: [] }));
    });
    servicePort = await new Promise<number>((resolve) => service.listen(0, '127.0.0.1', () => resolve((service.address() as { port: number }).port)));
    dir = mkdtempSync(join(tmpdir(), 'moat-acme-client-'));
    writeFileSync(join(dir, 'service-ca.pem'), ca.certPem);
  }, 120_000);

  afterAll(async () => {
    await own?.stop();
    await new Promise<void>((done) => {
      service.close(() => done());
      service.closeAllConnections();
    });
    await pebble?.close();
  });

  it('presents the ordered certificate, and the renewed one from the next connection on', async () => {
    let offsetMs = 0;
    const now = () => new Date(Date.now() + offsetMs);
    const config = validateConfig(
      {
        issuer: 'https://localhost:8443',
        dataDir: dir,
        keys: { dir: join(dir, 'keys') },
        accounts: {
          source: 'http',
          http: { url: `https://127.0.0.1:${servicePort}/bank`, clientCertFile: 'client.pem', clientKeyFile: 'client.key', caFile: 'service-ca.pem' },
        },
        acme: {
          enabled: true,
          directoryUrl: pebble.directoryUrl,
          caFile: pebble.caFile,
          http01: { host: '127.0.0.1', port: pebble.httpPort },
          server: { enabled: false },
          accountServiceClient: { enabled: true, domains: ['localhost'] },
          checkIntervalSeconds: 3600,
        },
      },
      'test',
      dir,
    );
    const logger = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
    const registry = new Registry();
    own = await createOwnCertificates({ config, logger, registry, now });
    const renewal = own!.accountServiceClient!;
    expect(own!.server).toBeUndefined();

    // As server.ts wires it: the client reads the files ACME wrote, and takes each renewal.
    const client = createConfiguredAccountService(config.accounts.http!, { logger, registry, cacheSeconds: 60 });
    renewal.onRenewed((renewed) => client.setClientCertificate(renewed));
    await client.check();
    const first = renewal.state().serial;
    expect(seen.at(-1)).toBe(first);

    offsetMs = renewal.state().renewAt.getTime() - Date.now() + 1000;
    await expect(renewal.check()).resolves.toBe('renewed');
    await client.check();
    expect(seen.at(-1)).toBe(renewal.state().serial);
    expect(seen.at(-1)).not.toBe(first);
    expect(serialOf(readFileSync(join(dir, 'client.pem'), 'utf8'))).toBe(seen.at(-1));
    client.close();
  });
});

describeWithPebble('the renewal schedule', () => {
  it('renews on its own schedule once due (acme.checkIntervalSeconds), with no call from outside', async () => {
    const pebble = await startPebble({ validitySeconds: 3600 });
    const root = await pebble.rootPem();
    const dir = mkdtempSync(join(tmpdir(), 'moat-acme-timer-'));
    let offset = 0;
    const timed = await startMoat({
      now: () => new Date(Date.now() + offset),
      config: {
        tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') },
        acme: {
          enabled: true,
          directoryUrl: pebble.directoryUrl,
          caFile: pebble.caFile,
          http01: { host: '127.0.0.1', port: pebble.httpPort },
          checkIntervalSeconds: 1,
        },
      },
    });
    try {
      const first = timed.moat.ownCertificates!.server!.state();
      offset = first.renewAt.getTime() - Date.now() + 1000;
      // Waits on the server's own timer: the renewal is observed, not triggered.
      for (let waited = 0; timed.moat.ownCertificates!.server!.state().serial === first.serial && waited < 30_000; waited += 100) {
        await new Promise((done) => setTimeout(done, 100));
      }
      const renewed = timed.moat.ownCertificates!.server!.state().serial;
      expect(renewed).not.toBe(first.serial);
      expect(await handshakeSerial(timed.port, root)).toBe(renewed);
    } finally {
      await timed.close();
      await pebble.close();
    }
  }, 120_000);
});
