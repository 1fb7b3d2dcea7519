import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { createServer, type Server } from 'node:net';
import { escapeControlCharacters } from '../../src/cli/io.ts';
import { COMMANDS } from '../../src/cli/main.ts';
import { runMoat } from '../support/cli.ts';
import { copyMigratedEmbeddedDatabase } from '../support/databases.ts';
import { freePort } from '../support/ports.ts';

const moat = runMoat;

describe('moat config validate', () => {
  it('accepts a valid configuration and names its source', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    writeFileSync(join(cwd, 'moat.yaml'), 'issuer: https://as.bank.example\n');
    const r = await moat(['config', 'validate'], { cwd });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^configuration valid \(.*\): mode sandbox, issuer https:\/\/as\.bank\.example, hash [0-9a-f]{64}\n$/);
    expect(r.out).toContain(`(${join(cwd, 'moat.yaml')})`);
  });

  it('exits 1 naming each bad key', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    writeFileSync(join(cwd, 'prod.yaml'), 'mode: production\nlisten: { port: 99999 }\n');
    const r = await moat(['config', 'validate', '--config', 'prod.yaml'], { cwd });
    expect(r.code).toBe(1);
    expect(r.err).toContain('listen.port: ');
  });

  it('exits 1 naming a bank text in a language no customer page is in (issue 18 point 8)', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    writeFileSync(join(cwd, 'moat.yaml'), 'branding: { paymentCharges: { default: No charge, fr: Sans frais, pt-BR: Sem tarifa } }\n');
    const r = await moat(['config', 'validate'], { cwd });
    expect(r.code).toBe(1);
    expect(r.err).toContain('  - branding.paymentCharges.fr: no customer page is in this language (views/locales has en, pt-BR)');
    expect(r.err).not.toContain('pt-BR: no customer page');
    expect(r.out).toBe('');
  });
});

describe('moat keys', () => {
  it('lists the generated keys and rotates them, keeping the old ones published', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    writeFileSync(join(cwd, 'moat.yaml'), 'keys: { algorithms: [ES256] }\ntokens: { idTokenTtl: 600 }\n');
    const list = await moat(['keys', 'list'], { cwd });
    expect(list.code).toBe(0);
    const [kid] = list.out.split(' ');
    expect(list.out).toMatch(/ES256\s+active/);
    const rotate = await moat(['keys', 'rotate'], { cwd });
    expect(rotate.code).toBe(0);
    expect(rotate.out).toContain(`retired: ${kid} (ES256), published for verification for 660 s more`);
    const after = await moat(['keys', 'list'], { cwd });
    expect(after.out.trim().split('\n')).toHaveLength(2);
    expect(after.out).toMatch(new RegExp(`${kid}\\s+ES256\\s+retired`));
    expect(statSync(join(cwd, 'keys', 'jwks.json')).mode & 0o777).toBe(0o600);
  });

  it('explains its usage when the subcommand is unknown', async () => {
    const r = await moat(['keys', 'spin']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^usage: moat keys list/);
  });
});

