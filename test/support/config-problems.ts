import { ConfigError } from '../../src/config/load.ts';

/** The problems a configuration was refused with; fails the test when it was not refused. */
export function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}
