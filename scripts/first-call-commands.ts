/*
 * The README's "first call" commands, read from the README itself: the fenced sh block between
 * `<!-- time-to-first-call:begin -->` and `<!-- time-to-first-call:end -->`. Used by
 * scripts/time-to-first-call.ts, which runs them literally in a fresh clone, and by
 * test/integration/time-to-first-call.test.ts, which checks the block stays within issue 7's target.
 */

export const BEGIN_MARKER = '<!-- time-to-first-call:begin -->';
export const END_MARKER = '<!-- time-to-first-call:end -->';

/**
 * What a command is to the measurement: `download` (the package download, timed but left out of
 * the target), `server` (runs until stopped; timed until it answers), or an ordinary `command`.
 */
export type CommandKind = 'download' | 'server' | 'command';

export interface FirstCallCommand {
  /** The line as the README has it, comment included: what a reader pastes and what `sh -c` runs. */
  line: string;
  /** The line without its trailing `# comment`. */
  command: string;
  kind: CommandKind;
}

/** The commands of the marked block, in order. Throws when the markers or the block are missing. */
export function firstCallCommands(readme: string): FirstCallCommand[] {
  const begin = readme.indexOf(BEGIN_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (begin === -1 || end === -1 || end < begin) throw new Error(`README.md has no ${BEGIN_MARKER} … ${END_MARKER} block`);
  if (readme.indexOf(BEGIN_MARKER, begin + 1) !== -1) throw new Error(`README.md has ${BEGIN_MARKER} more than once`);
  const fenced = /```(?:sh|bash|shell)\n([\s\S]*?)```/.exec(readme.slice(begin, end));
  if (fenced === null) throw new Error('the time-to-first-call block holds no ```sh code block');
  const lines: string[] = [];
  let continued = '';
  for (const raw of fenced[1]!.split('\n')) {
    const line = continued === '' ? raw.trim() : `${continued} ${raw.trim()}`;
    if (line.endsWith('\\')) {
      continued = line.slice(0, -1).trimEnd();
      continue;
    }
    continued = '';
    if (line !== '' && !line.startsWith('#')) lines.push(line);
  }
  return lines.map((line) => {
    const command = withoutComment(line);
    return { line, command, kind: kindOf(command) };
  });
}

function kindOf(command: string): CommandKind {
  if (/^npm (ci|install|i)(\s|$)/.test(command)) return 'download';
  if (/^npm (run )?start(\s|$)/.test(command)) return 'server';
  return 'command';
}

/** The line up to its first `#` that starts a word outside quotes (POSIX sh comment rules). */
function withoutComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i]!;
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"') i += 1;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '\\') {
      i += 1;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i).trimEnd();
    }
  }
  return line.trimEnd();
}
