import { randomBytes } from 'node:crypto';
/**
 * Alibaba Cloud credentials for the cloud adapters (OSS store, FC invoker).
 *
 * A CredentialsProvider is asked for credentials whenever an adapter needs
 * them; adapters wrap it in a CachedCredentials so that long-lived clients
 * re-read STS credentials shortly before they expire.
 */

export interface Credentials {
  accessKeyId: string;
  accessKeySecret: string;
  /** STS security token (temporary credentials), sent as `x-oss-security-token` / `x-acs-security-token`. */
  securityToken?: string;
  /** When temporary credentials stop working; undefined for long-term keys. */
  expiration?: Date;
}

export interface CredentialsProvider {
  get(): Promise<Credentials>;
}

/** Missing or malformed credentials (not a remote authentication failure). */
export class CredentialsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CredentialsError';
  }
}

export const ENV_ACCESS_KEY_ID = 'ALIBABA_CLOUD_ACCESS_KEY_ID';
export const ENV_ACCESS_KEY_SECRET = 'ALIBABA_CLOUD_ACCESS_KEY_SECRET';
export const ENV_SECURITY_TOKEN = 'ALIBABA_CLOUD_SECURITY_TOKEN';

/**
 * Credentials from environment variables (ALIBABA_CLOUD_ACCESS_KEY_ID,
 * ALIBABA_CLOUD_ACCESS_KEY_SECRET, optional ALIBABA_CLOUD_SECURITY_TOKEN).
 * Function Compute sets these for the function's role. The variables are read
 * on every `get()`, so a refresh picks up new values.
 */
export function envCredentials(env: NodeJS.ProcessEnv = process.env): CredentialsProvider {
  return {
    async get() {
      const accessKeyId = env[ENV_ACCESS_KEY_ID]?.trim();
      const accessKeySecret = env[ENV_ACCESS_KEY_SECRET]?.trim();
      if (!accessKeyId || !accessKeySecret) {
        const missing = [!accessKeyId && ENV_ACCESS_KEY_ID, !accessKeySecret && ENV_ACCESS_KEY_SECRET].filter(Boolean).join(' and ');
        throw new CredentialsError(`no Alibaba Cloud credentials: ${missing} not set`);
      }
      const securityToken = env[ENV_SECURITY_TOKEN]?.trim() || undefined;
      return securityToken ? { accessKeyId, accessKeySecret, securityToken } : { accessKeyId, accessKeySecret };
    },
  };
}

/** Fixed credentials (validated now; each `get()` returns a copy). */
export function staticCredentials(c: Credentials): CredentialsProvider {
  const fixed = checkCredentials(c, 'staticCredentials');
  return { get: async () => ({ ...fixed }) };
}

/** Validate the shape of credentials returned by a provider; returns a normalized copy (trimmed strings). */
export function checkCredentials(c: unknown, source = 'credentials provider'): Credentials {
  if (typeof c !== 'object' || c === null) throw new CredentialsError(`${source} returned ${String(c)}, expected credentials`);
  const { accessKeyId, accessKeySecret, securityToken, expiration } = c as Record<string, unknown>;
  if (typeof accessKeyId !== 'string' || !accessKeyId.trim()) throw new CredentialsError(`${source}: accessKeyId is missing`);
  if (typeof accessKeySecret !== 'string' || !accessKeySecret.trim()) throw new CredentialsError(`${source}: accessKeySecret is missing`);
  if (securityToken !== undefined && typeof securityToken !== 'string') throw new CredentialsError(`${source}: securityToken must be a string`);
  if (expiration !== undefined && !(expiration instanceof Date && !Number.isNaN(expiration.getTime()))) {
    throw new CredentialsError(`${source}: expiration must be a valid Date`);
  }
  const out: Credentials = { accessKeyId: accessKeyId.trim(), accessKeySecret: accessKeySecret.trim() };
  if (securityToken?.trim()) out.securityToken = securityToken.trim();
  if (expiration) out.expiration = expiration;
  return out;
}

/** True if the credentials expire within `marginMs` of `now` (never for credentials without an expiration). */
export function expiresWithin(c: Credentials, marginMs: number, now: number = Date.now()): boolean {
  return c.expiration !== undefined && c.expiration.getTime() - now <= marginMs;
}

/** Same key pair and token (expiration ignored). */
export function sameCredentials(a: Credentials, b: Credentials): boolean {
  return a.accessKeyId === b.accessKeyId && a.accessKeySecret === b.accessKeySecret && (a.securityToken ?? '') === (b.securityToken ?? '');
}

export interface CachedCredentialsOptions {
  /** Re-read the provider when the cached credentials expire within this margin. Default 5 minutes. */
  refreshMarginMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * Caches a provider's credentials and re-reads them when they come within
 * `refreshMarginMs` of their expiration (or after `invalidate()`). Concurrent
 * callers share one refresh. The returned object keeps its identity until the
 * next refresh, so callers can rebuild clients only when it changes.
 * If the provider keeps returning credentials that expire within the margin,
 * it is re-read on every `get()` (that is what such a provider asks for).
 */
export class CachedCredentials implements CredentialsProvider {
  private readonly provider: CredentialsProvider;
  private readonly marginMs: number;
  private readonly now: () => number;
  private cached: Credentials | undefined;
  private pending: Promise<Credentials> | undefined;
  private generation = 0;
  /** Number of times the provider was read (for diagnostics and tests). */
  reads = 0;

  constructor(provider: CredentialsProvider, options: CachedCredentialsOptions = {}) {
    if (!provider || typeof provider.get !== 'function') throw new TypeError('CachedCredentials: provider with get() is required');
    this.provider = provider;
    this.marginMs = options.refreshMarginMs ?? 5 * 60_000;
    this.now = options.now ?? Date.now;
  }

  async get(): Promise<Credentials> {
    const c = this.cached;
    if (c && !expiresWithin(c, this.marginMs, this.now())) return c;
    return this.refresh();
  }

  /** Forget the cached credentials: the next `get()` re-reads the provider. */
  invalidate(): void {
    this.cached = undefined;
    this.pending = undefined;
    this.generation++;
  }

  private refresh(): Promise<Credentials> {
    if (this.pending) return this.pending;
    const generation = this.generation;
    const p = (async () => {
      this.reads++;
      let fresh: unknown;
      try {
        fresh = await this.provider.get();
      } catch (err) {
        if (err instanceof CredentialsError) throw err;
        throw new CredentialsError(`credentials provider failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      }
      const c = checkCredentials(fresh);
      if (generation === this.generation) this.cached = c;
      return c;
    })();
    this.pending = p;
    const clear = () => {
      if (this.pending === p) this.pending = undefined;
    };
    p.then(clear, clear);
    return p;
  }
}

/**
 * Throwaway credentials for the loopback OSS/FC servers: STS-style (with a security token) by
 * default, like a function role's, or long-term keys. Explicit values override the random ones.
 */
export function emulatorCredentials(o: { sts?: boolean; accessKeyId?: string; accessKeySecret?: string; securityToken?: string } = {}): Credentials {
  const sts = o.sts ?? true;
  const c: Credentials = {
    accessKeyId: o.accessKeyId ?? `${sts ? 'STS.' : 'LTAI'}${randomBytes(8).toString('hex')}`,
    accessKeySecret: o.accessKeySecret ?? randomBytes(15).toString('base64'),
  };
  if (sts) c.securityToken = o.securityToken ?? `CAIS${randomBytes(24).toString('base64')}`;
  return c;
}
