import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { HEALTH_PATHS } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { ForwardedCertFormat, MoatConfig } from '../../src/config/schema.ts';
import { SECRETS_FILE } from '../../src/keys/secrets.ts';
import { SIGNING_KEYS_FILE } from '../../src/keys/signing-keys.ts';
import { FORWARDED_CERT_HEADERS } from '../../src/pki/forwarded-certificate.ts';
import { MOAT_ENV, MOAT_NODE_FLAGS } from '../../bench/servers/moat-process.ts';

/*
 * The deployment manifests against the code they deploy: probes on the routes Moat serves, a
 * configuration Moat's own loader accepts, the client-certificate header Moat's trusted-proxy
 * setting reads, and a compose service that can scale. The chart is read as shipped (values.yaml,
 * files/nginx.conf and the static parts of the templates); where a `helm` binary is installed
 * (or HELM_BIN names one) it is also rendered and the rendered objects are checked.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const CHART = join(ROOT, 'deploy', 'helm', 'moat');
const read = (...path: string[]) => readFileSync(join(...path), 'utf8');
const template = (name: string) => read(CHART, 'templates', name);

type Values = {
  replicaCount: number;
  existingSecret: string;
  config: Record<string, unknown> & { trustedProxies: { format: ForwardedCertFormat; addresses: string[] } };
  podSecurityContext: Record<string, unknown>;
  securityContext: Record<string, unknown>;
  podDisruptionBudget: { enabled: boolean; maxUnavailable: number };
  autoscaling: { enabled: boolean; minReplicas: number };
  gateway: { podSecurityContext: Record<string, unknown>; securityContext: Record<string, unknown> };
};
const values = parse(read(CHART, 'values.yaml')) as Values;

/** What the Deployment's environment holds in a real install (URLs from the operator's Secret). */
const SAMPLE_ENV: Record<string, string> = {
  MOAT_ISSUER: 'https://as.bank.example',
  MOAT_STORAGE__POSTGRES_URL: 'postgres://moat:secret@postgres.bank.example:5432/moat',
  MOAT_STORAGE__REDIS_URL: 'rediss://:secret@redis.bank.example:6380',
  // What the moat.adminHosts helper renders for a release "moat" in namespace "banking".
  MOAT_ADMIN__ALLOWED_HOSTS: '["moat-admin","moat-admin.banking","moat-admin.banking.svc","moat-admin.banking.svc.cluster.local"]',
};

/** Runs Moat's own loader (YAML file + MOAT_* overrides + validation) on a configuration. */
function validate(yamlText: string, env: Record<string, string>): MoatConfig {
  const dir = mkdtempSync(join(tmpdir(), 'moat-deploy-'));
  writeFileSync(join(dir, 'moat.yaml'), yamlText);
  return loadConfig({ file: join(dir, 'moat.yaml'), env, cwd: dir }).config;
}

/** The lines under `key:` that are indented deeper than it: one block of a template. */
function block(text: string, key: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trimStart().startsWith(`${key}:`));
  if (start < 0) throw new Error(`no ${key} in the template`);
  const indent = (l: string) => l.length - l.trimStart().length;
  const own = indent(lines[start]!);
  const body: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() !== '' && indent(line) <= own) break;
    body.push(line);
  }
  return body.join('\n');
}

const field = (text: string, name: string) => new RegExp(`^\\s*-?\\s*${name}: (.+)$`, 'm').exec(text)?.[1]?.trim();

/**
 * The image's /app as the Dockerfile's last stage lays it out: each `COPY` from the build context
 * copied, the dependencies stage's node_modules linked to the checkout's.
 */
function imageFiles(dockerfile: string): string {
  const app = mkdtempSync(join(tmpdir(), 'moat-image-'));
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  for (const [, args] of finalStage.matchAll(/^COPY (.+)$/gm)) {
    const words = args!.trim().split(/\s+/);
    const destination = words.pop()!;
    if (words[0]?.startsWith('--from=')) {
      if (destination !== './node_modules') throw new Error(`unexpected COPY ${args}`);
      symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'));
      continue;
    }
    for (const source of words) {
      const target = destination.endsWith('/') ? join(app, destination, basename(source)) : join(app, destination);
      cpSync(join(ROOT, source), target, { recursive: true });
    }
  }
  return app;
}

/** Directives of an nginx configuration as `name args` strings, comments dropped. */
function directives(conf: string): string[] {
  return conf
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l.endsWith(';'))
    .map((l) => l.slice(0, -1).replace(/\s+/g, ' '));
}

