import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { accountServiceOpenApiText } from '../src/accounts/account-service-openapi.ts';

/** Writes docs/account-service.openapi.json from the zod schemas Moat checks answers with. */
const target = join(import.meta.dirname, '..', 'docs', 'account-service.openapi.json');
writeFileSync(target, accountServiceOpenApiText());
process.stdout.write(`wrote ${target}\n`);
