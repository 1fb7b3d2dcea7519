import {
  countForScore,
  emptyBaseline,
  expectationAt,
  learn,
  score,
  type BaselineParameters,
  type BaselineState,
} from '../../src/threats/streaming-baseline.ts';

/* The streaming model behind threat detection: EWMA level and spread, hour-of-day seasonality. */

const p: BaselineParameters = { alpha: 2 / 61, hourlyAlpha: 0.1, hourlyMinimum: 10, warmupBuckets: 20 };

function learnAll(counts: number[], hour = 12, from: BaselineState = emptyBaseline()): BaselineState {
  return counts.reduce((s, c) => learn(s, c, hour, p), from);
}

it('learns the level and spread of a steady count, and judges nothing before the warm-up', () => {
  const alternating = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 16 : 24));
  const early = expectationAt(learnAll(alternating.slice(0, 19)), 12, p);
  expect(early.warmedUp).toBe(false);
  const e = expectationAt(learnAll(alternating), 12, p);
  expect(e.warmedUp).toBe(true);
  expect(e.expected).toBeCloseTo(20, 0);
  // Alternating ±4 around 20: a spread near 4, and never below √20 (Poisson floor).
  expect(e.spread).toBeGreaterThanOrEqual(Math.sqrt(20) - 1e-9);
  expect(e.spread).toBeLessThan(5);
  expect(score(20, e)).toBeLessThan(0.5);
  expect(score(200, e)).toBeGreaterThan(30);
  // A quiet bucket is no threat.
  expect(score(0, e)).toBe(0);
  expect(countForScore(6, e)).toBeCloseTo(e.expected + 6 * e.spread);
});

it('never lets a perfectly regular count make one extra request an anomaly', () => {
  const e = expectationAt(learnAll(new Array<number>(100).fill(3)), 12, p);
  expect(e.spread).toBeGreaterThanOrEqual(Math.sqrt(3));
  expect(score(5, e)).toBeLessThan(2);
});

it('expects each hour of the day its own level once that hour has been seen often enough', () => {
  // Quiet all day except a nightly batch at 02:00.
  let s = emptyBaseline();
  for (let day = 0; day < 3; day += 1) {
    for (let hour = 0; hour < 24; hour += 1) {
      for (let m = 0; m < 6; m += 1) s = learn(s, hour === 2 ? 100 : 2, hour, p);
    }
  }
  const atBatch = expectationAt(s, 2, p);
  const atNoon = expectationAt(s, 12, p);
  expect(atBatch.expected).toBeGreaterThan(90);
  expect(score(100, atBatch)).toBeLessThan(1);
  expect(atNoon.expected).toBeLessThan(3);
  expect(score(100, atNoon)).toBeGreaterThan(6);
});

it('does not change the state it is given', () => {
  const s = learnAll([1, 2, 3]);
  const copy = JSON.parse(JSON.stringify(s));
  learn(s, 50, 3, p);
  expect(s).toEqual(copy);
});
