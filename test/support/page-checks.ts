import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { SCREENSHOT_DIR, VIEWPORTS } from './chromium.ts';

/*
 * What every page Moat renders must pass in a real browser: usable at phone width, every control
 * labelled, every text at WCAG 2.1 AA contrast. Shared by the customer journey and the portal.
 */

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
    // Usable on a phone: nothing wider than the screen.
    if (label === 'phone') expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
  }
  await page.setViewportSize(VIEWPORTS.desktop);
}

/** Every visible form control has a label; every text the page shows keeps WCAG AA contrast. */
export async function checkAccessible(page: Page): Promise<void> {
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
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
  const violations = (await page.evaluate(async () => {
    const result = await (window as any).axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
    });
    return result.violations.map((v: any) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n: any) => n.target.join(' ')) }));
  })) as { id: string; impact: string; help: string; nodes: string[] }[];
  expect(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')).toEqual([]);
}