/** The directives that make the gateway an mTLS terminator forwarding the certificate. */
const gatewayDirective = (d: string) => /^(ssl_(protocols|ciphers|prefer_server_ciphers|verify_client)|proxy_set_header|http2) /.test(d);

describe('the Helm chart (deploy/helm/moat)', () => {
  const deployment = template('deployment.yaml');
  const env = [...deployment.matchAll(/- name: (MOAT_[A-Z0-9_]+)/g)].map((m) => m[1]!);
  const mounts = [...deployment.matchAll(/mountPath: (\S+)/g)].map((m) => m[1]!);

  it("ships a Moat configuration that Moat's own loader accepts with the environment the Deployment adds", () => {
    expect(env).toContain('MOAT_CONFIG');
    const overrides = env.filter((name) => name !== 'MOAT_CONFIG');
    for (const name of overrides) expect(Object.keys(SAMPLE_ENV)).toContain(name);
    const config = validate(stringify(values.config), Object.fromEntries(overrides.map((n) => [n, SAMPLE_ENV[n]!])));
    expect(config.mode).toBe('production');
    expect(config.issuer).toBe(SAMPLE_ENV.MOAT_ISSUER);
    expect(config.storage.postgresUrl).toBe(SAMPLE_ENV.MOAT_STORAGE__POSTGRES_URL);
    expect(config.storage.redisUrl).toBe(SAMPLE_ENV.MOAT_STORAGE__REDIS_URL);
    // Behind the gateway: plain HTTP, the certificate from the gateway's header.
    expect(config.tls.terminate).toBe(false);
    expect(config.trustedProxies.addresses.length).toBeGreaterThan(0);
    // Reachable by Prometheus through the admin Service, so the token is required.
    expect(['127.0.0.1', '::1', 'localhost']).not.toContain(config.admin.host);
    expect(config.admin.tokenFile).toBeDefined();
    // Prometheus comes through the admin Service, whose names the admin listener must answer to (its Host check).
    expect(deployment).toMatch(/- name: MOAT_ADMIN__ALLOWED_HOSTS\s+value: \{\{ include "moat\.adminHosts" \. \| quote \}\}/);
    expect(read(CHART, 'templates', '_helpers.tpl')).toContain('$service := printf "%s-admin" (include "moat.fullname" .)');
    expect(field(template('service-admin.yaml'), 'name')).toBe('{{ include "moat.fullname" . }}-admin');
    expect(config.admin.allowedHosts).toContain('moat-admin.banking.svc');
    // MOAT_CONFIG names the ConfigMap's key where the ConfigMap is mounted.
    const configFile = /- name: MOAT_CONFIG\s+value: (\S+)/.exec(deployment)?.[1];
    expect(configFile).toBe(`${mounts.find((m) => configFile?.startsWith(`${m}/`))}/moat.yaml`);
    expect(template('configmap.yaml')).toMatch(/moat\.yaml: \|\s+\{\{- toYaml \.Values\.config \| nindent 4 \}\}/);
  });

  it('probes the health routes Moat serves, on the port Moat listens on', () => {
    const probe = (name: string) => ({
      path: field(block(deployment, name), 'path'),
      port: field(block(deployment, name), 'port'),
      scheme: field(block(deployment, name), 'scheme'),
    });
    expect(probe('livenessProbe')).toEqual({ path: HEALTH_PATHS.liveness, port: 'http', scheme: undefined });
    expect(probe('startupProbe')).toEqual({ path: HEALTH_PATHS.liveness, port: 'http', scheme: undefined });
    expect(probe('readinessProbe')).toEqual({ path: HEALTH_PATHS.readiness, port: 'http', scheme: undefined });
    // The port named http is Moat's public listener (plain HTTP: tls.terminate is false), admin the admin listener.
    expect(deployment).toMatch(/- name: http\s+containerPort: \{\{ \.Values\.config\.listen\.port \}\}/);
    expect(deployment).toMatch(/- name: admin\s+containerPort: \{\{ \.Values\.config\.admin\.port \}\}/);
    expect((values.config.tls as { terminate: boolean }).terminate).toBe(false);
  });

  it("mounts every file the configuration names, read-only, from the operator's Secret and ConfigMap", () => {
    const config = validate(stringify(values.config), SAMPLE_ENV);
    const files = [
      join(config.keys.dir, SIGNING_KEYS_FILE),
      join(config.keys.dir, SECRETS_FILE),
      config.admin.tokenFile!,
      config.sca.totp.encryptionKeyFile!,
      ...config.trustAnchors,
      ...config.directories.map((d) => d.jwksFile!),
    ];
    for (const file of files) {
      const mount = mounts.find((m) => file.startsWith(`${m}/`));
      expect({ file, mounted: mount !== undefined }).toEqual({ file, mounted: true });
      expect(block(deployment, 'volumeMounts')).toMatch(new RegExp(`mountPath: ${mount}\\s+readOnly: true`));
    }
    // The Secret's keys land under the names Moat reads.
    const volumes = block(deployment, 'volumes');
    for (const name of [SIGNING_KEYS_FILE, SECRETS_FILE])
      expect(volumes).toMatch(new RegExp(`- key: ${name.replace('.', '\\.')}\\s+path: ${name.replace('.', '\\.')}`));
    expect(volumes).toMatch(new RegExp(`- key: admin-token\\s+path: ${basename(config.admin.tokenFile!)}`));
    // The one writable place, where the (unused in production) dataDir also lies.
    expect(volumes).toMatch(/- name: tmp\s+emptyDir:/);
    expect(config.dataDir.startsWith('/tmp/')).toBe(true);
  });

  it('takes every secret from the Secret the operator provides and never generates one', () => {
    const templates = readdirSync(join(CHART, 'templates')).map(template);
    for (const text of templates) expect(text).not.toMatch(/^kind: Secret$/m);
    expect(values.existingSecret).toBe('');
    expect(read(CHART, 'templates', '_helpers.tpl')).toMatch(/required "existingSecret: [^"]+" \.Values\.existingSecret/);
    const keys = new Set([...deployment.matchAll(/key: ([a-z0-9.-]+)$/gm)].map((m) => m[1]!));
    expect([...keys].sort()).toEqual(['admin-token', 'factor-encryption.key', 'jwks.json', 'postgres-url', 'redis-url', 'secrets.json']);
    const readme = read(CHART, 'README.md');
    for (const key of keys) expect(readme).toContain(`\`${key}\``);
  });

  it('runs Moat and the gateway as non-root users on read-only root filesystems', () => {
    for (const [pod, container] of [
      [values.podSecurityContext, values.securityContext],
      [values.gateway.podSecurityContext, values.gateway.securityContext],
    ] as const) {
      expect(pod).toMatchObject({ runAsNonRoot: true });
      expect(pod.runAsUser).toBeGreaterThan(0);
      expect(container).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    }
    expect(deployment).toMatch(/securityContext:\s+\{\{- toYaml \.Values\.securityContext \| nindent 12 \}\}/);
    expect(template('gateway-deployment.yaml')).toMatch(/securityContext:\s+\{\{- toYaml \.Values\.gateway\.securityContext \| nindent 12 \}\}/);
  });

  it('scales: several replicas, a disruption budget below them, and an optional autoscaler that then owns the count', () => {
    expect(values.replicaCount).toBeGreaterThanOrEqual(2);
    expect(values.podDisruptionBudget.enabled).toBe(true);
    expect(values.podDisruptionBudget.maxUnavailable).toBeLessThan(values.replicaCount);
    expect(template('pdb.yaml')).toMatch(/kind: PodDisruptionBudget/);
    expect(values.autoscaling.enabled).toBe(false);
    expect(values.autoscaling.minReplicas).toBeGreaterThanOrEqual(2);
    expect(template('hpa.yaml')).toMatch(/^\{\{- if \.Values\.autoscaling\.enabled \}\}[\s\S]*kind: HorizontalPodAutoscaler/);
    expect(deployment).toMatch(/\{\{- if not \.Values\.autoscaling\.enabled \}\}\s+replicas: \{\{ \.Values\.replicaCount \}\}\s+\{\{- end \}\}/);
  });

  it('serves the admin listener on its own ClusterIP Service, apart from the public one', () => {
    const admin = template('service-admin.yaml');
    expect(admin).toMatch(/^\s+type: ClusterIP$/m);
    expect(field(admin, 'targetPort')).toBe('admin');
    expect(field(template('service.yaml'), 'targetPort')).toBe('http');
  });

  it("puts nginx in front, forwarding the client certificate in the header Moat's trusted-proxy setting reads, as the compose gateway does", () => {
    const nginx = read(CHART, 'files', 'nginx.conf');
    const header = FORWARDED_CERT_HEADERS[values.config.trustedProxies.format];
    const forwarded = /proxy_set_header (\S+) \$ssl_client_escaped_cert;/.exec(nginx)?.[1];
    expect(forwarded?.toLowerCase()).toBe(header);
    expect(directives(nginx)).toContain('ssl_verify_client optional_no_ca');
    // The same TLS and header directives as deploy/nginx/moat.conf.
    const compose = read(ROOT, 'deploy', 'nginx', 'moat.conf');
    expect(directives(nginx).filter(gatewayDirective).sort()).toEqual(directives(compose).filter(gatewayDirective).sort());
    // Upstream: Moat's Service, on its port.
    expect(nginx).toMatch(/upstream moat \{[^}]*server \{\{ include "moat\.fullname" \. \}\}:\{\{ \.Values\.service\.port \}\};/);
    expect(directives(nginx)).toContain('proxy_pass http://moat');
    expect(field(template('service.yaml'), 'name')).toBe('{{ include "moat.fullname" . }}');
    expect(template('gateway-configmap.yaml')).toContain('tpl (.Files.Get "files/nginx.conf") .');
    // Only the gateway's pods reach Moat's public port: trustedProxies is a pod range.
    const policy = template('networkpolicy.yaml');
    expect(policy).toMatch(
      /- from:\s+- podSelector:\s+matchLabels:\s+\{\{- include "moat\.gatewaySelectorLabels" \. \| nindent 14 \}\}\s+ports:\s+- port: http/,
    );
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(read(ROOT, 'docker-compose.yml'), { merge: true }) as {
    services: Record<string, Record<string, unknown> & { environment?: Record<string, string>; volumes?: string[]; networks?: unknown }>;
  };
  const moat = compose.services.moat!;
  const gateway = compose.services.gateway!;
  const nginx = read(ROOT, 'deploy', 'nginx', 'moat.conf');
  const production = () =>
    validate(read(ROOT, 'deploy', 'moat.production.yaml'), Object.fromEntries(Object.entries(moat.environment!).filter(([k]) => k !== 'MOAT_CONFIG')));

  it('lets the moat service scale: no container name, no published port, no fixed address', () => {
    expect(moat).not.toHaveProperty('container_name');
    expect(moat).not.toHaveProperty('ports');
    expect(JSON.stringify(moat.networks)).not.toContain('ipv4_address');
    expect(moat.environment!.MOAT_CONFIG).toBe('/app/deploy/moat.production.yaml');
  });

  it("runs deploy/moat.production.yaml, which Moat's own loader accepts with the compose environment", () => {
    const config = production();
    expect(config.mode).toBe('production');
    expect(config.tls.terminate).toBe(false);
  });

  it("has nginx reach every replica through the service name, re-resolved with Docker's DNS", () => {
    const config = production();
    const upstream = /upstream (\S+) \{([^}]*)\}/.exec(nginx);
    expect(upstream?.[2]).toMatch(new RegExp(`server moat:${config.listen.port} resolve;`));
    expect(directives(nginx)).toContain(`proxy_pass http://${upstream?.[1]}`);
    expect(directives(nginx).find((d) => d.startsWith('resolver '))).toMatch(/^resolver 127\.0\.0\.11 /);
  });

  it("trusts the certificate header from the gateway's fixed address, in the form nginx sends it", () => {
    const config = production();
    const address = (gateway.networks as { backend: { ipv4_address: string } }).backend.ipv4_address;
    expect(config.trustedProxies.addresses).toEqual([address]);
    const forwarded = /proxy_set_header (\S+) \$ssl_client_escaped_cert;/.exec(nginx)?.[1];
    expect(forwarded?.toLowerCase()).toBe(FORWARDED_CERT_HEADERS[config.trustedProxies.format]);
  });

  it("checks each replica's health on Moat's readiness route and listen port", () => {
    const config = production();
    const test = (moat.healthcheck as { test: string[] }).test.join(' ');
    expect(test).toContain(`http://127.0.0.1:${config.listen.port}${HEALTH_PATHS.readiness}`);
  });

  it('creates the signing keys once, before any replica starts, on the volume every replica shares', () => {
    const config = production();
    const keys = compose.services.keys!;
    expect(keys.command).toEqual(['keys', 'list']);
    expect(moat.depends_on).toMatchObject({ keys: { condition: 'service_completed_successfully' } });
    const keysVolume = (service: { volumes?: string[] }) => service.volumes?.find((v) => v.split(':')[1] === config.keys.dir);
    expect(keysVolume(moat)).toBeDefined();
    expect(keysVolume(keys)).toBe(keysVolume(moat));
    expect(keys.environment).toEqual(moat.environment);
  });
});

/*
 * Rendering needs a helm binary, which this project does not install: where one is found the
 * rendered objects are checked as Kubernetes would get them; elsewhere the test says it skipped.
 */
const HELM = process.env.HELM_BIN ?? 'helm';
const helmFound = spawnSync(HELM, ['version', '--short'], { encoding: 'utf8' }).status === 0;
const REQUIRED = ['issuer=https://as.bank.example', 'existingSecret=moat', 'trust.existingConfigMap=moat-trust', 'gateway.tls.existingSecret=moat-tls'];

type K8sObject = { kind: string; metadata: { name: string }; spec?: Record<string, unknown>; data?: Record<string, string> };
type Container = {
  name: string;
  env: { name: string; value?: string; valueFrom?: unknown }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  startupProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
  resources: Record<string, unknown>;
};

function render(set: string[]): { status: number | null; objects: K8sObject[]; stderr: string } {
  const out = spawnSync(HELM, ['template', 'moat', CHART, '--namespace', 'openbanking', ...set.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
  const objects =
    out.status === 0
      ? parseAllDocuments(out.stdout)
          .map((d) => d.toJS({ maxAliasCount: -1 }) as K8sObject | null)
          .filter((o): o is K8sObject => o !== null)
      : [];
  return { status: out.status, objects, stderr: out.stderr };
}

(helmFound ? describe : describe.skip)('the Helm chart rendered by helm', () => {
  it("renders Moat's Deployment with the real probes, its configuration valid, and no Secret", () => {
    const { status, objects, stderr } = render(REQUIRED);
    expect({ status, stderr }).toEqual({ status: 0, stderr: '' });
    expect(objects.map((o) => o.kind)).not.toContain('Secret');
    const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'moat')!;
    expect(deployment.spec!.replicas).toBe(values.replicaCount);
    const pod = (deployment.spec as { template: { spec: { containers: Container[] } } }).template.spec;
    const moat = pod.containers.find((c) => c.name === 'moat')!;
    const port = (name: string) => moat.ports.find((p) => p.name === name)?.containerPort;
    expect(moat.livenessProbe.httpGet).toEqual({ path: HEALTH_PATHS.liveness, port: 'http' });
    expect(moat.startupProbe.httpGet).toEqual({ path: HEALTH_PATHS.liveness, port: 'http' });
    expect(moat.readinessProbe.httpGet).toEqual({ path: HEALTH_PATHS.readiness, port: 'http' });
    expect(moat.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(moat.resources).toHaveProperty('requests');

    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'moat')!;
    const env = Object.fromEntries(moat.env.filter((e) => e.name !== 'MOAT_CONFIG').map((e) => [e.name, e.value ?? SAMPLE_ENV[e.name]!]));
    const config = validate(configMap.data!['moat.yaml']!, env);
    expect(port('http')).toBe(config.listen.port);
    expect(port('admin')).toBe(config.admin.port);

    const services = objects.filter((o) => o.kind === 'Service');
    const admin = services.find((s) => s.metadata.name === 'moat-admin')!;
    expect(admin.spec).toMatchObject({ type: 'ClusterIP', ports: [{ targetPort: 'admin' }] });
    // The admin Service's names pass the admin listener's Host check.
    expect(config.admin.allowedHosts).toEqual(
      ['', '.openbanking', '.openbanking.svc', '.openbanking.svc.cluster.local'].map((s) => `${admin.metadata.name}${s}`),
    );
    expect(objects.filter((o) => o.kind === 'PodDisruptionBudget').length).toBeGreaterThan(0);
    expect(objects.map((o) => o.kind)).not.toContain('HorizontalPodAutoscaler');

    const nginx = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'moat-gateway')!.data!['nginx.conf']!;
    expect(nginx).toMatch(/server moat:8080;/);
  });

  it('leaves the replica count to the autoscaler when autoscaling is on', () => {
    const { objects } = render([...REQUIRED, 'autoscaling.enabled=true']);
    expect(objects.map((o) => o.kind)).toContain('HorizontalPodAutoscaler');
    expect(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'moat')!.spec).not.toHaveProperty('replicas');
  });

  it("refuses to render without the operator's Secret", () => {
    const { status, stderr } = render(REQUIRED.filter((s) => !s.startsWith('existingSecret=')));
    expect(status).not.toBe(0);
    expect(stderr).toContain('existingSecret');
  });
});

