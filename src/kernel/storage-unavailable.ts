/** Raised by a store when its backend cannot be reached; mapped to a 503 at the edge. */
export class StorageUnavailableError extends Error {
  constructor(backend: string, options?: { cause?: unknown }) {
    super(`${backend} is unavailable`, options);
    this.name = 'StorageUnavailableError';
  }
}
