import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createLogger } from '../../src/observability/logger.ts';
import { migratedSqlBackends } from '../support/databases.ts';
import { secretsInLogLine } from '../support/log-secrets.ts';

/*
 * An error object in a log line goes through an allowlist like every other field: a database
 * driver's error carries the statement, its parameters and the row it choked on (PGlite's
 * `query`/`params`, pg's and PGlite's `detail`/`where`), which for a failed insert of a refresh
 * token are the token and its payload.
 */

function capture(): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  return { logger: createLogger('info', sink), lines };
}

describe.each(migratedSqlBackends())('a refresh token insert that fails on %s', (_name, open) => {
  let backend: Awaited<ReturnType<typeof open>>;
  beforeAll(async () => {
    backend = await open();
  });
  afterAll(async () => {
    await backend?.drop();
  });

  /** The error of a refresh token inserted twice: a unique violation (SQLSTATE 23505) naming the key. */
  async function failedInsert(token: string): Promise<Error> {
    const payload = JSON.stringify({ jti: token, kind: 'RefreshToken', accountId: 'cust-alice', grantId: 'grant-1', scope: 'openid accounts' });
    const insert = () =>
      backend.sql.query('INSERT INTO oidc_model (model, id, payload, grant_id) VALUES ($1, $2, $3, $4)', ['RefreshToken', token, payload, 'grant-1']);
    await insert();
    const err = await insert().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    if (err === undefined) throw new Error('the second insert was expected to fail');
    return err;
  }

  it('is logged with its class, message and constraint, never the token, its payload or the statement', async () => {
    const token = randomBytes(32).toString('base64url');
    const err = await failedInsert(token);
    const { logger, lines } = capture();
    logger.error({ err, event: 'server_error' }, 'unexpected error');
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).not.toContain(token);
    expect(line).not.toContain('INSERT INTO');
    expect(secretsInLogLine(line)).toEqual([]);
    const logged = JSON.parse(line) as { err: Record<string, unknown> };
    expect(logged.err).toEqual(expect.objectContaining({ type: err.constructor.name, message: err.message, constraint: 'oidc_model_pkey' }));
    // What was left out is named, as for every other field.
    expect(logged.err.droppedFields).toEqual(expect.arrayContaining(['detail', 'where']));
  });

  it("drops the same fields from an error's cause", async () => {
    const token = randomBytes(32).toString('base64url');
    const err = new Error('could not store the refresh token', { cause: await failedInsert(token) });
    const { logger, lines } = capture();
    logger.warn({ err, event: 'storage.failed' }, 'storage failed');
    expect(lines[0]).not.toContain(token);
    expect(secretsInLogLine(lines[0]!)).toEqual([]);
    expect(JSON.parse(lines[0]!).err.cause).toEqual(
      expect.objectContaining({ constraint: 'oidc_model_pkey', droppedFields: expect.arrayContaining(['detail']) }),
    );
  });

  it('would be caught by the log scan at the end of the run, had the error been logged whole', async () => {
    const token = randomBytes(32).toString('base64url');
    const whole = JSON.stringify({ level: 50, event: 'server_error', err: pino.stdSerializers.err(await failedInsert(token)) });
    expect(whole).toContain(token);
    expect(secretsInLogLine(whole)).toEqual([expect.stringMatching(/^an error's statement, parameters or row data \(err\.(detail|where|query|params)/)]);
  });
});
