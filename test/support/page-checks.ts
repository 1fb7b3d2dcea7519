import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { SCREENSHOT_DIR, VIEWPORTS } from './chromium.ts';

/*
 * What every page Moat renders must pass in a real browser: usable at phone width, every control
 * labelled, every text at WCAG 2.1 AA contrast. Shared by the customer journey and the portal.
 */

/*
 * CI runs the browser suites twice (.ci/run): on Postgres and Redis, then on the embedded default.
 * The checks here judge a page's markup, styles and layout, which both passes render from the same
 * templates, stylesheets and sandbox data; storage, the one thing the second pass changes, is not
 * what they look at. So the second pass sets TEST_MOAT_PAGE_CHECKS=first-pass and leaves them
 * (axe, contrast, labels, outline, targets and focus ring, phone width, screenshots) to the first,
 * where every page is checked; every assertion a test makes about what a page says and does still
 * runs in both (issue 15 §6: the passes' independent parts not repeated).
 */
const CHECKED_IN_FIRST_PASS = process.env.TEST_MOAT_PAGE_CHECKS === 'first-pass';

// The page functions below run in the browser; Moat's TypeScript has no DOM library, so the few
// browser globals they use are declared here.
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare function getComputedStyle(element: any): any;

/**
 * Screenshots at desktop and phone widths (look at them after a run); no horizontal scrolling on a
 * phone. A full-page capture cannot show a sticky bar where a customer sees it, so sticky elements
 * are laid out in the flow for it; on a phone a second capture, `-phone-fold`, is the first screen
 * as the customer sees it, sticky bar and all.
 */
export async function shoot(page: Page, name: string): Promise<void> {
  if (CHECKED_IN_FIRST_PASS) return;
  for (const [label, size] of Object.entries(VIEWPORTS)) {
    await page.setViewportSize(size);
    await page.evaluate(() => window.scrollTo(0, 0));
    if (label === 'phone') await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-phone-fold.png`) });
    // (Through the CSSOM, which the page's CSP allows and which works with JavaScript off.)
    await page.evaluate(() => {
      for (const el of document.querySelectorAll('*')) if (getComputedStyle(el).position === 'sticky') el.style.position = 'static';
    });
    await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-${label}.png`), fullPage: true });
    await page.evaluate(() => {
      for (const el of document.querySelectorAll('*')) if (el.style.position === 'static') el.style.position = '';
    });
    // Usable on a phone: nothing wider than the screen, and what scrolls inside it reachable by keyboard.
    if (label === 'phone') {
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      await checkScrollablesReachable(page);
    }
  }
  await page.setViewportSize(VIEWPORTS.desktop);
}

/**
 * The page's outline (issue 18 point 7; WCAG 1.3.1, 2.4.1, 2.4.6): one main landmark, one h1,
 * heading levels that start at 1 and never skip one going down, at most one banner and one
 * contentinfo, and landmarks of one kind told apart by their names. Headings hidden from everyone
 * (display none, a closed disclosure) are not in the outline; visually hidden ones are.
 */
export async function checkStructure(page: Page): Promise<void> {
  if (CHECKED_IN_FIRST_PASS) return;
  const problems = await page.evaluate(() => {
    const found: string[] = [];
    const shown = (el: any) => el.checkVisibility({ visibilityProperty: true });
    const nameOf = (el: any): string =>
      (
        el.getAttribute('aria-label') ??
        (el.getAttribute('aria-labelledby') ?? '')
          .split(/\s+/)
          .map((id: string) => document.getElementById(id)?.textContent ?? '')
          .join(' ')
      ).trim();
    const mains = [...document.querySelectorAll('main, [role=main]')].filter(shown);
    if (mains.length !== 1) found.push(`${mains.length} main landmarks`);
    const headings = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6, [role=heading]')].filter(shown).map((h: any) => ({
      level: h.getAttribute('role') === 'heading' ? Number(h.getAttribute('aria-level') ?? 2) : Number(h.tagName.slice(1)),
      text: (h.textContent ?? '').trim().slice(0, 50),
    }));
    const h1s = headings.filter((h) => h.level === 1);
    if (h1s.length !== 1) found.push(`${h1s.length} h1 headings${h1s.length > 1 ? `: ${h1s.map((h) => h.text).join(' | ')}` : ''}`);
    if (headings[0] !== undefined && headings[0].level !== 1) found.push(`the first heading is h${headings[0].level}: ${headings[0].text}`);
    headings.forEach((h, i) => {
      const before = headings[i - 1];
      if (before !== undefined && h.level > before.level + 1) found.push(`h${before.level} "${before.text}" is followed by h${h.level} "${h.text}"`);
    });
    // header and footer are the banner and contentinfo only outside sectioning content and main.
    const topLevel = (el: any) => el.closest('article, aside, main, nav, section') === null;
    const banners = [...document.querySelectorAll('header, [role=banner]')].filter(
      (el: any) => shown(el) && (el.getAttribute('role') === 'banner' || topLevel(el)),
    );
    const footers = [...document.querySelectorAll('footer, [role=contentinfo]')].filter(
      (el: any) => shown(el) && (el.getAttribute('role') === 'contentinfo' || topLevel(el)),
    );
    if (banners.length > 1) found.push(`${banners.length} banner landmarks`);
    if (footers.length > 1) found.push(`${footers.length} contentinfo landmarks`);
    const kinds: Record<string, string> = { nav: 'navigation', aside: 'complementary', section: 'region', form: 'form' };
    const named = new Map<string, string[]>();
    for (const el of document.querySelectorAll('nav, aside, section, form, [role=navigation], [role=complementary], [role=region], [role=search]')) {
      if (!shown(el)) continue;
      const role = (el as any).getAttribute('role') ?? kinds[(el as any).tagName.toLowerCase()];
      const name = nameOf(el);
      // A section or form without a name is no landmark.
      if ((role === 'region' || role === 'form') && name === '') continue;
      named.set(role, [...(named.get(role) ?? []), name]);
    }
    for (const [role, names] of named) {
      if (names.length > 1 && new Set(names).size !== names.length) found.push(`${role} landmarks share a name: ${names.join(' | ')}`);
    }
    return found;
  });
  expect(problems).toEqual([]);
}

