import { z } from 'zod';
import type { ObjectStore } from './object-store.ts';
import { isRetryableStoreError } from './errors.ts';

/**
 * How a RetryingStore retries: at most `attempts` tries in all, sleeping a random time in
 * [0, min(maxMs, baseMs * 2^n)) before retry n ("full jitter": many clients that failed
 * together do not come back together).
 */
export const retryPolicySchema = z.object({
  attempts: z.number().int().min(1).max(20).default(5),
  baseMs: z.number().nonnegative().default(50),
  maxMs: z.number().nonnegative().default(2000),
}).strict();
export type RetryPolicy = z.infer<typeof retryPolicySchema>;

export type StoreOperation = 'get' | 'put' | 'delete' | 'list';

export interface RetryEvent { op: StoreOperation; key: string; attempt: number; delayMs: number; error: Error }

export interface RetryingStoreOptions {
  policy?: Partial<RetryPolicy>;
  /** Uniform [0, 1); tests pass a seeded one. */
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Process-wide tallies of one RetryingStore and every view of it. */
export interface RetryStats { retries: number; exhausted: number }

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Retries an ObjectStore's operations on transient failures (throttling, 5xx, timeouts,
 * broken connections, bodies that fail their CRC or length check) with a bounded count and
 * jittered backoff; never on missing objects, bad keys or ranges, or denied credentials.
 * Every operation is safe to repeat: put replaces the whole object, delete of a missing key
 * is not an error, get and list change nothing.
 *
 * When the attempts run out the last error is thrown, still of its StoreError class, with the
 * number of attempts appended to its message.
 */
export class RetryingStore implements ObjectStore {
  readonly policy: RetryPolicy;
  readonly stats: RetryStats;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    readonly inner: ObjectStore,
    options: RetryingStoreOptions = {},
    private readonly listeners: readonly ((e: RetryEvent) => void)[] = [],
    stats?: RetryStats,
  ) {
    this.policy = retryPolicySchema.parse(options.policy ?? {});
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? defaultSleep;
    this.stats = stats ?? { retries: 0, exhausted: 0 };
  }

  /**
   * The same store, also telling `onRetry` about every retry made through this view: how a
   * per-request CountingStore counts the retries of its own request only.
   */
  observed(onRetry: (e: RetryEvent) => void): RetryingStore {
    return new RetryingStore(this.inner, { policy: this.policy, random: this.random, sleep: this.sleep }, [...this.listeners, onRetry], this.stats);
  }

  get(key: string, range?: { start: number; end: number }): Promise<Buffer> {
    return this.run('get', key, () => this.inner.get(key, range));
  }

  put(key: string, body: Buffer | Uint8Array): Promise<void> {
    return this.run('put', key, () => this.inner.put(key, body));
  }

  delete(keys: string[]): Promise<void> {
    return this.run('delete', keys[0] ?? '', () => this.inner.delete(keys));
  }

  list(prefix: string): Promise<string[]> {
    return this.run('list', prefix, () => this.inner.list(prefix));
  }

  private async run<T>(op: StoreOperation, key: string, fn: () => Promise<T>): Promise<T> {
    const { attempts, baseMs, maxMs } = this.policy;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!isRetryableStoreError(err)) throw err;
        const error = err as Error;
        if (attempt >= attempts) {
          this.stats.exhausted++;
          error.message = `${error.message} (gave up after ${attempts} attempts)`;
          throw error;
        }
        const delayMs = this.random() * Math.min(maxMs, baseMs * 2 ** (attempt - 1));
        this.stats.retries++;
        for (const l of this.listeners) l({ op, key, attempt, delayMs, error });
        await this.sleep(delayMs);
      }
    }
  }
}

/** A store that can report retries to a per-request observer (see CountingStore). */
export function isRetryObservable(store: ObjectStore): store is ObjectStore & { observed(onRetry: (e: RetryEvent) => void): ObjectStore } {
  return typeof (store as { observed?: unknown }).observed === 'function';
}
