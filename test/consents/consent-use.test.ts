import { CONSENT_USE_INTERVAL_SECONDS, createConsentUse } from '../../src/consents/consent-use.ts';

/*
 * The last use of a consent is recorded cheaply (issue 18 point 6): at most once a minute per
 * grant, without the request waiting for the write, and a failed write is tried again at the next use.
 */

function recorder(fail = false) {
  let now = new Date('2031-03-01T12:00:00Z');
  const written: [string, string][] = [];
  const errors: unknown[] = [];
  let pending: Promise<void> = Promise.resolve();
  const use = createConsentUse({
    record: (grantId, at) => {
      pending = fail ? Promise.reject(new Error('storage down')) : Promise.resolve();
      if (!fail) written.push([grantId, at.toISOString()]);
      return pending;
    },
    now: () => now,
    onError: (err) => errors.push(err),
  });
  return {
    use,
    written,
    errors,
    advance: (seconds: number) => {
      now = new Date(now.getTime() + seconds * 1000);
    },
    settled: () => pending.catch(() => undefined).then(() => new Promise((resolve) => setImmediate(resolve))),
  };
}

describe('recording the last use of a consent', () => {
  it('writes the first use of a grant, then at most once a minute', () => {
    const r = recorder();
    r.use.used('grant-1');
    r.advance(1);
    r.use.used('grant-1');
    r.advance(CONSENT_USE_INTERVAL_SECONDS - 2);
    r.use.used('grant-1');
    expect(r.written).toEqual([['grant-1', '2031-03-01T12:00:00.000Z']]);
    r.advance(1);
    r.use.used('grant-1');
    expect(r.written).toEqual([
      ['grant-1', '2031-03-01T12:00:00.000Z'],
      ['grant-1', '2031-03-01T12:01:00.000Z'],
    ]);
  });

  it('counts each grant on its own', () => {
    const r = recorder();
    r.use.used('grant-1');
    r.use.used('grant-2');
    r.use.used('grant-1');
    expect(r.written.map(([grant]) => grant)).toEqual(['grant-1', 'grant-2']);
  });

  it('returns before the write finishes, and a failed write is reported and tried again at the next use', async () => {
    const r = recorder(true);
    expect(r.use.used('grant-1')).toBeUndefined();
    await r.settled();
    expect(r.errors).toEqual([new Error('storage down')]);
    r.use.used('grant-1');
    await r.settled();
    expect(r.errors).toHaveLength(2);
  });
});
