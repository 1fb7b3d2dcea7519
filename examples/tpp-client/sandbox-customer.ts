import { Secret, TOTP } from 'otpauth';
import type { Fetch } from './credentials.ts';

/*
 * SANDBOX ONLY — the customer's part, automated.
 *
 * In a real integration the TPP sends the customer's browser to the authorization URL; the customer
 * signs in at their bank, reviews the request and presses Allow, and the browser comes back to the
 * TPP's redirect_uri with a code. A TPP never sees the customer's password.
 *
 * In the sandbox, so the whole flow can run unattended (in CI, say), this module does what the
 * browser and the demo customer would do, through Moat's documented form contract: follow the
 * redirects with a cookie jar, fill in the sign-in form and the one-time code, then press Allow on the consent form,
 * sending each form's hidden `csrf` field back with the cookies that came with the page.
 */

/** The sandbox's demo customer; `totpSecret` is her authenticator app's published secret (RFC 6238, base32). */
export const SANDBOX_CUSTOMER = { username: 'alice', password: 'alice-sandbox', totpSecret: 'MOATSANDBOXALICETOTPSECRET234567' } as const;

/** Signs in as the sandbox customer and approves; returns the URL Moat redirected the browser to. */
export async function sandboxCustomerApproves(authorizationUrl: URL, fetch: Fetch): Promise<URL> {
  const browser = new CookieBrowser(fetch);

  // 1. Open the authorization URL: Moat redirects to its sign-in page.
  let page = await browser.open(authorizationUrl);
  if (page.redirectedAway !== undefined) return page.redirectedAway;

  // 2. Sign in.
  const login = formOf(page.html, '/login');
  login.fields.push(['username', SANDBOX_CUSTOMER.username], ['password', SANDBOX_CUSTOMER.password]);
  page = await browser.submit(new URL(login.action, page.url), login.fields);
  if (page.redirectedAway !== undefined) return page.redirectedAway;
  if (page.status !== 200 || page.html.includes('/login"')) {
    throw new Error(`the sandbox customer could not sign in (HTTP ${page.status}): ${pageError(page.html)}`);
  }

  // 3. The second factor (strong customer authentication): the code her authenticator app would
  //    show now, computed from the published secret. For a payment the form also carries the hidden
  //    `payment_link` of the amount and payee shown beside the code field; it is sent back as is.
  if (page.html.includes('/totp"')) {
    const second = formOf(page.html, '/totp');
    second.fields.push(['code', TOTP.generate({ secret: Secret.fromBase32(SANDBOX_CUSTOMER.totpSecret) })]);
    page = await browser.submit(new URL(second.action, page.url), second.fields);
    if (page.redirectedAway !== undefined) return page.redirectedAway;
    if (page.status !== 200 || page.html.includes('/totp"')) {
      throw new Error(`the sandbox customer's one-time code was refused (HTTP ${page.status}): ${pageError(page.html)}`);
    }
  }

  // 4. Review and press Allow, sharing every account offered (one, for a payment). The form names
  //    them (`accounts`, the page's ticked checkboxes): one that names none shares nothing.
  const consent = formOf(page.html, '/consent');
  if (!consent.fields.some(([name]) => name === 'accounts')) {
    const offered = consent.inputs.filter((i) => i.name === 'accounts');
    const chosen = offered[0]?.type === 'radio' ? offered.slice(0, 1) : offered;
    for (const account of chosen) consent.fields.push(['accounts', account.value]);
  }
  consent.fields.push(['decision', 'approve']);
  page = await browser.submit(new URL(consent.action, page.url), consent.fields);
  if (page.redirectedAway !== undefined) return page.redirectedAway;
  throw new Error(`the consent form did not send the customer back to the TPP (HTTP ${page.status}): ${pageError(page.html)}`);
}

interface Page {
  url: URL;
  status: number;
  html: string;
  /** Set when Moat redirected the browser off its own origin: to the TPP's redirect_uri. */
  redirectedAway?: URL;
}

/** Just enough of a browser: a cookie jar, and redirects followed while they stay on the bank's site. */
class CookieBrowser {
  private readonly cookies = new Map<string, { value: string; path: string }>();
  private readonly fetch: Fetch;

