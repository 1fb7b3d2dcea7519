import type { Page } from 'playwright-core';
import { chromiumAvailable, useChromium, useTabs, VIEWPORTS } from '../support/chromium.ts';
import { checkAxeWithoutScript, checkScrollablesReachable, checkStructure } from '../support/page-checks.ts';

/*
 * The page checks every customer page goes through can fail (issue 18 point 7): a page with two
 * main landmarks, two h1s, a skipped heading level, two navigations of one name, or a scrolling
 * block the keyboard cannot reach is refused, and a well-formed one passes.
 */

const describeInBrowser = chromiumAvailable() ? describe : describe.skip;
const chromium = useChromium();
const tabs = useTabs(chromium);

async function withPage(html: string, check: (page: Page) => Promise<void>): Promise<void> {
  const tab = await tabs({ viewport: VIEWPORTS.phone });
  try {
    await tab.page.setContent(`<!doctype html><html lang="en"><head><title>t</title></head><body>${html}</body></html>`);
    await check(tab.page);
  } finally {
    await tab.close();
  }
}

const WIDE = 'x'.repeat(400);

describeInBrowser('the page checks', () => {
  it('pass a page with one main, one h1, levels that do not skip, named landmarks and a reachable scrolling block', async () => {
    await withPage(
      `<header>Bank</header><nav aria-label="Account">a</nav><main><h1>Title</h1><h2>Part</h2><h3>Sub</h3><h2>Other</h2>
       <details><summary>More</summary><h5>hidden until opened</h5></details>
       <pre tabindex="0" aria-label="Example" style="overflow-x:auto">${WIDE}</pre></main><footer>f</footer>`,
      async (page) => {
        await checkStructure(page);
        await checkScrollablesReachable(page);
      },
    );
  });

  it.each([
    ['two main landmarks', '<main><h1>A</h1></main><div role="main">b</div>', '2 main landmarks'],
    ['no h1', '<main><h2>A</h2></main>', '0 h1 headings'],
    ['two h1s', '<main><h1>A</h1><h1>B</h1></main>', '2 h1 headings: A | B'],
    ['a skipped level', '<main><h1>A</h1><h3>C</h3></main>', /h1 \\?"A\\?" is followed by h3 \\?"C\\?"/],
    ['a heading before the h1', '<main><h2>Z</h2><h1>A</h1></main>', 'the first heading is h2: Z'],
    ['two banners', '<header>a</header><header>b</header><main><h1>A</h1></main>', '2 banner landmarks'],
    [
      'two navigations of one name',
      '<nav aria-label="Menu">a</nav><nav aria-label="Menu">b</nav><main><h1>A</h1></main>',
      'navigation landmarks share a name: Menu | Menu',
    ],
  ] as [string, string, string | RegExp][])('refuse %s', async (_what, html, problem) => {
    await withPage(html, async (page) => {
      await expect(checkStructure(page)).rejects.toThrow(problem);
    });
  });

  it.each([
    ['out of the tab order', `<main><h1>A</h1><pre aria-label="Example" style="overflow-x:auto">${WIDE}</pre></main>`],
    ['without a name', `<main><h1>A</h1><pre tabindex="0" style="overflow-x:auto">${WIDE}</pre></main>`],
  ])('refuse a scrolling block %s', async (_what, html) => {
    await withPage(html, async (page) => {
      await expect(checkScrollablesReachable(page)).rejects.toThrow(/pre/);
    });
  });

  it('run axe on a page shown with JavaScript off, and refuse its violations', async () => {
    const context = await chromium().newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      const body = (button: string) => `<!doctype html><html lang="en"><head><title>t</title></head><body><main><h1>A</h1>${button}</main></body></html>`;
      let html = body('<button>Continue</button>');
      await context.route('https://checks.example/**', (route) => route.fulfill({ contentType: 'text/html', body: html }));
      await page.goto('https://checks.example/page');
      await checkAxeWithoutScript(page);
      html = body('<button></button>');
      await page.goto('https://checks.example/page');
      await expect(checkAxeWithoutScript(page)).rejects.toThrow(/button-name/);
    } finally {
      await context.close();
    }
  });
});
