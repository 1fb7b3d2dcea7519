import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

/*
 * A real browser for the end-to-end tests: Debian's Chromium driven by playwright-core. Where it is
 * not installed the tests say so and skip — except in CI (TEST_MOAT_REQUIRE_SERVICES=1), where a
 * missing browser is a failure, never a silent skip.
 */

export const CHROMIUM_PATH = process.env.TEST_MOAT_CHROMIUM ?? '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.TEST_MOAT_REQUIRE_SERVICES === '1') {
    throw new Error(`Chromium is required for the browser tests in CI and is not at ${CHROMIUM_PATH} (apt-get install chromium)`);
  }
  process.stderr.write(`moat tests: no Chromium at ${CHROMIUM_PATH}; the browser tests are skipped (apt-get install chromium)\n`);
  return false;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** Where screenshots go: look at them after a run (they are not committed). */
export const SCREENSHOT_DIR = process.env.TEST_MOAT_SCREENSHOTS ?? 'test-output/screenshots';

export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

/**
 * One Chromium for a test file, launched before its tests (with the screenshot directory made) and
 * closed after them; nothing is launched where Chromium is not installed outside CI.
 * Returns the running browser.
 */
export function useChromium(): () => Browser {
  let browser: Browser | undefined;
  beforeAll(async () => {
    if (!chromiumAvailable()) return;
    browser = await launchChromium();
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => {
    if (browser === undefined) throw new Error('Chromium is not running (not installed, or asked for outside a test)');
    return browser;
  };
}

/** A tab a test has taken from `useTabs`: give it back with `close()`, in a `finally`. */
export interface Tab {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
  /** Closes the tab's context instead: for a test that changed what cannot be cleared (page.clock). */
  discard(): Promise<void>;
}

export type TabOptions = Pick<BrowserContextOptions, 'viewport' | 'javaScriptEnabled' | 'locale'>;

/**
 * Browser tabs for a file's tests, one test at a time: a tab given back is cleared (cookies, routes,
 * the page on about:blank, every hook a helper put on it) and handed to the next test that asks for the
 * same options, as a fresh one would be. Why not a fresh context each time: each costs Chromium a
 * new renderer process, and on this kind of 2-core VM 20 journeys (a page, a form, the redirect to
 * the TPP) took 40 CPU-s with a context each and 12 in one reused tab (2026-12-07, a probe counting
 * every Chromium process's CPU). A tab that cannot be cleared is closed, and the next test gets a
 * new one.
 *
 * Declare it (and `useChromium`) before the file's Moat harness: Jest runs afterAll hooks in the
 * order they were declared, and a Moat closed while a kept tab still holds a connection to it waited
 * up to a minute for that connection (seen in CI: passkeys.test.ts's harness took 58.8 s to close).
 */
export function useTabs(chromium: () => Browser): (options?: TabOptions) => Promise<Tab> {
  const idle = new Map<string, { context: BrowserContext; page: Page }[]>();
  const every = new Set<BrowserContext>();
  afterAll(async () => {
    for (const context of every) await context.close().catch(() => {});
  });
  return async (options = {}) => {
    const key = JSON.stringify([options.viewport ?? VIEWPORTS.desktop, options.javaScriptEnabled ?? true, options.locale ?? null]);
    let tab = idle.get(key)?.pop();
    if (tab === undefined) {
      const context = await chromium().newContext({ viewport: VIEWPORTS.desktop, ...options, ignoreHTTPSErrors: true });
      every.add(context);
      tab = { context, page: await context.newPage() };
    }
    const { context, page } = tab;
    let given = false;
    return {
      context,
      page,
      async discard() {
        if (given) return;
        given = true;
        every.delete(context);
        await context.close().catch(() => {});
      },
      async close() {
        if (given) return;
        given = true;
        try {
          await clearHooks(page);
          await page.unrouteAll({ behavior: 'ignoreErrors' });
          await context.unrouteAll({ behavior: 'ignoreErrors' });
          await page.goto('about:blank');
          await context.clearCookies();
          await page.setViewportSize(options.viewport ?? VIEWPORTS.desktop);
          // Where the last test left the pointer would be the next page's :hover.
          await page.mouse.move(0, 0);
          if (context.pages().length !== 1) throw new Error('the test left a second page open');
        } catch (err) {
          // Said, so that a tab that can never be cleared (one context per test again) shows.
          process.stderr.write(`moat tests: a browser tab could not be cleared (${(err as Error).message}); the next test gets a new one\n`);
          every.delete(context);
          await context.close().catch(() => {});
          return;
        }
        idle.set(key, [...(idle.get(key) ?? []), { context, page }]);
      },
    };
  };
}

/** What helpers hooked on a page (CDP sessions, virtual authenticators), undone when its tab is given back. */
const hooks = new WeakMap<Page, Set<() => Promise<void>>>();

/** Has `undo` run when the page's tab is given back (a page of a context of its own just closes). */
export function undoOnReturn(page: Page, undo: () => Promise<void>): void {
  const set = hooks.get(page) ?? new Set();
  hooks.set(page, set);
  set.add(undo);
}

async function clearHooks(page: Page): Promise<void> {
  const set = hooks.get(page);
  if (set === undefined) return;
  hooks.delete(page);
  for (const undo of set) await undo();
}

/**
 * The TPP's side of a browser journey: `callback` resolves with the first URL the browser was sent
 * to on the redirect URI's origin, read from the request as it leaves. The browser does not go on to
 * that address (no test serves anything there): the request is cancelled through the DevTools
 * protocol, for that origin alone, so the page stays where it was. Not a Playwright route: any route
 * makes Playwright intercept every request of the context and turns its HTTP cache off (four browser
 * suites on one worker took 103 s and 134 CPU-s with one, 79 s and 121 CPU-s without, 2026-12-07).
 * Not left to fail either: Chromium puts the error page of a refused connection in a renderer process
 * of its own, about 0.4 CPU-s a journey.
 */
export async function catchTppRedirect(page: Page, redirectUri: string): Promise<{ callback: Promise<URL> }> {
  const origin = new URL(redirectUri).origin;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${origin}/*` }] });
  undoOnReturn(page, async () => {
    await cdp.detach().catch(() => {});
  });
  // Resolved once the request is cancelled, from the same session that cancels it: a tab given back
  // right after detaches the session, and a request still paused then would go on.
  const callback = new Promise<URL>((resolve) => {
    cdp.on('Fetch.requestPaused', ({ requestId, request }) => {
      cdp.send('Fetch.failRequest', { requestId, errorReason: 'Aborted' }).then(
        () => resolve(new URL(request.url)),
        () => resolve(new URL(request.url)),
      );
    });
  });
  return { callback };
}
