/**
 * Minimal object-store interface used by core logic to exchange tensor tiles.
 * Implementations: MemoryStore (tests), FsStore (local default), OSS adapter.
 * All errors are StoreError subclasses from ./errors.ts.
 */
export interface ObjectStore {
  /**
   * Read an object, or the byte range [start, end) of it (end exclusive).
   * Throws ObjectNotFoundError if missing, InvalidRangeError (a StoreError) if
   * the range is malformed or not within the object (0 <= start < end <= size).
   */
  get(key: string, range?: { start: number; end: number }): Promise<Buffer>;
  /** Create or replace an object atomically: readers see the old or the new body, never a mix. */
  put(key: string, body: Buffer | Uint8Array): Promise<void>;
  /** Delete objects. Missing keys are not an error. */
  delete(keys: string[]): Promise<void>;
  /** All keys starting with `prefix` (plain string prefix, not segment-aware), sorted by UTF-8 bytes. */
  list(prefix: string): Promise<string[]>;
}

export type ByteRange = { start: number; end: number };

export {
  StoreError,
  ObjectNotFoundError,
  StoreThrottledError,
  StoreTimeoutError,
  StoreAuthError,
  StoreUnavailableError,
  StoreIntegrityError,
  isRetryableStoreError,
  InvalidKeyError,
  InvalidRangeError,
  validateKey,
  validatePrefix,
  validateRange,
  compareKeys,
  MAX_KEY_BYTES,
} from './errors.ts';
