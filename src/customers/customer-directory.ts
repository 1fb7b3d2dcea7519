/**
 * The bank's customers as the interaction routes see them. The sandbox implements it over the
 * `customer` table; a bank plugs in its own identity provider behind the same interface.
 */
export interface Customer {
  /** Stable subject identifier (the ID token's `sub`). */
  id: string;
  name: string;
}

export interface CustomerDirectory {
  /** The customer when the credentials are right, otherwise undefined (never says which part was wrong). */
  authenticate(username: string, password: string): Promise<Customer | undefined>;
  findById(id: string): Promise<Customer | undefined>;
}

/**
 * The customers of the bank's OpenID Provider (customers.source: oidc), as Moat remembers them
 * between sign-ins. They never sign in with a password here: `authenticate` refuses every attempt.
 */
export interface FederatedCustomerDirectory extends CustomerDirectory {
  /** Records a customer the IdP vouched for: created on first sign-in, name and last seen refreshed after. */
  record(customer: Customer, issuer: string): Promise<void>;
}
