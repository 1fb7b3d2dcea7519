import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.ts';
import { requestContext } from '../../src/observability/request-context.ts';

/*
 * What a log line keeps: the allowlisted fields, with credentials censored at any depth inside the
 * ones that carry objects, and an error's codes (which say what failed, and carry no data).
 */

function capture(): { logger: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const written: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      written.push(chunk.toString('utf8'));
      done();
    },
  });
  return {
    logger: createLogger('info', sink),
    lines: () =>
      written
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('a log line', () => {
  it("keeps an error's code and errno, and still drops its data", () => {
    const { logger, lines } = capture();
    const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', errno: -111, detail: 'Key (id)=(s3cret)' });
    logger.error({ err, event: 'storage.unavailable' }, 'storage unavailable');
    const logged = lines()[0]!.err as Record<string, unknown>;
    expect(logged).toMatchObject({ type: 'Error', code: 'ECONNREFUSED', errno: -111, droppedFields: ['detail'] });
    expect(JSON.stringify(logged)).not.toContain('s3cret');
  });

  it('censors credentials at any depth of an allowed field, without changing the object logged', () => {
    const { logger, lines } = capture();
    const detail = { code: 'an-authorization-code', outer: { inner: { password: 'hunter2', token: 'tkn', kept: 'visible' } }, list: [{ key: 'k' }, 'plain'] };
    const before = structuredClone(detail);
    logger.info({ event: 'x', detail }, 'x');
    expect(lines()[0]!.detail).toEqual({
      code: '[redacted]',
      outer: { inner: { password: '[redacted]', token: '[redacted]', kept: 'visible' } },
      list: [{ key: '[redacted]' }, 'plain'],
    });
    expect(detail).toEqual(before);
  });

  it("censors a class instance's own keys too, and leaves what serializes itself (a date) as it is", () => {
    const { logger, lines } = capture();
    class Credentials {
      readonly username: string;
      readonly password: string;
      constructor(username: string, password: string) {
        this.username = username;
        this.password = password;
      }
    }
    const at = new Date('2026-12-07T00:00:00Z');
    logger.info({ event: 'x', detail: { login: new Credentials('alice', 'hunter2'), at } }, 'x');
    expect(lines()[0]!.detail).toEqual({ login: { username: 'alice', password: '[redacted]' }, at: '2026-12-07T00:00:00.000Z' });
  });

  it('reads an error inside an allowed field through the error allowlist, not as a plain object', () => {
    const { logger, lines } = capture();
    const failure = Object.assign(new Error('insert failed'), { code: '23505', query: 'INSERT INTO oidc_model …', params: ['the-refresh-token'] });
    logger.warn({ event: 'x', detail: { failure } }, 'x');
    const line = lines()[0]!;
    expect(line.detail).toEqual({
      failure: expect.objectContaining({ type: 'Error', message: 'insert failed', code: '23505', droppedFields: ['query', 'params'] }),
    });
    expect(JSON.stringify(line)).not.toContain('the-refresh-token');
  });

  it('drops fields not on the allowlist, credentials among them, and names them', () => {
    const { logger, lines } = capture();
    logger.info({ event: 'x', access_token: 'at', password: 'pw', headers: { authorization: 'Bearer at' } }, 'x');
    const line = lines()[0]!;
    expect(line.droppedFields).toEqual(['access_token', 'password', 'headers']);
    expect(JSON.stringify(line)).not.toMatch(/"at"|pw|Bearer/);
  });

  it("carries the request's ids on an access-log line, whose fields are copied as they are", () => {
    const { logger, lines } = capture();
    requestContext.run({ requestId: 'req-1', interactionId: 'ia-1', clientId: 'client-1' }, () => {
      logger.info({ event: 'request', method: 'POST', path: '/token', status: 200, durationMs: 1.5, outcome: 'ok' }, 'request');
    });
    expect(lines()[0]).toMatchObject({ reqId: 'req-1', interactionId: 'ia-1', clientId: 'client-1', event: 'request', path: '/token', status: 200 });
  });
});