describe('moat sandbox tpp', () => {
  it('writes the credentials without a running server', async () => {
    const r = await moat(['sandbox', 'tpp', '--name', 'Acme Fintech', '--out', 'acme', '--roles', 'AISP', '--json']);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out) as Record<string, unknown>;
    const dir = join(r.cwd, 'acme');
    const cert = new X509Certificate(readFileSync(join(dir, 'transport.pem')));
    expect(cert.verify(new X509Certificate(readFileSync(join(r.cwd, 'data', 'sandbox', 'tpp-ca.pem'))).publicKey)).toBe(true);
    expect(cert.verify(new X509Certificate(readFileSync(join(dir, 'server-ca.pem'))).publicKey)).toBe(false);
    // eIDAS style: the PSD2 organizationIdentifier next to the UK OB OU.
    expect(summary.tls_client_auth_subject_dn).toBe(
      `CN=${String(summary.software_id)}, organizationIdentifier=PSDGB-SBX-${String(summary.org_id)}, OU=${String(summary.org_id)}, O=Acme Fintech, C=GB`,
    );
    expect(statSync(join(dir, 'transport.key')).mode & 0o777).toBe(0o600);
    const directory = JSON.parse(readFileSync(join(r.cwd, 'data', 'sandbox', 'directory.public.jwks.json'), 'utf8'));
    const { payload } = await jwtVerify(readFileSync(join(dir, 'ssa.jwt'), 'utf8').trim(), createLocalJWKSet(directory), { issuer: 'moat-sandbox-directory' });
    expect(payload).toEqual(expect.objectContaining({ software_roles: ['AISP'], org_status: 'Active', software_client_name: 'Acme Fintech' }));
    const registration = JSON.parse(readFileSync(join(dir, 'registration.json'), 'utf8'));
    expect(registration.scope).toBe('openid accounts');
  });

  it('exits 2 without --name, and refuses an http redirect URI', async () => {
    expect((await moat(['sandbox', 'tpp', '--out', 'x'])).code).toBe(2);
    const r = await moat(['sandbox', 'tpp', '--name', 'Example', '--out', 'x', '--redirect-uri', 'http://tpp.example/cb']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('must be an https URL');
  });

  it('refuses a name with control characters, as the portal does, before writing anything', async () => {
    for (const name of ['Evil\u001b]0;pwned\u0007 Fintech', 'Evil\u001b[31m Fintech', 'Evil\u009b2J Fintech', 'Two\nLines', 'Del\u007f Fintech']) {
      const r = await moat(['sandbox', 'tpp', '--name', name, '--out', 'evil']);
      expect({ name, code: r.code }).toEqual({ name, code: 2 });
      expect(r.err).toBe("moat: --name: Give a name of 2 to 60 letters, digits, spaces or . , & ' ( ) -\n");
      expect(existsSync(join(r.cwd, 'evil'))).toBe(false);
    }
  });

  it("issues from the server's sandbox CA with --data-dir, and says so when it has to make a new one", async () => {
    const server = await moat(['sandbox', 'tpp', '--name', 'First Fintech', '--out', 'first']);
    expect(server.err).toMatch(/^moat: no sandbox under .*data yet: creating its CA and directory key there\. .*pass its data directory with --data-dir DIR/);
    const dataDir = join(server.cwd, 'data');
    const elsewhere = await moat(['sandbox', 'tpp', '--name', 'Acme Fintech', '--out', 'acme', '--data-dir', dataDir]);
    expect({ code: elsewhere.code, err: elsewhere.err }).toEqual({ code: 0, err: '' });
    const cert = new X509Certificate(readFileSync(join(elsewhere.cwd, 'acme', 'transport.pem')));
    expect(cert.verify(new X509Certificate(readFileSync(join(dataDir, 'sandbox', 'tpp-ca.pem'))).publicKey)).toBe(true);
    expect(readdirSync(elsewhere.cwd)).toEqual(['acme']);
  });

  it("says where it looked when a command needing the server's data directory runs elsewhere", async () => {
    const revoke = await moat(['sandbox', 'revoke', '--cert', 'transport.pem', '--key', 'transport.key']);
    expect(revoke.code).toBe(1);
    expect(revoke.err).toMatch(/^moat: no sandbox under \S+data to take the server's CA from: .*--data-dir DIR/);
    const direct = await moat(['certs', 'list', '--direct']);
    expect(direct.code).toBe(1);
    expect(direct.err).toMatch(/^moat: no embedded database under \S+data: .*--data-dir DIR/);
    expect(readdirSync(direct.cwd)).toEqual([]);
  });

  it('refuses in production mode', async () => {
    const r = await moat(['sandbox', 'tpp', '--name', 'Example', '--out', 'x'], {
      env: {
        MOAT_MODE: 'production',
        MOAT_STORAGE__POSTGRES_URL: 'postgres://x@h/db',
        MOAT_STORAGE__REDIS_URL: 'redis://h',
        MOAT_TLS__CERT_FILE: 'a',
        MOAT_TLS__KEY_FILE: 'b',
        MOAT_TRUST_ANCHORS: '["ca.pem"]',
        MOAT_ADMIN__TOKEN_FILE: 'admin.token',
        MOAT_SCA__TOTP__ENCRYPTION_KEY_FILE: 'factor.key',
      },
    });
    expect(r.code).toBe(1);
    expect(r.err).toContain('sandbox credentials exist only in sandbox mode');
  });
});

describe('moat start', () => {
  let taken: Server;
  let takenPort: number;
  // One working directory with its migrated embedded database for both cases: each start fails
  // before it serves, so the second finds the directory as a stopped Moat leaves it.
  let cwd: string;
  beforeAll(async () => {
    takenPort = await freePort();
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(takenPort, '127.0.0.1', resolve));
    cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    await copyMigratedEmbeddedDatabase(join(cwd, 'data', 'pglite'));
  });
  afterAll(async () => {
    await new Promise((resolve) => taken.close(resolve));
  });

  it.each([
    ['public', { MOAT_LISTEN__HOST: '127.0.0.1', MOAT_ADMIN__PORT: '0' }, 'listen.port', 'MOAT_LISTEN__PORT'],
    ['admin', {}, 'admin.port', 'MOAT_ADMIN__PORT'],
  ] as const)("exits 1 naming the key when the %s listener's port is taken, without a stack trace", async (_listener, env, key, variable) => {
    const port = String(takenPort);
    const ports = key === 'listen.port' ? { MOAT_LISTEN__PORT: port } : { MOAT_LISTEN__PORT: String(await freePort()), MOAT_ADMIN__PORT: port };
    const r = await moat(['start'], { cwd, env: { ...env, ...ports } });
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `moat: could not start: ${key} ${port} on 127.0.0.1 is already in use (another Moat, or another program?); set ${key} (or ${variable}) to a free port\n`,
    );
  });
});

