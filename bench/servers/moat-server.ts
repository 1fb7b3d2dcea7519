import { validateConfig } from '../../src/config/load.ts';
import { newConsentId } from '../../src/consents/consent.ts';
import { hashPassword } from '../../src/customers/password-hash.ts';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { createLogDestination, createLogger } from '../../src/observability/logger.ts';
import { createMoatServer } from '../../src/server.ts';
import type { BenchServer } from './bench-server.ts';
import { createCodeMinter } from './code-minting.ts';

/*
 * Moat as `npm start` builds it (createMoatServer over a validated configuration), on whatever
 * storage the configuration names: the embedded default, or Postgres and Redis.
 */
export async function startMoat(rawConfig: Record<string, unknown>, baseDir: string): Promise<BenchServer> {
  const config = validateConfig(rawConfig, 'benchmark', baseDir);
  // Moat's own log level (info: one access-log line per request) into /dev/null, written
  // asynchronously and in batches as `moat start` writes standard output: the cost of logging is in the
  // figures, the cost of a terminal is not. BENCH_SERVER_LOG=1 shows it (debugging).
  const logger = createLogger(config.logging.level, createLogDestination(process.env.BENCH_SERVER_LOG === '1' ? 2 : '/dev/null'));
  const moat = await createMoatServer(config, logger);
  // The flows sign in as the sandbox's alice, whose public password is hashed cheaply
  // (src/customers/sandbox-customers.ts): here she gets a real customer's parameters, so each
  // sign-in costs what a bank customer's does, in CPU and in memory.
  const alice = SANDBOX_CUSTOMERS[0];
  await moat.storage.sql.query('UPDATE customer SET password_hash = $1 WHERE id = $2', [await hashPassword(alice.password), alice.id]);
  const port = await moat.listen();

  // A code's consent is what makes Moat's token response carry consent_id: each clone gets one,
  // recorded through the consent service exactly as the consent page does.
  const templateScopes = new Map<string, string>();
  const mintCodes = createCodeMinter(moat.provider, async ({ templateGrantId, grantId, clientId, accountId }) => {
    let scope = templateScopes.get(templateGrantId);
    if (scope === undefined) {
      const consent = await moat.consents.findByGrantId(templateGrantId);
      if (consent?.origin !== 'scope') throw new Error('the benchmark clones scope consents only');
      scope = consent.scope;
      templateScopes.set(templateGrantId, scope);
    }
    await moat.consents.authorise({ newConsentId: newConsentId('scope'), clientId, customerId: accountId, scope, grantId });
  });

  return {
    ports: { public: port, ...(moat.gatewayCheckPort === undefined ? {} : { gatewayCheck: moat.gatewayCheckPort }) },
    listeners: [moat.server],
    mintCodes,
    close: () => moat.close(),
  };
}
