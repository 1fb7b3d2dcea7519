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

/** C0 controls but the line feed, DEL, and C1 controls (U+0080–U+009F, where 8-bit CSI lives). */
const CONTROL_CHARACTERS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g;

/**
 * Shows every control character but the line feed as a `\u001b`-style escape. What the CLI prints
 * comes partly from others — a TPP's name from its software statement, a server's error message, a
 * file — and an ESC sequence in it would otherwise reach the operator's terminal and rewrite its
 * title, its colours or what is on the screen. The escape is also JSON's, so `--json` output stays
 * valid (JSON.stringify leaves DEL and C1 as they are).
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(CONTROL_CHARACTERS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** An output that escapes control characters in all it is given (`moat` wraps stdout and stderr in it). */
export function escapingOutput(output: TextOutput): TextOutput {
  return { write: (text) => output.write(escapeControlCharacters(text)) };
}