describe('moat migrate', () => {
  it('applies the migrations to the embedded database, then finds it up to date', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    expect((await moat(['migrate'], { cwd })).out).toMatch(/^migrations applied: 20261124150000_oidc_models/);
    expect((await moat(['migrate'], { cwd })).out).toBe('migrations: up to date\n');
  });
});

describe('moat', () => {
  it('prints its usage for an unknown command and exits 2', async () => {
    const r = await moat(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown command "frobnicate"');
  });
});

describe('moat <command> --help', () => {
  // Every command and subcommand; the first list must name every command `moat` has.
  const SUBCOMMANDS: Record<string, string[]> = {
    start: [],
    migrate: [],
    config: ['validate'],
    keys: ['list', 'rotate'],
    sandbox: ['tpp', 'revoke'],
    certs: ['list', 'show', 'revoke', 'expiring'],
    tpps: ['list'],
    audit: ['verify', 'query'],
    threats: ['flags', 'restrictions', 'quarantine', 'step-up', 'release'],
    diagnose: [],
  };

  it('knows every command there is', () => {
    expect(Object.keys(SUBCOMMANDS).sort()).toEqual(Object.keys(COMMANDS).sort());
  });

  const invocations = Object.entries(SUBCOMMANDS).flatMap(([command, subs]) => [[command], ...subs.map((sub) => [command, sub])]);
  it.each(
    invocations
      .flatMap((words) => [
        [...words, '--help'],
        [...words, '-h'],
      ])
      .map((args) => [args.join(' '), args]),
  )('moat %s prints its usage and exits 0, doing nothing else', async (_line, args) => {
    const r = await moat(args as string[]);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
    expect(r.out).toMatch(/^usage/);
    // Nothing was run: no data directory, no keys, no configuration read.
    expect(readdirSync(r.cwd)).toEqual([]);
  });

  it("answers with the subcommand's own usage where it has one", async () => {
    expect((await moat(['sandbox', 'tpp', '--help'])).out).toMatch(/^usage: moat sandbox tpp --name NAME --out DIR/);
    expect((await moat(['sandbox', 'revoke', '--help'])).out).toMatch(/^usage: moat sandbox revoke --cert/);
    expect((await moat(['sandbox', 'tpp', '--name', 'Acme Fintech', '--help'])).code).toBe(0);
  });

  it("reads -h given as an option's value as that value, not as a help request: parseArgs decides (--reason -h)", async () => {
    const r = await moat(['threats', 'quarantine', '--client', 'c', '--reason', '-h']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/Option '--reason' argument is ambiguous/);
    expect((await moat(['certs', 'list', '--org', '--help'])).out).not.toMatch(/^usage/);
    // Still help where it is an option: after a value, or a flag.
    expect((await moat(['threats', 'quarantine', '--reason', 'x', '-h'])).code).toBe(0);
    expect((await moat(['keys', 'rotate', '--stage', '--help'])).out).toMatch(/^usage/);
  });
});

describe('what the CLI prints', () => {
  it.each([
    [
      'a bidi override, embedding and isolate, which reorder what follows (U+202A–U+202E, U+2066–U+2069)',
      'acme\u202egnp.exe \u202aa\u202c \u2067b\u2069',
      'acme\\u202egnp.exe \\u202aa\\u202c \\u2067b\\u2069',
    ],
    ['zero-width characters, which hide text', 'ac\u200bme\u200d\u2060\ufeff', 'ac\\u200bme\\u200d\\u2060\\ufeff'],
    ['the Arabic letter mark and the line and paragraph separators', '\u061c\u2028\u2029', '\\u061c\\u2028\\u2029'],
    ['an invisible tag beyond the BMP, as its surrogate pair', 'a\u{e0041}b', 'a\\udb40\\udc41b'],
    ['an ESC sequence and C1, as before', '\u001b[31m\u009b', '\\u001b[31m\\u009b'],
  ])('escapes %s', (_what, text, escaped) => {
    expect(escapeControlCharacters(text)).toBe(escaped);
    // The escapes are JSON's: a JSON string of the text still reads back as the text.
    expect(JSON.parse(escapeControlCharacters(JSON.stringify(text)))).toBe(text);
  });

  it('leaves letters of every script, emoji and the line feed as they are', () => {
    const text = 'Café Zürich — بنك 銀行 🏦\n';
    expect(escapeControlCharacters(text)).toBe(text);
  });
});