/**
 * WCAG 2.1.1: every region that scrolls at this width (a <pre>, a wide table) can be reached by
 * keyboard to scroll it — it is in the tab order (tabindex 0) — and says what it holds (an
 * accessible name), so a screen-reader user landing on it knows where they are.
 */
export async function checkScrollablesReachable(page: Page): Promise<void> {
  if (CHECKED_IN_FIRST_PASS) return;
  const unreachable = await page.evaluate(() =>
    [...document.querySelectorAll('body *')]
      .filter((el: any) => {
        const style = getComputedStyle(el);
        const scrolls =
          (/(auto|scroll)/.test(style.overflowX) && el.scrollWidth > el.clientWidth + 1) ||
          (/(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight + 1);
        return scrolls && el.checkVisibility() && el.clientWidth > 1;
      })
      .filter((el: any) => el.tabIndex !== 0 || (el.getAttribute('aria-label') ?? el.getAttribute('aria-labelledby') ?? '').trim() === '')
      .map((el: any) => el.outerHTML.slice(0, 80)),
  );
  expect(unreachable).toEqual([]);
}

/**
 * Every visible form control has a label; every text the page shows keeps WCAG AA contrast; the
 * page's outline and landmarks hold (checkStructure) and what scrolls is reachable by keyboard.
 */
export async function checkAccessible(page: Page): Promise<void> {
  if (CHECKED_IN_FIRST_PASS) return;
  await checkStructure(page);
  await checkScrollablesReachable(page);
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
      .filter((input: any) => !(input.id !== '' && document.querySelector(`label[for="${input.id}"]`)) && !input.getAttribute('aria-label'))
      .map((input: any) => input.outerHTML),
  );
  expect(unlabelled).toEqual([]);
  const lowContrast = await page.evaluate(() => {
    const parse = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
    const lum = ([r, g, b]: number[]) =>
      [r!, g!, b!]
        .map((v) => {
          const c = v / 255;
          return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        })
        .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i]!, 0);
    const background = (el: any): number[] => {
      for (let e = el; e !== null; e = e.parentElement) {
        const bg = parse(getComputedStyle(e).backgroundColor);
        if (bg.length >= 3 && (bg[3] ?? 1) > 0) return bg;
      }
      return [255, 255, 255];
    };
    return [...document.querySelectorAll('h1, h2, h3, h4, p, label, legend, dt, dd, li, button, a, span, th, td, code')]
      .filter((el: any) => el.offsetParent !== null && (el.textContent ?? '').trim() !== '')
      .map((el: any) => {
        const [a, b] = [lum(parse(getComputedStyle(el).color)), lum(background(el))].sort((x, y) => y - x);
        return { text: (el.textContent ?? '').trim().slice(0, 40), ratio: (a! + 0.05) / (b! + 0.05) };
      })
      .filter((r) => r.ratio < 4.5);
  });
  expect(lowContrast).toEqual([]);
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's WCAG 2.2 A/AA rules and best practices on the page as it stands: no serious or
 * critical violation. Injected through the DevTools protocol, so the page's CSP is left as it is.
 */
