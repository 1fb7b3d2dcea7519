import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Request } from 'playwright-core';

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

/**
 * The TPP's side of a browser journey: `callback` resolves with the first URL the browser was sent
 * to on the redirect URI's origin, read from the request as it leaves; the browser then goes on to
 * that address, where no test serves anything. No route stands in for the TPP, because any route
 * makes Playwright intercept every request of the context and turns its HTTP cache off: four browser
 * suites on one worker took 103 s and 134 CPU-s with one, 79 s and 121 CPU-s without (2026-12-07).
 */
export function catchTppRedirect(context: BrowserContext, redirectUri: string): { callback: Promise<URL> } {
  const origin = new URL(redirectUri).origin;
  const callback = new Promise<URL>((resolve) => {
    const sentBack = (request: Request) => {
      const url = new URL(request.url());
      if (url.origin !== origin) return;
      context.off('request', sentBack);
      resolve(url);
    };
    context.on('request', sentBack);
  });
  return { callback };
}
