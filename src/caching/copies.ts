/*
 * How a cache hands out what it keeps, so that no caller can change what the next caller gets.
 */

/** The value itself, frozen all the way down (once, when first handed out): a mutation throws. */
export function deepFrozen<V>(value: V): V {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFrozen(child);
  }
  return value;
}