  constructor(fetch: Fetch) {
    this.fetch = fetch;
  }

  open(url: URL): Promise<Page> {
    return this.navigate(url, { method: 'GET' });
  }

  submit(action: URL, fields: [string, string][]): Promise<Page> {
    return this.navigate(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: action.origin },
      body: new URLSearchParams(fields).toString(),
    });
  }

  private async navigate(url: URL, init: RequestInit): Promise<Page> {
    let current = url;
    let res = await this.request(current, init);
    for (let hops = 0; res.status >= 300 && res.status < 400; hops += 1) {
      const location = new URL(res.headers.get('location') ?? '', current);
      await res.body?.cancel();
      if (location.origin !== url.origin) return { url: current, status: res.status, html: '', redirectedAway: location };
      if (hops === 10) throw new Error(`too many redirects at ${current.pathname}`);
      current = location;
      res = await this.request(current, { method: 'GET' });
    }
    return { url: current, status: res.status, html: await res.text() };
  }

  private async request(url: URL, init: RequestInit): Promise<Response> {
    const cookie = [...this.cookies]
      .filter(([, c]) => url.pathname.startsWith(c.path))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
    const headers = new Headers(init.headers);
    if (cookie !== '') headers.set('cookie', cookie);
    const res = await this.fetch(url, { ...init, headers, redirect: 'manual' });
    for (const setCookie of res.headers.getSetCookie()) this.store(setCookie);
    return res;
  }

  /** RFC 6265 §5.2, the parts this needs: name=value, Path, and deletion by Max-Age or Expires. */
  private store(setCookie: string): void {
    const [pair = '', ...attributes] = setCookie.split(';').map((part) => part.trim());
    const name = pair.slice(0, pair.indexOf('='));
    const value = pair.slice(pair.indexOf('=') + 1);
    const attribute = (key: string) => attributes.find((a) => a.toLowerCase().startsWith(`${key}=`))?.slice(key.length + 1);
    const maxAge = attribute('max-age');
    const expires = attribute('expires');
    const expired = value === '' || (maxAge !== undefined && Number(maxAge) <= 0) || (expires !== undefined && Date.parse(expires) < Date.now());
    if (expired) this.cookies.delete(name);
    else this.cookies.set(name, { value, path: attribute('path') ?? '/' });
  }
}

interface Input {
  type: string;
  name: string;
  value: string;
  checked: boolean;
}

/**
 * The form on `html` whose action ends with `actionSuffix`, and the fields a browser would send
 * for it as rendered: hidden inputs (the `csrf` token among them) and ticked boxes.
 */
function formOf(html: string, actionSuffix: string): { action: string; inputs: Input[]; fields: [string, string][] } {
  for (const [, attributes = '', body = ''] of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)) {
    const action = attribute(attributes, 'action');
    if (action === undefined || !action.endsWith(actionSuffix)) continue;
    const inputs = [...body.matchAll(/<input\b([^>]*)>/g)].map(([, a = '']) => ({
      type: attribute(a, 'type') ?? 'text',
      name: attribute(a, 'name') ?? '',
      value: attribute(a, 'value') ?? '',
      checked: /\schecked\b/.test(a),
    }));
    const sent = inputs.filter((i) => i.name !== '' && (i.type === 'hidden' || ((i.type === 'checkbox' || i.type === 'radio') && i.checked)));
    if (!sent.some((i) => i.name === 'csrf')) throw new Error(`the ${actionSuffix} form has no csrf field`);
    return { action, inputs, fields: sent.map((i) => [i.name, i.value]) };
  }
  throw new Error(`the page has no ${actionSuffix} form`);
}

/** The message a page shows in its error paragraph (Moat's pages use role="alert"). */
function pageError(html: string): string {
  const match = /<p class="error" role="alert"[^>]*>([\s\S]*?)<\/p>/.exec(html) ?? /<title>([\s\S]*?)<\/title>/.exec(html);
  return match?.[1]?.replace(/<[^>]*>/g, '').trim() ?? 'no message on the page';
}

function attribute(attributes: string, name: string): string | undefined {
  const match = new RegExp(`\\s${name}="([^"]*)"`).exec(attributes);
  return match?.[1]
    ?.replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}
