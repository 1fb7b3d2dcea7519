import type { X509Certificate } from 'node:crypto';

/*
 * A pure derivation of a certificate (its ASN.1 structure, its profile, its parsed form for another
 * library), computed once per distinct certificate rather than once per request. A client presents
 * the same few certificates request after request, often as a new X509Certificate object each time
 * (a gateway's header, a new connection, a row read back from the registry), and ASN.1 decoding was
 * ~5% of Moat's CPU per request (bench/README.md). Only what follows from the DER alone belongs here:
 * never a revocation or registry status, and nothing compared to the clock (validity is checked
 * against now by the caller, on every request).
 */

/**
 * How many certificates each derivation remembers. A bank's TPPs present a few hundred transport
 * certificates in any short while; an entry is a decoded certificate (tens of kilobytes at most).
 */
export const PER_CERTIFICATE_CAPACITY = 512;

/**
 * `derive`, remembered per certificate: keyed by the SHA-256 of its DER (node computes and keeps
 * `fingerprint256` natively), least recently used forgotten first beyond `capacity`. What `derive`
 * returns is shared by every caller for that certificate, so it must not be changed by any of them.
 */
export function perCertificate<T>(derive: (cert: X509Certificate) => T, capacity: number = PER_CERTIFICATE_CAPACITY): (cert: X509Certificate) => T {
  // Insertion order is recency: a hit is moved to the end, the first key is the least recently used.
  const remembered = new Map<string, T>();
  return (cert) => {
    const key = cert.fingerprint256;
    if (remembered.has(key)) {
      const found = remembered.get(key) as T;
      remembered.delete(key);
      remembered.set(key, found);
      return found;
    }
    const derived = derive(cert);
    remembered.set(key, derived);
    if (remembered.size > capacity) remembered.delete(remembered.keys().next().value!);
    return derived;
  };
}
