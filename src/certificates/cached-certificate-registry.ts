import type { InvalidatingCache } from '../caching/invalidating-cache.ts';
import type { CertificateRegistry, CertificateStatus } from './certificate-registry.ts';

/*
 * The registry's status of a certificate, read on every request that presents one (the certificate
 * gate) and every introspection of a bound token, kept in memory (topic `certificate`). A change
 * through this registry forgets the entry before the call returns; a change anywhere else is
 * announced by Postgres (src/caching/invalidation.ts).
 */

export type CertificateStatusCache = InvalidatingCache<{ status: CertificateStatus; lastCheckResult?: string } | undefined>;

export function cachedCertificateRegistry(registry: CertificateRegistry, cache: CertificateStatusCache): CertificateRegistry {
  const after = async <T>(thumbprint: string, change: Promise<T>): Promise<T> => {
    try {
      return await change;
    } finally {
      // Also when the change failed half-way: forgetting is always safe.
      cache.invalidate(thumbprint);
    }
  };
  return {
    ...registry,
    statusOf: (thumbprint) => cache.get(thumbprint, () => registry.statusOf(thumbprint)),
    register: (profile, link) => after(profile.thumbprint, registry.register(profile, link)),
    revoke: (thumbprint, by) => after(thumbprint, registry.revoke(thumbprint, by)),
    retire: (thumbprint, reason) => after(thumbprint, registry.retire(thumbprint, reason)),
    recordCheck: (thumbprint, result) => after(thumbprint, registry.recordCheck(thumbprint, result)),
  };
}
