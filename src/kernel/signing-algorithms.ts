/** Algorithms FAPI 2.0 SP §5.4.1 allows for signing; nothing else is ever enabled. */
export const SIGNING_ALGORITHMS = ['PS256', 'ES256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];
