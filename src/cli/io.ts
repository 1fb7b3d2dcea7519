/** Where a command writes its text: only `write` is used, so output can be filtered on its way out. */
export interface TextOutput {
  write(text: string): unknown;
}

/** What a CLI command may touch, so tests run commands in-process with their own streams. */
export interface CliIo {
  stdout: TextOutput;
  stderr: TextOutput;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * C0 controls but the line feed, DEL, and C1 controls (U+0080–U+009F, where 8-bit CSI lives); and
 * the Unicode format characters (Cf) — the bidi embeddings, overrides and isolates (U+202A–U+202E,
 * U+2066–U+2069) that reorder what follows them, the zero-width ones that hide text (U+200B–U+200F,
 * U+2060–U+2064, U+FEFF), the invisible tags — and the line and paragraph separators.
 */
const CONTROL_CHARACTERS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]/gu;

/**
 * Shows every control and format character but the line feed as a `\u001b`-style escape. What the
 * CLI prints comes partly from others — a TPP's name from its software statement, a server's error
 * message, a file — and an ESC sequence in it would otherwise reach the operator's terminal and
 * rewrite its title, its colours or what is on the screen; a bidi override would show a name or a
 * thumbprint in another order than it has. The escape is also JSON's, so `--json` output stays
 * valid (JSON.stringify leaves DEL, C1 and format characters as they are); a character beyond the
 * BMP (a tag) is escaped as its surrogate pair, as JSON writes it.
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(CONTROL_CHARACTERS, (c) => Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''));
}

/** An output that escapes control characters in all it is given (`moat` wraps stdout and stderr in it). */
export function escapingOutput(output: TextOutput): TextOutput {
  return { write: (text) => output.write(escapeControlCharacters(text)) };
}
