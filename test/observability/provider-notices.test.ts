import { startMoat, type Harness } from '../support/moat-harness.ts';
import { onboardTpp, pushAuthorization, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * oidc-provider writes its notices to the console as plain lines; Moat's log is JSON. A running Moat
 * routes them to its logger (src/provider/internals.ts, routeProviderNotices): the one Moat causes
 * by design (the request body read before oidc-provider) at debug with the reason, any other as the
 * warning it is, and leaves the rest of the console alone. The most recent Moat still running gets
 * them; a notice its log level would drop, or one with no Moat running, goes to the console as before.
 */

let h: Harness;
let tpp: RegisteredTpp;
const consoleWarnings: unknown[][] = [];
const originalWarn = console.warn;

beforeAll(async () => {
  console.warn = (...args: unknown[]) => {
    consoleWarnings.push(args);
  };
  h = await startMoat({ config: { logging: { level: 'debug' } } });
  tpp = await onboardTpp(h);
});

let closed = false;
afterAll(async () => {
  if (!closed) {
    await tpp?.close();
    await h?.close();
  }
  console.warn = originalWarn;
});

const notices = () => h.logs.filter((line) => line.event === 'provider.notice');

it("logs oidc-provider's notice of the body Moat read first at debug, with the reason, and not on the console", async () => {
  await pushAuthorization(tpp);
  const bodyNotice = notices().find((line) => String(line.msg).includes('already parsed request body detected'));
  expect(bodyNotice).toMatchObject({ level: 20, reason: expect.stringContaining('Moat reads and checks every request body') });
  expect(consoleWarnings.flat().join('\n')).not.toContain('oidc-provider');
});

it('logs any other notice as a warning (plain or coloured as on a terminal), and passes other console output through', () => {
  console.warn('oidc-provider WARNING: a notice Moat does not expect');
  console.warn('\x1b[31;1moidc-provider WARNING: another, coloured\x1b[0m');
  console.warn('not from oidc-provider');
  expect(
    notices()
      .filter((line) => line.level === 40)
      .map((line) => line.msg),
  ).toEqual(['oidc-provider: a notice Moat does not expect', 'oidc-provider: another, coloured']);
  expect(consoleWarnings).toEqual([['not from oidc-provider']]);
});

it('hands a notice to the console where the running Moat logs no warnings, and to the earlier Moat again once that one closes', async () => {
  const quiet = await startMoat({ config: { logging: { level: 'error' } } });
  consoleWarnings.length = 0;
  try {
    console.warn('oidc-provider WARNING: while the quiet Moat runs');
    expect(consoleWarnings).toEqual([['oidc-provider WARNING: while the quiet Moat runs']]);
  } finally {
    await quiet.close();
  }
  console.warn('oidc-provider WARNING: after the quiet Moat closed');
  expect(notices().at(-1)).toMatchObject({ level: 40, msg: 'oidc-provider: after the quiet Moat closed' });
  expect(consoleWarnings).toHaveLength(1);
});

it('hands notices to the console once no Moat runs', async () => {
  await tpp.close();
  await h.close();
  closed = true;
  consoleWarnings.length = 0;
  console.warn('oidc-provider WARNING: with no Moat running');
  expect(consoleWarnings).toEqual([['oidc-provider WARNING: with no Moat running']]);
});
