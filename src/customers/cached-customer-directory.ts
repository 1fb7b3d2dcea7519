import type { InvalidatingCache } from '../caching/invalidating-cache.ts';
import type { Customer, CustomerDirectory, FederatedCustomerDirectory } from './customer-directory.ts';

/*
 * The customer a token is issued for — read for every authorization code redeemed, every refresh and
 * every userinfo call (findAccount), so that a customer the bank removed gets no more tokens — kept
 * in memory by customer id (topic `customer`). A customer recorded through this instance (a bank
 * IdP's sign-in) is forgotten before the call returns; any other change, by another instance, the
 * CLI or an operator's SQL, is announced by Postgres at commit
 * (migrations/20261207100000_customer_announcements.sql), and in any case no entry is served more
 * than the cache's maxAgeMs after it was read. Sign-in (`authenticate`) always asks the directory.
 */

export type CustomerCache = InvalidatingCache<Customer | undefined>;

/** A private copy for each caller: a caller that changes the customer it got changes nobody else's. */
export const copyCustomer = (customer: Customer | undefined): Customer | undefined => (customer === undefined ? undefined : { ...customer });

export function cachedCustomerDirectory(directory: FederatedCustomerDirectory, cache: CustomerCache): FederatedCustomerDirectory;
export function cachedCustomerDirectory(directory: CustomerDirectory, cache: CustomerCache): CustomerDirectory;
export function cachedCustomerDirectory(directory: CustomerDirectory | FederatedCustomerDirectory, cache: CustomerCache): CustomerDirectory {
  const cached: CustomerDirectory = {
    authenticate: (username, password) => directory.authenticate(username, password),
    findById: (id) => cache.get(id, () => directory.findById(id)),
  };
  if (!('record' in directory)) return cached;
  const federated: FederatedCustomerDirectory = {
    ...cached,
    record: async (customer, issuer) => {
      try {
        await directory.record(customer, issuer);
      } finally {
        // Also after a failed write, which may have been committed before the error reached us.
        cache.invalidate(customer.id);
      }
    },
  };
  return federated;
}
