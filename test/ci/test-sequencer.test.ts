import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from '@jest/test-result';
import LongestFirstSequencer, { ESTIMATED_SECONDS } from '../support/test-sequencer.ts';

/*
 * jest.config.js's testSequencer starts the longest suites first even on a fresh clone with no Jest
 * cache (issue 15 §6): from the committed estimates, after a cached failure, before the unlisted
 * suites (largest file first).
 */
const rootDir = process.cwd();
const sizes = new Map<string, number>();
const context = {
  config: { rootDir, cache: false, id: 'sequencer-test', cacheDirectory: '/nonexistent' },
  hasteFS: { getSize: (path: string) => sizes.get(path) ?? null },
} as unknown as Test['context'];

function suite(relative: string, bytes = 100): Test {
  const path = join(rootDir, relative);
  sizes.set(path, bytes);
  return { path, context, duration: undefined } as Test;
}

const order = (tests: Test[]) => tests.map((test) => test.path.slice(rootDir.length + 1));

describe('the test sequencer', () => {
  it('lists only suites that exist, each with a positive estimate', () => {
    expect(ESTIMATED_SECONDS.size).toBeGreaterThan(20);
    for (const [path, seconds] of ESTIMATED_SECONDS) {
      expect([path, existsSync(path)]).toEqual([path, true]);
      expect(seconds).toBeGreaterThan(0);
    }
  });

  it('starts the longest estimated suites first and the unlisted ones last, largest file first', () => {
    const sequencer = new LongestFirstSequencer({ contexts: [context], globalConfig: {} as never });
    const tests = [
      suite('test/unlisted/small.test.ts', 10),
      suite('test/storage/migrations.test.ts', 1),
      suite('test/unlisted/large.test.ts', 5000),
      suite('test/e2e/customer-pages.test.ts', 1),
    ];
    expect(order(sequencer.sort(tests))).toEqual([
      'test/e2e/customer-pages.test.ts',
      'test/storage/migrations.test.ts',
      'test/unlisted/large.test.ts',
      'test/unlisted/small.test.ts',
    ]);
  });

  it('prefers the cached duration to the estimate, and starts a suite that failed last time first', () => {
    const sequencer = new LongestFirstSequencer({ contexts: [context], globalConfig: {} as never });
    const tests = [suite('test/e2e/customer-pages.test.ts'), suite('test/storage/migrations.test.ts'), suite('test/unlisted/failed.test.ts')];
    const cache = sequencer._getCache(tests[0] as Test);
    cache[join(rootDir, 'test/e2e/customer-pages.test.ts')] = [1, 1000];
    cache[join(rootDir, 'test/unlisted/failed.test.ts')] = [0, 10];
    expect(order(sequencer.sort(tests))).toEqual(['test/unlisted/failed.test.ts', 'test/storage/migrations.test.ts', 'test/e2e/customer-pages.test.ts']);
  });
});
