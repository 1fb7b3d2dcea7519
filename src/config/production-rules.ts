import type { MoatConfig } from './schema.ts';

/*
 * The rules a production configuration is held to by `moat config validate --production`, beyond
 * what the schema and `mode: production` already refuse at start. One named rule each, so a rule
 * is added (SCA, say, once the `sca` section exists) by appending to the list.
 */

export interface ProductionRule {
  /** A stable name, printed with each violation. */
  name: string;
  /** Why the configuration breaks the rule, naming the key; undefined when it keeps it. */
  check(config: MoatConfig): string | undefined;
}

/** Where sandbox mode keeps its CA and directory: never a production trust anchor. */
const SANDBOX_MATERIAL = /(^|[\\/])sandbox[\\/](tpp-ca|server-ca)\.pem$/;

export const PRODUCTION_RULES: ProductionRule[] = [
  {
    name: 'production-mode',
    // Sandbox mode adds the sandbox TPP CA to the trust anchors and trusts the sandbox directory.
    check: (c) =>
      c.mode === 'production' ? undefined : `mode: is ${c.mode}; production needs mode: production (sandbox mode trusts the sandbox CA and directory)`,
  },
  {
    name: 'revocation-fails-closed',
    // RFC 5280 §6.3: a certificate whose status cannot be established is not to be relied upon.
    check: (c) =>
      c.certificates.revocation.failMode === 'open'
        ? 'certificates.revocation.failMode: is open; production refuses a certificate whose revocation status is unknown (closed)'
        : undefined,
  },
  {
    name: 'operator-authentication',
    check: (c) =>
      c.admin.enabled && c.admin.tokenFile === undefined && c.admin.tls === undefined
        ? 'admin.tokenFile or admin.tls: the admin listener needs operator authentication'
        : undefined,
  },
  {
    name: 'no-sandbox-ca',
    check: (c) => {
      const sandbox = c.trustAnchors.find((f) => SANDBOX_MATERIAL.test(f));
      return sandbox === undefined ? undefined : `trustAnchors: ${sandbox} is a sandbox CA`;
    },
  },
  {
    name: 'no-sandbox-directory',
    check: (c) => {
      const i = c.directories.findIndex(
        (d) => d.issuer === 'moat-sandbox-directory' || (d.jwksFile !== undefined && /(^|[\\/])sandbox[\\/]directory/.test(d.jwksFile)),
      );
      return i === -1 ? undefined : `directories.${i}: the sandbox directory is not trusted in production`;
    },
  },
  {
    name: 'sca-on',
    // PSD2 RTS Art. 4: the customer's sign-in is strong (two factors). Read structurally: the `sca`
    // section (sca.totp.enabled) comes with the SCA work; until it exists there is nothing to turn off.
    check: (c) =>
      (c as { sca?: { totp?: { enabled?: boolean } } }).sca?.totp?.enabled === false
        ? 'sca.totp.enabled: is false; customers would sign in with a password alone, which is not strong customer authentication'
        : undefined,
  },
];

/** Every production rule the configuration breaks, as `rule: reason`. */
export function productionViolations(config: MoatConfig, rules: readonly ProductionRule[] = PRODUCTION_RULES): string[] {
  return rules.flatMap((rule) => {
    const problem = rule.check(config);
    return problem === undefined ? [] : [`${rule.name}: ${problem}`];
  });
}
