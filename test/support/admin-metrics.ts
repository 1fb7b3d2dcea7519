import { readFileSync } from 'node:fs';
import type { Harness } from './moat-harness.ts';

/*
 * Reading Moat's metrics the way Prometheus does: a GET on the admin listener's /metrics, and the
 * two things a test needs from the text exposition format — which metric families exist (their
 * `# TYPE` lines) and what a counter or gauge reads.
 */

/** The admin token a harness's Moat reads (in the sandbox, the one it generated in its data directory). */
export function adminToken(h: Harness): string {
  return readFileSync(h.config.admin.tokenFile!, 'utf8').trim();
}

/** The admin listener's /metrics body, scraped with the admin token; throws unless it answered 200. */
export async function scrapeMetrics(h: Harness, token = adminToken(h)): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${h.moat.adminPort}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${body}`);
  return body;
}

/** Every metric family the scrape declares, by name, with its type (`counter`, `histogram`, …). */
export function metricFamilies(exposition: string): Map<string, string> {
  return new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** The sum of a metric's samples whose labels include every pair in `labels`; 0 when there is none. */
export function sampleSum(exposition: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const [, labelText = '', value] of exposition.matchAll(new RegExp(`^${name}(?:\\{(.*)\\})? (\\S+)$`, 'gm'))) {
    const have = new Set(labelText.split(/,(?=[a-zA-Z_]+=")/));
    if (wanted.every((pair) => have.has(pair))) sum += Number(value);
  }
  return sum;
}
