import { DomainError } from './domain-error.ts';

/** Raised by a store when its backend cannot be reached; mapped to a 503 at the edge. */
export class StorageUnavailableError extends DomainError {
  constructor(backend: string, options?: { cause?: unknown }) {
    super('unavailable', `${backend} is unavailable`, {
      ...(options?.cause === undefined ? {} : { cause: options.cause }),
      // The backend's name and address are for the log, not the client.
      description: 'a storage backend is unavailable; retry later',
      outcome: 'storage_unavailable',
    });
    this.name = 'StorageUnavailableError';
  }
}