/**
 * WCAG 2.5.5 (AAA, issue 18 point 7): every control a finger presses is at least 44×44 CSS px (a
 * checkbox or radio by its label, which is its target too); WCAG 1.4.11: the focus ring keeps 3:1
 * against the card it is drawn on.
 */
export async function checkTargetsAndFocus(page: Page): Promise<void> {
  if (CHECKED_IN_FIRST_PASS) return;
  const small = await page.evaluate(() =>
    [...document.querySelectorAll('main button, main a.button, main .choice > label, main .choice > div > label, main details > summary')]
      .filter((el: any) => el.offsetParent !== null)
      .map((el: any) => ({ text: (el.textContent ?? '').trim().slice(0, 40), box: el.getBoundingClientRect() }))
      .filter(({ box }: any) => box.height < 44 || box.width < 44)
      .map(({ text, box }: any) => `${text} (${Math.round(box.width)}×${Math.round(box.height)})`),
  );
  expect(small).toEqual([]);
  const button = page.locator('main button').first();
  if ((await button.count()) === 0) return;
  await button.focus();
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Tab');
  const ratio = await page.evaluate(() => {
    const parse = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
    const lum = ([r, g, b]: number[]) =>
      [r!, g!, b!]
        .map((v) => {
          const c = v / 255;
          return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        })
        .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i]!, 0);
    const el = document.activeElement;
    const style = getComputedStyle(el);
    if (style.outlineStyle === 'none' || parseFloat(style.outlineWidth) === 0) return 0;
    let bg = [255, 255, 255];
    for (let e = el.parentElement; e !== null; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c[3] ?? 1) > 0) {
        bg = c;
        break;
      }
    }
    const [a, b] = [lum(parse(style.outlineColor)), lum(bg)].sort((x, y) => y - x);
    return (a! + 0.05) / (b! + 0.05);
  });
  expect(ratio).toBeGreaterThanOrEqual(3);
}

export async function checkAxe(page: Page): Promise<void> {
  if (CHECKED_IN_FIRST_PASS) return;
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
  const violations = (await page.evaluate(async () => {
    const result = await (window as any).axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
    });
    return result.violations.map((v: any) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n: any) => n.target.join(' ')) }));
  })) as { id: string; impact: string; help: string; nodes: string[] }[];
  expect(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')).toEqual([]);
}

/**
 * axe-core on a page shown with JavaScript off. axe runs on timers, which such a page does not run,
 * so it checks the same markup — the page as it stands, at the same address and width, with the
 * same stylesheets and images — in a page where no script of the page's own is loaded.
 */
export async function checkAxeWithoutScript(page: Page): Promise<void> {
  if (CHECKED_IN_FIRST_PASS) return;
  const url = page.url();
  const html = await page.content();
  const browser = page.context().browser();
  if (browser === null) throw new Error('checkAxeWithoutScript needs a page of a launched browser');
  const { context, page: copy } = await scriptFreeTab(browser);
  try {
    await copy.setViewportSize(page.viewportSize() ?? VIEWPORTS.desktop);
    await context.route('**/*', (route) => {
      if (route.request().url() === url) return route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html });
      if (route.request().resourceType() === 'script') return route.abort();
      return route.continue();
    });
    await copy.goto(url);
    expect(await copy.evaluate(() => document.documentElement.outerHTML.length)).toBeGreaterThan(0);
    await checkAxe(copy);
  } finally {
    await context.unrouteAll({ behavior: 'ignoreErrors' });
  }
}

/**
 * The tab checkAxeWithoutScript shows its copies in, one per browser and kept until the browser
 * closes: a context each time cost Chromium a renderer process (see useTabs in ./chromium.ts). It
 * fetches the page's stylesheets from the Moat, so, as for useTabs, the file's browser must be
 * declared before its Moat harness.
 */
const scriptFreeTabs = new WeakMap<Browser, Promise<{ context: BrowserContext; page: Page }>>();

function scriptFreeTab(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  let tab = scriptFreeTabs.get(browser);
  if (tab === undefined) {
    tab = browser.newContext({ viewport: VIEWPORTS.desktop, ignoreHTTPSErrors: true }).then(async (context) => ({ context, page: await context.newPage() }));
    scriptFreeTabs.set(browser, tab);
  }
  return tab;
}

/** Every check on a page a customer sees in `lang`, then its screenshots. */
export async function checkPageInLanguage(page: Page, name: string, lang: string): Promise<void> {
  expect(await page.evaluate(() => document.documentElement.lang)).toBe(lang);
  await checkAccessible(page);
  await checkAxe(page);
  await checkTargetsAndFocus(page);
  await shoot(page, name);
}
