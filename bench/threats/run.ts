import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { configSchema } from '../../src/config/schema.ts';
import { detectorSettings } from '../../src/threats/threat-protection.ts';
import { runThreatSimulation, standardAttacks, standardTpps } from './simulator.ts';

/*
 * `npm run simulate:threats [-- --days 7 --learning-days 2 --attacks-per-kind 6 --seed 1]`:
 * the threat detector with Moat's default settings against a synthetic week; prints detection
 * rate, time to detect and false positives per attack kind, and writes the JSON report.
 */

const { values } = parseArgs({
  options: {
    days: { type: 'string', default: '7' },
    'learning-days': { type: 'string', default: '2' },
    'attacks-per-kind': { type: 'string', default: '6' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const days = Number(values.days);
const learningDays = Number(values['learning-days']);
const seed = Number(values.seed);
const tpps = standardTpps();
const settings = detectorSettings(configSchema.parse({ issuer: 'https://localhost:8443' }).threats);
const started = Date.now();
const report = await runThreatSimulation({
  seed,
  days,
  learningDays,
  tpps,
  loginFailuresPeak: 3,
  settings,
  attacks: standardAttacks({ seed, days, learningDays, tpps, perKind: Number(values['attacks-per-kind']) }),
});
const lines = [
  `threat detector simulation: ${report.tpps} TPPs, ${days} days (${learningDays} learning), ${report.requests.toLocaleString('en')} requests, seed ${seed} — ${((Date.now() - started) / 1000).toFixed(1)} s`,
  '',
  'attack                           injected  detected  median time to detect  most severe flag (low / medium / high)  median time to it',
  ...Object.entries(report.byKind).map(
    ([kind, k]) =>
      `${kind.padEnd(32)} ${String(k.injected).padStart(8)}  ${String(k.detected).padStart(8)}  ${(k.medianSecondsToDetect === null ? '-' : `${k.medianSecondsToDetect} s`).padStart(21)}  ${`${k.severities.low} / ${k.severities.medium} / ${k.severities.high}`.padEnd(38)}  ${k.medianSecondsToMostSevere === null ? '-' : `${k.medianSecondsToMostSevere} s`}`,
  ),
  '',
  `detection rate: ${(report.detectionRate * 100).toFixed(1)} %`,
  `false positives: ${report.falsePositives.total} (low ${report.falsePositives.bySeverity.low}, medium ${report.falsePositives.bySeverity.medium}, high ${report.falsePositives.bySeverity.high}) — ${report.falsePositives.perTppDay} per TPP-day`,
  ...report.falsePositives.examples.map((f) => `  ${f.severity} ${f.entity} ${f.signal}: ${f.explanation}`),
];
process.stdout.write(`${lines.join('\n')}\n`);
const dir = resolve(values.out);
mkdirSync(dir, { recursive: true });
const file = join(dir, `threat-simulation-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
process.stdout.write(`results: ${file}\n`);
