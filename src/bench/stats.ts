/**
 * Summary statistics for the bench. Percentiles use the nearest-rank method (no interpolation):
 * p-th percentile = the ceil(p/100 * n)-th smallest sample, so every reported latency is one
 * that was observed, and p99 of fewer than 100 samples is the maximum.
 */

export function percentile(xs: readonly number[], p: number): number | undefined {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is outside 0..100`);
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const rank = Math.max(1, Math.ceil((p / 100) * v.length));
  return v[rank - 1];
}

export const median = (xs: readonly number[]) => percentile(xs, 50);

export function mean(xs: readonly number[]): number | undefined {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : undefined;
}

export function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
}

export function max(xs: readonly number[]): number | undefined {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length ? Math.max(...v) : undefined;
}

/**
 * Completed requests per second over the measured window: from the first request's start to the
 * last request's end (client clock). Failed requests are not counted as completed.
 */
export function throughput(samples: readonly { startMs: number; endMs: number; ok: boolean }[]): number | undefined {
  if (samples.length === 0) return undefined;
  const t0 = Math.min(...samples.map((s) => s.startMs));
  const t1 = Math.max(...samples.map((s) => s.endMs));
  const ok = samples.filter((s) => s.ok).length;
  if (t1 <= t0) return undefined;
  return ok / ((t1 - t0) / 1000);
}

/** a / b, undefined when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined;
  return a / b;
}