if (!helmFound) {
  it.skip(`helm rendering of deploy/helm/moat: no helm binary (${HELM}) on this machine; values and templates were checked statically`, () => {});
}

describe("Moat's process memory settings (issue 20)", () => {
  const dockerfile = read(ROOT, 'Dockerfile');
  const start = (JSON.parse(read(ROOT, 'package.json')) as { scripts: Record<string, string> }).scripts.start!;

  it("starts the image's Moat with the node flags and environment the benchmark's soak measured", () => {
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
    expect(entrypoint).toEqual(['sh', 'scripts/with-node.sh', ...MOAT_NODE_FLAGS, 'bin/moat.js']);
    for (const [name, value] of Object.entries(MOAT_ENV)) expect(dockerfile).toMatch(new RegExp(`^ENV .*\\b${name}=${value}\\b`, 'm'));
  });

  it('runs its ENTRYPOINT from the files the image copies: node itself, with the flags, --liftoff-only left out on a CPU without SSE4.1', () => {
    const app = imageFiles(dockerfile);
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
    expect(cmd).toEqual(['start']);
    const run = (cpuFlags: string, args: string[]) => {
      const cpuinfo = join(app, `cpuinfo-${cpuFlags.length}`);
      writeFileSync(cpuinfo, `processor\t: 0\nflags\t\t: ${cpuFlags}\n`);
      return spawnSync(entrypoint[0]!, [...entrypoint.slice(1), ...args], {
        cwd: app,
        env: { PATH: process.env.PATH, NODE_ENV: 'production', ...MOAT_ENV, MOAT_CPUINFO: cpuinfo },
        encoding: 'utf8',
      });
    };
    const withSse41 = 'fpu sse sse2 ssse3 sse4_1 sse4_2';
    // The CLI as copied, `help` in place of CMD's `start` (no server to stop).
    const help = run(withSse41, ['help']);
    expect({ status: help.status, stderr: help.stderr }).toEqual({ status: 0, stderr: '' });
    expect(help.stdout).toMatch(/^usage: moat <command>/);
    expect(help.stdout).toMatch(/^ {2}start .*run the server/m);

    // Then bin/moat.js replaced by one that reports how it was run: node must be the process the
    // ENTRYPOINT started (PID 1 in the container, so it gets the signals), with the flags.
    writeFileSync(join(app, 'bin', 'moat.js'), 'console.log(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, argv: process.argv.slice(2) }))');
    const reported = (cpuFlags: string) => {
      const ran = run(cpuFlags, cmd);
      expect(ran.status).toBe(0);
      return { ...(JSON.parse(ran.stdout) as { pid: number; execArgv: string[]; argv: string[] }), spawnedPid: ran.pid, stderr: ran.stderr };
    };
    const fast = reported(withSse41);
    expect(fast).toEqual({ pid: fast.spawnedPid, execArgv: [...MOAT_NODE_FLAGS], argv: ['start'], spawnedPid: fast.spawnedPid, stderr: '' });
    if (process.arch === 'x64') {
      const old = reported('fpu sse sse2 ssse3');
      expect(old.pid).toBe(old.spawnedPid);
      expect(old.execArgv).toEqual(MOAT_NODE_FLAGS.filter((flag) => flag !== '--liftoff-only'));
      expect(old.stderr).toContain('this CPU has no SSE4.1; running without --liftoff-only');
    }
  });

  it('starts `npm start` with the same flags and environment', () => {
    const env = Object.entries(MOAT_ENV).map(([name, value]) => `${name}=${value}`);
    expect(start).toBe([...env, 'sh scripts/with-node.sh', ...MOAT_NODE_FLAGS, 'src/main.ts'].join(' '));
  });

  it('runs the CLI as `npm run moat` with them too (its `moat start` is the server, as in the image)', () => {
    const moat = (JSON.parse(read(ROOT, 'package.json')) as { scripts: Record<string, string> }).scripts.moat!;
    const env = Object.entries(MOAT_ENV).map(([name, value]) => `${name}=${value}`);
    expect(moat).toBe([...env, 'sh scripts/with-node.sh', ...MOAT_NODE_FLAGS, 'src/cli/main.ts'].join(' '));
  });

  it("runs `npm test`'s Jest (and so its workers, which inherit its flags) with Moat's WebAssembly compiler setting", () => {
    const test = (JSON.parse(read(ROOT, 'package.json')) as { scripts: Record<string, string> }).scripts.test!;
    expect(MOAT_NODE_FLAGS).toContain('--liftoff-only');
    expect(test.split(' ')).toContain('--liftoff-only');
  });
});
