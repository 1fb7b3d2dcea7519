import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bankAppOpenApiText } from '../src/ciba/bank-app-openapi.ts';

/** Writes docs/bank-app.openapi.json from the zod schemas of the bank notification interface. */
const target = join(import.meta.dirname, '..', 'docs', 'bank-app.openapi.json');
writeFileSync(target, bankAppOpenApiText());
process.stdout.write(`wrote ${target}\n`);
