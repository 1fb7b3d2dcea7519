import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, issueLeaf, type TestCa, type TestCertificate } from './pki.ts';

/*
 * The bank's account service as the tests run it: node:https with mutual TLS (its own test CA, a
 * server certificate for 127.0.0.1 and a client certificate for Moat), written straight from the
 * contract in docs/account-service.openapi.json, not from Moat's code. Each request gets the next
 * queued behaviour, or the standing one: a good answer, a slow one (held until released or the
 * client gives up), a 500, or a malformed body.
 */

export type Behaviour = 'good' | 'slow' | 'error' | 'malformed' | 'not_found';

export interface ServiceAccount {
  id: string;
  nickname: string;
  type: string;
  currency: string;
  schemeName: string;
  identification: string;
}

export interface TestAccountService {
  url: string;
  ca: TestCa;
  /** Moat's client certificate, issued by the service's CA. */
  moatClient: TestCertificate;
  /** PEM files for accounts.http: clientCertFile, clientKeyFile, caFile. */
  files: { clientCertFile: string; clientKeyFile: string; caFile: string };
  /** The service's customers and their accounts; what each account can pay (default: anything). */
  accounts: Map<string, ServiceAccount[]>;
  funds: Map<string, number>;
  /** The standing behaviour, and behaviours for the next requests, first first. */
  behaviour: Behaviour;
  queue: Behaviour[];
  /** Every request: its path and query, and the client certificate's subject CN. */
  requests: { path: string; clientCn: string | undefined }[];
  /** Answers the held (slow) requests now. */
  releaseSlow(): void;
  close(): Promise<void>;
}

export const MALFORMED_ACCOUNT = {
  id: 'acc-broken',
  nickname: 'Broken',
  type: 'Current',
  currency: 'pounds',
  schemeName: 'UK.OBIE.SortCodeAccountNumber',
  identification: 40001700000000,
};

export async function startAccountService(options: { accounts?: Record<string, ServiceAccount[]> } = {}): Promise<TestAccountService> {
  const ca = await createTestCa([{ O: ['Test Bank'] }, { CN: ['Test Bank account service CA'] }]);
  const serverCert = await issueLeaf(ca, { subject: [{ O: ['Test Bank'] }, { CN: ['accounts.test-bank'] }], eku: ['serverAuth'], san: { ip: ['127.0.0.1'] } });
  const moatClient = await issueLeaf(ca, { subject: [{ O: ['Test Bank'] }, { CN: ['moat'] }], eku: ['clientAuth'] });
  const dir = mkdtempSync(join(tmpdir(), 'moat-account-service-'));
  const files = { clientCertFile: join(dir, 'moat.pem'), clientKeyFile: join(dir, 'moat.key'), caFile: join(dir, 'ca.pem') };
  writeFileSync(files.clientCertFile, moatClient.certPem);
  writeFileSync(files.clientKeyFile, moatClient.keyPem);
  writeFileSync(files.caFile, ca.certPem);

  const held: (() => void)[] = [];
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const service: TestAccountService = {
    url: '',
    ca,
    moatClient,
    files,
    accounts: new Map(Object.entries(options.accounts ?? {})),
    funds: new Map(),
    behaviour: 'good',
    queue: [],
    requests: [],
    releaseSlow: () => {
      for (const answer of held.splice(0)) answer();
    },
    close: async () => undefined,
  };

  const server: Server = createServer(
    { cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const url = new URL(req.url ?? '/', 'https://127.0.0.1');
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      service.requests.push({ path: `${url.pathname}${url.search}`, clientCn: typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined });
      const behaviour = service.queue.shift() ?? service.behaviour;
      const answer = () => {
        if (behaviour === 'error') return json(res, 500, { error: 'core banking is down' });
        if (behaviour === 'not_found') return json(res, 404, { error: 'no such thing' });
        const list = /^\/bank\/customers\/([^/]+)\/accounts$/.exec(url.pathname);
        const canPay = /^\/bank\/customers\/([^/]+)\/accounts\/([^/]+)\/can-pay$/.exec(url.pathname);
        if (behaviour === 'malformed') return json(res, 200, list !== null ? { accounts: [MALFORMED_ACCOUNT] } : { canPay: 'yes' });
        if (list !== null) return json(res, 200, { accounts: service.accounts.get(decodeURIComponent(list[1]!)) ?? [] });
        if (canPay !== null) {
          const account = service.accounts.get(decodeURIComponent(canPay[1]!))?.find((a) => a.id === decodeURIComponent(canPay[2]!));
          if (account === undefined) return json(res, 404, { error: "not this customer's account" });
          const amount = Number(url.searchParams.get('amount'));
          return json(res, 200, { canPay: account.currency === url.searchParams.get('currency') && amount <= (service.funds.get(account.id) ?? Infinity) });
        }
        return json(res, 404, { error: 'unknown path' });
      };
      if (behaviour === 'slow') held.push(answer);
      else answer();
    },
  );
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
  // The contract's paths under a prefix, as a bank mounts them.
  service.url = `https://127.0.0.1:${port}/bank`;
  service.close = () =>
    new Promise<void>((done) => {
      held.splice(0);
      server.close(() => done());
      server.closeAllConnections();
    });
  return service;
}

/** Alice's and Bob's accounts as the test bank's service knows them (none of them the sandbox's). */
export function bankAccounts(): Record<string, ServiceAccount[]> {
  return {
    'cust-alice': [
      {
        id: 'bank-alice-bills',
        nickname: 'Bills account',
        type: 'Personal current account',
        currency: 'GBP',
        schemeName: 'UK.OBIE.SortCodeAccountNumber',
        identification: '20001711112222',
      },
      {
        id: 'bank-alice-holiday',
        nickname: 'Holiday fund',
        type: 'Savings account',
        currency: 'GBP',
        schemeName: 'UK.OBIE.SortCodeAccountNumber',
        identification: '20001733334444',
      },
    ],
    'cust-bob': [
      {
        id: 'bank-bob-main',
        nickname: 'Main account',
        type: 'Personal current account',
        currency: 'GBP',
        schemeName: 'UK.OBIE.IBAN',
        identification: 'GB29NWBK60161331926819',
      },
    ],
  };
}
