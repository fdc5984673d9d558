/**
 * Typed errors for ObjectStore implementations.
 *
 * Every adapter (memory, fs, OSS) maps its native failures onto these classes so
 * core logic can branch on `instanceof` without knowing which backend is in use.
 */

export interface StoreErrorOptions {
  key?: string;
  cause?: unknown;
}

/** Base class of every error raised by an ObjectStore. */
export class StoreError extends Error {
  /** The object key (or list prefix) the failed operation was about, when there is one. */
  readonly key: string | undefined;

  constructor(message: string, options: StoreErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.key = options.key;
  }
}

/** `get` of a key that does not exist. */
export class ObjectNotFoundError extends StoreError {
  constructor(key: string, options: { cause?: unknown; message?: string } = {}) {
    super(options.message ?? `object not found: ${JSON.stringify(key)}`, { key, cause: options.cause });
  }
}

/** The backend asked us to slow down (e.g. OSS 503 SlowDown / 429). Retryable. */
export class StoreThrottledError extends StoreError {}

/** The request did not complete in time. Retryable. */
export class StoreTimeoutError extends StoreError {}

/** The backend failed or the connection broke (HTTP 5xx, reset, refused). Retryable. */
export class StoreUnavailableError extends StoreError {}

/**
 * A body failed an integrity check: a CRC-64 or length that does not match, or a Content-MD5
 * the server rejected. Retryable: the bytes were damaged on the way, not at rest.
 */
export class StoreIntegrityError extends StoreError {}

/**
 * Whether repeating the same operation may succeed. Missing objects, bad keys or ranges and
 * denied credentials never get better by asking again.
 */
export function isRetryableStoreError(err: unknown): boolean {
  return err instanceof StoreThrottledError || err instanceof StoreTimeoutError
    || err instanceof StoreUnavailableError || err instanceof StoreIntegrityError;
}

/** Credentials missing/invalid or access denied. Not retryable. */
export class StoreAuthError extends StoreError {}

/** The key (or prefix) violates the key rules; see `validateKey`. */
export class InvalidKeyError extends StoreError {
  constructor(key: string, reason: string) {
    super(`invalid object key ${JSON.stringify(truncate(key, 120))}: ${reason}`, { key });
  }
}

/** A ranged `get` whose range is malformed or outside the object. */
export class InvalidRangeError extends StoreError {}

/** Maximum key length in UTF-8 bytes (OSS limit). */
export const MAX_KEY_BYTES = 1023;

/**
 * Validate an object key. Rules (a superset of OSS's, so that every backend,
 * including a filesystem, can map keys 1:1):
 * - non-empty, at most 1023 UTF-8 bytes;
 * - not absolute (no leading `/`), no backslashes, no NUL / control characters;
 * - `/`-separated segments must be non-empty (no `//`, no trailing `/`) and not `.` or `..`.
 */
export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(String(key), 'key must be a string');
  checkPath(key, false);
}

/**
 * Validate a list prefix. Same rules as keys except that the empty prefix is
 * allowed and a trailing `/` is allowed (`"a/"` lists everything under `a/`).
 */
export function validatePrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') throw new InvalidKeyError(String(prefix), 'prefix must be a string');
  if (prefix === '') return;
  checkPath(prefix, true);
}

function checkPath(key: string, isPrefix: boolean): void {
  const what = isPrefix ? 'prefix' : 'key';
  if (key.length === 0) throw new InvalidKeyError(key, `${what} must not be empty`);
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) throw new InvalidKeyError(key, `${what} is ${bytes} bytes, max ${MAX_KEY_BYTES}`);
  if (key.startsWith('/')) throw new InvalidKeyError(key, `${what} must not be absolute (leading "/")`);
  if (key.includes('\\')) throw new InvalidKeyError(key, `${what} must not contain backslashes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) throw new InvalidKeyError(key, `${what} must not contain control characters`);
  const segments = key.split('/');
  // A prefix may end with "/", which yields one trailing empty segment.
  const last = isPrefix && segments[segments.length - 1] === '' ? segments.length - 1 : segments.length;
  for (let i = 0; i < last; i++) {
    const seg = segments[i];
    if (seg === '') throw new InvalidKeyError(key, `${what} must not contain empty segments ("//" or trailing "/")`);
    if (seg === '..') throw new InvalidKeyError(key, `${what} must not contain ".." segments`);
    if (seg === '.') throw new InvalidKeyError(key, `${what} must not contain "." segments`);
  }
}

/**
 * Validate a byte range (end exclusive) against an object of `size` bytes.
 * Requires integers with 0 <= start < end <= size (an empty range cannot be
 * expressed as an HTTP Range header, so it is rejected too).
 */
export function validateRange(key: string, range: { start: number; end: number }, size: number): void {
  const { start, end } = range ?? ({} as { start: number; end: number });
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) {
    throw new InvalidRangeError(`invalid range for ${JSON.stringify(key)}: start and end must be integers (got start=${start}, end=${end})`, { key });
  }
  if (start < 0 || end <= start) {
    throw new InvalidRangeError(`invalid range for ${JSON.stringify(key)}: need 0 <= start < end (got start=${start}, end=${end}; end is exclusive)`, { key });
  }
  if (end > size) {
    throw new InvalidRangeError(`range out of bounds for ${JSON.stringify(key)}: [${start}, ${end}) exceeds object size ${size}`, { key });
  }
}

/** Compare strings by their UTF-8 byte sequence (the order OSS lists keys in). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
