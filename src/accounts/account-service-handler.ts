import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccountDirectory, CustomerAccount } from '../customers/account-directory.ts';
import { type AccountList, type CanPay, canPayQuerySchema } from './account-service-contract.ts';

/*
 * The account service contract served from an AccountDirectory: what the sandbox runs on its
 * loopback listener so that its demo accounts reach the consent page the way a bank's do. Mutual
 * TLS is the listener's business; this only answers the contract's two GETs.
 */

const LIST = /^\/customers\/([^/]+)\/accounts$/;
const CAN_PAY = /^\/customers\/([^/]+)\/accounts\/([^/]+)\/can-pay$/;

export function createAccountServiceHandler(directory: AccountDirectory, options: { canPay?: (account: CustomerAccount, amount: number) => boolean } = {}) {
  const answer = (res: ServerResponse, status: number, body: AccountList | CanPay | { error: string }) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'https://account-service.invalid');
    if (req.method !== 'GET') {
      answer(res, 405, { error: 'the contract has GETs only' });
      return;
    }
    const handle = async () => {
      const list = LIST.exec(url.pathname);
      if (list !== null) {
        const accounts = await directory.listForCustomer(decodeURIComponent(list[1]!));
        return answer(res, 200, {
          accounts: accounts.map((a) => ({
            id: a.id,
            nickname: a.nickname,
            type: a.accountType,
            currency: a.currency,
            schemeName: a.schemeName,
            identification: a.identification,
          })),
        });
      }
      const canPay = CAN_PAY.exec(url.pathname);
      if (canPay !== null) {
        const query = canPayQuerySchema.safeParse(Object.fromEntries(url.searchParams));
        if (!query.success) return answer(res, 400, { error: 'amount and currency are required' });
        const customerId = decodeURIComponent(canPay[1]!);
        const account = (await directory.listForCustomer(customerId)).find((a) => a.id === decodeURIComponent(canPay[2]!));
        if (account === undefined) return answer(res, 404, { error: 'no such account of this customer' });
        const payable = (await directory.canPay(customerId, account.id, query.data)) && (options.canPay?.(account, Number(query.data.amount)) ?? true);
        return answer(res, 200, { canPay: payable });
      }
      return answer(res, 404, { error: 'not a path of the contract' });
    };
    handle().catch(() => answer(res, 500, { error: 'the account directory failed' }));
  };
}
