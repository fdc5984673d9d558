import pRetry from 'p-retry';
import { FunctionCrashedError, FunctionError, FunctionNotFoundError, FunctionTimeoutError, InvokeError, PayloadTooLargeError } from './errors.ts';
import { FcApiError, FcAuthError } from './fc-errors.ts';

export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  /** Backoff before the first retry, ms; doubled each time, randomised by a factor of 1-2. */
  minMs: number;
  maxMs: number;
}

export const INVOKE_RETRY: RetryPolicy = { retries: 5, minMs: 50, maxMs: 2000 };

/**
 * Whether a failed invocation may be sent again. An instance that crashed (OOM included), timed
 * out or was throttled did not give an answer, and the work is idempotent (see keys.ts), so
 * another attempt can. A function that threw, an unknown function, an oversized payload or bad
 * credentials would fail the same way again.
 */
export function retryableInvoke(e: unknown): boolean {
  if (e instanceof FunctionCrashedError || e instanceof FunctionTimeoutError) return true;
  if (e instanceof FunctionError || e instanceof FunctionNotFoundError || e instanceof PayloadTooLargeError || e instanceof FcAuthError) return false;
  if (e instanceof FcApiError) return e.statusCode === 429 || e.statusCode >= 500 || /Throttl|ResourceExhausted/i.test(e.code);
  // The call itself failed (connection reset, socket timeout): its outcome is unknown.
  return e instanceof InvokeError;
}

/**
 * Runs `attempt` until it succeeds, fails for good, runs out of retries, or the next backoff
 * would pass `deadline` (epoch ms). `onRetry` hears of each failure that is retried.
 */
export function withRetries<T>(
  attempt: (n: number) => Promise<T>, policy: RetryPolicy,
  o: { deadline: number; retryable: (e: unknown) => boolean; onRetry?: (e: unknown, n: number) => void },
): Promise<T> {
  return pRetry((n) => attempt(n), {
    retries: policy.retries, minTimeout: policy.minMs, maxTimeout: policy.maxMs, factor: 2, randomize: true,
    shouldRetry: ({ error }) => o.retryable(error) && Date.now() + policy.minMs < o.deadline,
    onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
      if (retriesLeft > 0 && o.retryable(error) && Date.now() + policy.minMs < o.deadline) o.onRetry?.(error, attemptNumber);
    },
  });
}
