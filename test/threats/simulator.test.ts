import { configSchema } from '../../src/config/schema.ts';
import { detectorSettings } from '../../src/threats/threat-protection.ts';
import { runThreatSimulation, standardAttacks, standardTpps } from '../../bench/threats/simulator.ts';

/*
 * The detector with Moat's default settings against synthetic days of six TPPs' traffic (daily
 * rhythm, a nightly batch, honest errors) plus injected attacks. A smaller run than
 * `npm run simulate:threats`, whose figures are in the README; what it asserts must hold for both.
 */

it('catches every blatant attack within two minutes and raises no actionable false alarm', async () => {
  const tpps = standardTpps();
  const days = 4;
  const learningDays = 2;
  const seed = 7;
  const report = await runThreatSimulation({
    seed,
    days,
    learningDays,
    tpps,
    loginFailuresPeak: 3,
    settings: detectorSettings(configSchema.parse({ issuer: 'https://localhost:8443' }).threats),
    attacks: standardAttacks({ seed, days, learningDays, tpps, perKind: 2 }).filter((a) => a.kind !== 'slow-scrape'),
  });
  expect(report.attacks).toHaveLength(10);
  for (const attack of report.attacks) {
    expect({ kind: attack.kind, detected: attack.detected }).toEqual({ kind: attack.kind, detected: true });
    expect(attack.secondsToDetect).toBeLessThanOrEqual(120);
  }
  // Replay storms and credential stuffing are high (quarantine / block-worthy), probing at least medium.
  for (const kind of ['code-replay-storm', 'credential-stuffing', 'distributed-credential-stuffing'] as const) {
    expect(report.byKind[kind]!.severities.high).toBe(2);
  }
  expect(report.byKind['scope-probing']!.severities.low).toBe(0);
  expect(report.falsePositives.bySeverity.medium + report.falsePositives.bySeverity.high).toBe(0);
  expect(report.falsePositives.perTppDay).toBeLessThan(0.5);
}, 60_000);
