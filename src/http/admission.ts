/**
 * Admission control and request deadlines for one handler instance (locally: the gateway in
 * front of the handler pool).
 *
 * At most `maxInflight` inference requests run at once and at most `maxQueue` more wait, in
 * arrival order. Beyond that, or when a request could not finish before its deadline (the
 * expected wait for a slot plus the expected service time, from the last requests' service
 * times), the answer is 503 with `Retry-After` at once: a bounded queue keeps the latency of the
 * requests that are admitted bounded too, instead of letting every request wait longer as load
 * grows. An idle instance always admits: only running requests teach it how long they take, and
 * the backend refuses those its plan predicts too slow (src/serve/backend.ts).
 *
 * Deadlines: a request gets REQUEST_TIMEOUT_MS, or less if the client asks with the header
 * `x-request-timeout-ms: <ms>` (a positive integer; larger values are cut to the server's).
 */
import { z } from 'zod';
import { HttpError, badRequest, overloaded } from './errors.ts';

export const REQUEST_TIMEOUT_HEADER = 'x-request-timeout-ms';

export const admissionOptionsSchema = z.object({
  maxInflight: z.number().int().min(1),
  maxQueue: z.number().int().min(0),
  /** Weight of the newest service time in the running estimate. */
  alpha: z.number().gt(0).max(1).default(0.2),
}).strict();
export type AdmissionOptions = z.input<typeof admissionOptionsSchema>;

export interface AdmissionStats {
  inflight: number;
  queued: number;
  admitted: number;
  /** Refused because the queue was full. */
  rejectedFull: number;
  /** Refused (on arrival or while queued) because the deadline could not be met. */
  rejectedDeadline: number;
  /** Running estimate of one request's service time, ms (undefined before the first). */
  serviceMs: number | undefined;
}

interface Waiter {
  deadline: number;
  resolve: () => void;
  reject: (e: HttpError) => void;
  timer?: NodeJS.Timeout;
}

/**
 * The absolute deadline (epoch ms) of a request arriving at `now`: the server's timeout, or the
 * client's shorter one. A malformed header is a 400 naming it.
 */
export function requestDeadline(header: string | undefined, serverTimeoutMs: number, now = Date.now()): number {
  if (header === undefined || header === '') return now + serverTimeoutMs;
  if (!/^\d{1,12}$/.test(header.trim()) || Number(header) < 1) {
    throw badRequest(`header ${REQUEST_TIMEOUT_HEADER} must be a positive integer number of milliseconds, got ${JSON.stringify(header.slice(0, 40))}`, { code: 'invalid_timeout' });
  }
  return now + Math.min(Number(header), serverTimeoutMs);
}

export class Admission {
  readonly maxInflight: number;
  readonly maxQueue: number;
  private readonly alpha: number;
  private inflight = 0;
  private readonly queue: Waiter[] = [];
  private serviceMs: number | undefined;
  private readonly counts = { admitted: 0, rejectedFull: 0, rejectedDeadline: 0 };

  constructor(opts: AdmissionOptions) {
    const o = admissionOptionsSchema.parse(opts);
    this.maxInflight = o.maxInflight;
    this.maxQueue = o.maxQueue;
    this.alpha = o.alpha;
  }

  stats(): AdmissionStats {
    return { inflight: this.inflight, queued: this.queue.length, ...this.counts, serviceMs: this.serviceMs };
  }

  /** Expected time until a request queued at `position` (0 = next) gets a slot. */
  private waitMs(position: number): number {
    return this.serviceMs === undefined ? 0 : ((position + 1) * this.serviceMs) / this.maxInflight;
  }

  /**
   * Throws the 503 `run` would give if called now (the queue is full, or the deadline cannot be
   * met): lets a caller refuse before it has read a large body. `run` decides again.
   */
  check(deadline = Infinity): void {
    if (this.inflight < this.maxInflight && this.queue.length === 0) return;
    if (this.queue.length >= this.maxQueue) {
      this.counts.rejectedFull++;
      throw this.fullError();
    }
    const wait = this.waitMs(this.queue.length);
    if (this.serviceMs !== undefined && Date.now() + wait + this.serviceMs > deadline) throw this.deadlineError(deadline - Date.now(), wait);
  }

  private fullError(): HttpError {
    return overloaded(`server busy: ${this.inflight} requests running and ${this.queue.length} waiting (the limits are ${this.maxInflight} and ${this.maxQueue}); retry later`,
      this.waitMs(this.queue.length), 'overloaded', { inflight: this.inflight, queued: this.queue.length });
  }

  /** Runs `fn` once admitted; throws a 503 HttpError if it is not. */
  async run<T>(fn: () => Promise<T>, deadline = Infinity): Promise<T> {
    await this.acquire(deadline);
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      const ms = performance.now() - t0;
      this.serviceMs = this.serviceMs === undefined ? ms : this.serviceMs + this.alpha * (ms - this.serviceMs);
      this.inflight--;
      this.next();
    }
  }

  private acquire(deadline: number): Promise<void> {
    const now = Date.now();
    const idle = this.inflight === 0;
    if (this.inflight < this.maxInflight && this.queue.length === 0) {
      if (!idle && this.serviceMs !== undefined && now + this.serviceMs > deadline) throw this.deadlineError(deadline - now, 0);
      this.inflight++;
      this.counts.admitted++;
      return Promise.resolve();
    }
    if (this.queue.length >= this.maxQueue) {
      this.counts.rejectedFull++;
      throw this.fullError();
    }
    const wait = this.waitMs(this.queue.length);
    if (this.serviceMs !== undefined && now + wait + this.serviceMs > deadline) throw this.deadlineError(deadline - now, wait);
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { deadline, resolve, reject };
      if (Number.isFinite(deadline)) {
        w.timer = setTimeout(() => {
          const i = this.queue.indexOf(w);
          if (i >= 0) this.queue.splice(i, 1);
          reject(this.deadlineError(0, this.waitMs(i)));
        }, Math.max(0, deadline - now));
      }
      this.queue.push(w);
    });
  }

  private next(): void {
    while (this.queue.length > 0 && this.inflight < this.maxInflight) {
      const w = this.queue.shift()!;
      clearTimeout(w.timer);
      const left = w.deadline - Date.now();
      if (this.serviceMs !== undefined && this.serviceMs > left && this.inflight > 0) {
        w.reject(this.deadlineError(left, 0));
        continue;
      }
      this.inflight++;
      this.counts.admitted++;
      w.resolve();
    }
  }

  private deadlineError(leftMs: number, waitMs: number): HttpError {
    this.counts.rejectedDeadline++;
    const service = Math.round(this.serviceMs ?? 0);
    return overloaded(
      `request cannot finish within its deadline: ${Math.max(0, Math.round(leftMs))} ms left, expected ${Math.round(waitMs)} ms waiting plus ${service} ms running; retry later or with a longer ${REQUEST_TIMEOUT_HEADER}`,
      waitMs + service, 'deadline_unmeetable', { leftMs: Math.max(0, Math.round(leftMs)), expectedWaitMs: Math.round(waitMs), expectedServiceMs: service },
    );
  }
}
