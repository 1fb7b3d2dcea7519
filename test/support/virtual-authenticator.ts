import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import { undoOnReturn, type Tab, type TabOptions } from './chromium.ts';

/*
 * A real WebAuthn authenticator for tests: Chromium's virtual authenticator, added through the
 * DevTools protocol (WebAuthn domain). Pages either come from Moat, or — for ceremony tests that
 * drive the server code directly — are answered in the browser at any https origin, so a response
 * can be made for the right or a wrong origin and relying party.
 */

// Runs in the browser (Moat's TypeScript has no DOM library).
declare const window: any;

export interface AuthenticatorOptions {
  /** The authenticator can verify its user (PIN, biometric). */
  hasUserVerification?: boolean;
  /** ... and does so successfully. */
  isUserVerified?: boolean;
  /** Its credentials are backup eligible (synced passkeys). */
  backupEligible?: boolean;
}

export interface VirtualAuthenticator {
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  authenticatorId: string;
  setUserVerified(verified: boolean): Promise<void>;
  credentialCount(): Promise<number>;
}

/** Adds a virtual platform authenticator (CTAP2, resident keys) to a page of a new context. */
export async function addVirtualAuthenticator(context: BrowserContext, page: Page, options: AuthenticatorOptions = {}): Promise<VirtualAuthenticator> {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: options.hasUserVerification ?? true,
      isUserVerified: options.isUserVerified ?? true,
      automaticPresenceSimulation: true,
      ...(options.backupEligible === undefined ? {} : { defaultBackupEligibility: options.backupEligible, defaultBackupState: options.backupEligible }),
    },
  });
  // A reused tab (useTabs) goes to the next test without this authenticator or its credentials.
  undoOnReturn(page, async () => {
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId }).catch(() => {});
    await cdp.detach().catch(() => {});
  });
  return {
    context,
    page,
    cdp,
    authenticatorId,
    async setUserVerified(verified) {
      await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: verified });
    },
    async credentialCount() {
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      return credentials.length;
    },
  };
}

const browserBundle = (() => {
  const entry = createRequire(import.meta.url).resolve('@simplewebauthn/browser');
  return readFileSync(join(dirname(dirname(entry)), 'dist', 'bundle', 'index.umd.min.js'), 'utf8');
})();

/**
 * A page at `origin` answered by the browser itself (no server), with @simplewebauthn/browser loaded,
 * in a tab of `tabs` with an authenticator of its own: the real browser makes real responses for
 * whatever options a test passes. `close()` gives the tab back, its authenticator removed.
 */
export async function openCeremonyPage(
  tabs: (options?: TabOptions) => Promise<Tab>,
  origin: string,
  options: AuthenticatorOptions = {},
): Promise<
  VirtualAuthenticator & {
    register(optionsJSON: unknown, rpId?: string): Promise<string>;
    authenticate(optionsJSON: unknown, rpId?: string): Promise<string>;
    /** Moves the page, with the same authenticator, to another origin. */
    goto(origin: string): Promise<void>;
    close(): Promise<void>;
  }
> {
  const { page, context, close } = await tabs();
  await page.route('https://**/*', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>ceremony</title>' }));
  const authenticator = await addVirtualAuthenticator(context, page, options);
  const goto = async (at: string) => {
    await page.goto(`${at}/ceremony`);
    await page.addScriptTag({ content: browserBundle });
  };
  await goto(origin);
  const run = async (kind: 'register' | 'authenticate', optionsJSON: unknown, rpId?: string) => {
    const result = await page.evaluate(
      async ({ kind, optionsJSON, rpId }) => {
        const lib = window.SimpleWebAuthnBrowser;
        const given = optionsJSON as any;
        const opts = rpId === undefined ? given : kind === 'register' ? { ...given, rp: { ...given.rp, id: rpId } } : { ...given, rpId };
        try {
          const response = kind === 'register' ? await lib.startRegistration({ optionsJSON: opts }) : await lib.startAuthentication({ optionsJSON: opts });
          return { ok: true, value: JSON.stringify(response) };
        } catch (err) {
          return { ok: false, value: `${(err as Error).name}: ${(err as Error).message}` };
        }
      },
      { kind, optionsJSON, rpId },
    );
    if (!result.ok) throw new Error(`the browser refused the ceremony: ${result.value}`);
    return result.value;
  };
  return {
    ...authenticator,
    goto,
    register: (optionsJSON, rpId) => run('register', optionsJSON, rpId),
    authenticate: (optionsJSON, rpId) => run('authenticate', optionsJSON, rpId),
    close,
  };
}
