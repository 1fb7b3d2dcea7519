/*
 * How a cache hands out what it keeps, so that no caller can change what the next caller gets.
 */

/**
 * A fresh copy of JSON data (a client's metadata). Built with this realm's JSON, not
 * structuredClone: oidc-provider checks JWKs with a prototype comparison that a copy made in another
 * realm (as under a test runner's VM context) fails.
 */
export function jsonCopy<V>(value: V): V {
  return value === undefined ? value : JSON.parse(JSON.stringify(value)) as V;
}

/** The value itself, frozen all the way down (once, when first handed out): a mutation throws. */
export function deepFrozen<V>(value: V): V {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFrozen(child);
  }
  return value;
}
