import type { CheckResult } from './checks.ts';

/*
 * The run as a TPP developer reads it (one line per check, the failing one with its cause and fix)
 * or as a script reads it (--json: every check with its id, status and details).
 */

/** A finished run. */
export interface Diagnosis {
  issuer: string;
  ok: boolean;
  /** The failing check, when one failed. */
  failed?: string;
  checks: CheckResult[];
}

const MARK = { pass: 'PASS', fail: 'FAIL', skip: 'SKIP', 'not-run': '----' } as const;

function indent(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((line, i) => (i === 0 ? line : `${prefix}${line}`))
    .join('\n');
}

export function textReport(d: Diagnosis): string {
  const width = Math.max(...d.checks.map((c) => c.title.length));
  const lines = [`moat diagnose ${d.issuer}`, ''];
  for (const c of d.checks) {
    if (c.status === 'not-run') continue;
    lines.push(`${MARK[c.status]}  ${c.title.padEnd(width)}  ${c.summary}`);
    if (c.status === 'fail') {
      const pad = ' '.repeat(6);
      lines.push(`${pad}check:  ${c.id}`, `${pad}cause:  ${indent(c.cause, `${pad}        `)}`, `${pad}fix:    ${indent(c.fix, `${pad}        `)}`);
    }
  }
  const notRun = d.checks.filter((c) => c.status === 'not-run');
  lines.push('');
  if (d.ok) {
    const skipped = d.checks.filter((c) => c.status === 'skip').length;
    lines.push(`All checks passed${skipped === 0 ? '' : ` (${skipped} skipped: see SKIP lines)`}.`);
  } else {
    lines.push(`Stopped at the first fault (${d.failed}).${notRun.length === 0 ? '' : ` Not run: ${notRun.map((c) => c.id).join(', ')}.`}`);
  }
  return `${lines.join('\n')}\n`;
}

export function jsonReport(d: Diagnosis): string {
  return `${JSON.stringify(d, null, 2)}\n`;
}
