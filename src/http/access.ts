/**
 * API keys: with keys configured, every request but the health checks must carry one, as
 * `Authorization: Bearer <key>` or `x-api-key: <key>`. Anything else is a 401 JSON error that
 * never repeats what the client sent.
 *
 * Keys are compared in constant time: the presented key and every configured key are hashed to
 * SHA-256 (equal lengths, so timingSafeEqual applies, and the key's length leaks nothing), and
 * every configured key is compared, without stopping at the first match.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { HttpError } from './errors.ts';

/**
 * Paths that stay open with keys configured: orchestrators probe health without credentials,
 * and scrapers read /metrics (counts and latencies, no client data; see routes.ts).
 */
export function isOpenPath(path: string): boolean {
  return path === '/v2/health/live' || path === '/v2/health/ready' || path === '/healthz' || path.endsWith('/healthz') || path === '/metrics';
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export const unauthorized = (message: string) =>
  new HttpError(401, message, { code: 'unauthorized', headers: { 'www-authenticate': 'Bearer realm="fc-tiled-cnn"' } });

type HeaderLookup = (name: string) => string | undefined;

/** The key a request presents, or undefined; a malformed Authorization header is a 401. */
export function presentedKey(header: HeaderLookup): string | undefined {
  const auth = header('authorization');
  if (auth !== undefined && auth !== '') {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth);
    if (!m) throw unauthorized('the Authorization header must be "Bearer <API key>"');
    return m[1];
  }
  const x = header('x-api-key');
  return x === undefined || x === '' ? undefined : x.trim();
}

export class ApiKeys {
  private readonly hashes: Buffer[];

  constructor(keys: readonly string[]) {
    this.hashes = keys.map(digest);
  }

  /** False when no keys are configured (access is open). */
  get enabled(): boolean {
    return this.hashes.length > 0;
  }

  /** Constant time in the key's content; true if it is one of the configured keys. */
  matches(key: string): boolean {
    const h = digest(key);
    let ok = false;
    for (const k of this.hashes) ok = timingSafeEqual(h, k) || ok;
    return ok;
  }

  /** Throws a 401 HttpError unless the request may proceed. */
  check(path: string, header: HeaderLookup): void {
    if (!this.enabled || isOpenPath(path)) return;
    const key = presentedKey(header);
    if (key === undefined) throw unauthorized('an API key is required: send "Authorization: Bearer <key>" or "x-api-key: <key>"');
    if (!this.matches(key)) throw unauthorized('invalid API key');
  }
}
