import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminOpenApiText } from '../src/admin/admin-openapi.ts';

/** Writes docs/admin-api.openapi.json from the admin route table. */
const target = join(import.meta.dirname, '..', 'docs', 'admin-api.openapi.json');
writeFileSync(target, adminOpenApiText());
process.stdout.write(`wrote ${target}\n`);
