import type { Harness } from '../support/moat-harness.ts';
import { Browser, pushAuthorization, type RegisteredTpp, useMoatWithTpp } from '../support/tpp-client.ts';

/*
 * The customer's pages: the documented form contract, and clear pages (never a 500 or a stack
 * trace) for what a browser can get wrong.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

async function startAuthorization(browser: Browser): Promise<string> {
  const { requestUri } = await pushAuthorization(tpp);
  const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
  return new URL(start.url, h.issuer).pathname.split('/')[2]!;
}

describe('the login page', () => {
  it('shows who is asking, the form fields of the contract, and the sandbox customers', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const uid = await startAuthorization(browser);
      const res = await browser.request(`/interaction/${uid}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
      const html = await res.text();
      expect(html).toContain('<strong>Test Fintech</strong> wants to connect to your account');
      expect(html).toContain(`action="/interaction/${uid}/login"`);
      expect(html).toContain('name="username"');
      expect(html).toContain('name="password"');
      expect(html).toContain('<code>alice</code>');
    } finally {
      await browser.close();
    }
  });

  it('answers wrong credentials with 401 and a message, without saying which part was wrong', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const uid = await startAuthorization(browser);
      const res = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'alice', password: 'wrong' } });
      expect(res.status).toBe(401);
      expect(await res.text()).toContain('The username or password is incorrect.');
      const unknown = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'mallory', password: 'x' } });
      expect(unknown.status).toBe(401);
    } finally {
      await browser.close();
    }
  });

  it('escapes what it echoes back', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const uid = await startAuthorization(browser);
      const res = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: '<script>alert(1)</script>', password: 'x' } });
      const html = await res.text();
      expect(html).not.toContain('<script>alert(1)</script>');
      expect(html).toContain('&lt;script&gt;');
    } finally {
      await browser.close();
    }
  });
});

describe('what a browser can get wrong', () => {
  it('gets a 400 page, not a 500, for an interaction that does not exist or lacks its cookie', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const res = await browser.request('/interaction/does-not-exist');
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await res.text()).toContain('<code>invalid_request</code>');
      const post = await browser.request('/interaction/does-not-exist/login', { method: 'POST', form: { username: 'alice', password: 'alice-sandbox' } });
      expect(post.status).toBe(400);
    } finally {
      await browser.close();
    }
  });

  it('gets a 400 page for a consent decision outside the contract', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const uid = await startAuthorization(browser);
      const login = await browser.follow(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'alice', password: 'alice-sandbox' } });
      const consentUid = new URL(login.url, h.issuer).pathname.split('/')[2]!;
      const res = await browser.request(`/interaction/${consentUid}/consent`, { method: 'POST', form: { decision: 'maybe' } });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain('decision must be approve or deny');
    } finally {
      await browser.close();
    }
  });

  it('gets a 400 page for a form that is not form-encoded', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const uid = await startAuthorization(browser);
      const res = await browser.request(`/interaction/${uid}/login`, { method: 'POST' });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain('expected an application/x-www-form-urlencoded body');
    } finally {
      await browser.close();
    }
  });
});
