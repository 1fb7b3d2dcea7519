import { createServer, type Server } from 'node:https';
import { createAccountServiceHandler } from '../accounts/account-service-handler.ts';
import type { AccountDirectory } from '../customers/account-directory.ts';
import { createCa, issueLeaf } from './certificate-issuing.ts';

/*
 * The sandbox's account service: its demo accounts (the customer_account table) served by the
 * account service contract on a loopback port, over mutual TLS with certificates made for this
 * process alone. Moat's sandbox then reads accounts through the same client, timeouts, retries,
 * breaker and answer checks a bank's service gets, with no counterpart to run.
 */

/** What a demo account can pay: enough for any sensible test payment, and a limit to test refusal against. */
export const SANDBOX_AVAILABLE_FUNDS = 10_000;

export interface SandboxAccountService {
  url: string;
  tls: { certPem: string; keyPem: string; caPem: string };
  close(): Promise<void>;
}

export async function startSandboxAccountService(directory: AccountDirectory): Promise<SandboxAccountService> {
  const now = new Date();
  const ca = await createCa([{ O: ['Moat sandbox'] }, { CN: ['Moat sandbox account service CA'] }], now, 30);
  const [server, client] = await Promise.all([
    issueLeaf(ca, {
      subject: [{ O: ['Moat sandbox'] }, { CN: ['Moat sandbox account service'] }],
      usage: 'serverAuth',
      ipAddresses: ['127.0.0.1'],
      now,
      days: 30,
    }),
    issueLeaf(ca, { subject: [{ O: ['Moat sandbox'] }, { CN: ['Moat'] }], usage: 'clientAuth', now, days: 30 }),
  ]);
  const listener: Server = createServer(
    {
      cert: server.certPem,
      key: server.keyPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    },
    createAccountServiceHandler(directory, { canPay: (_account, amount) => amount <= SANDBOX_AVAILABLE_FUNDS }),
  );
  // Port 0: the kernel's choice; nothing outside this process is told about it.
  const port = await new Promise<number>((resolve, reject) => {
    listener.once('error', reject);
    // exclusive: in a cluster worker, a port of its own — not one the primary shares among the
    // workers, each of which serves with certificates only its own client trusts.
    listener.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve((listener.address() as { port: number }).port));
  });
  return {
    url: `https://127.0.0.1:${port}`,
    tls: { certPem: client.certPem, keyPem: client.keyPem, caPem: ca.certPem },
    close: () =>
      new Promise<void>((done) => {
        listener.close(() => done());
        listener.closeAllConnections();
      }),
  };
}
