import type { ByteRange, ObjectStore } from '../store/object-store.ts';
import { ObjectNotFoundError } from '../store/object-store.ts';
import { ExchangeAbortedError, ExchangeTimeoutError } from './errors.ts';

/**
 * What workers of a chain use to hand each other halo strips and reduction partials: write a
 * key once, and wait for a key another invocation writes. Backends: the object store (OSS
 * polls with backoff; the filesystem store wakes on directory events).
 */
export interface Exchange {
  put(key: string, body: Buffer): Promise<void>;
  /**
   * Resolves with the object (or `range` of it) once it exists. Throws ExchangeTimeoutError at
   * `deadline` (epoch ms), and ExchangeAbortedError as soon as `abortKey` exists.
   */
  wait(key: string, opts: { deadline: number; range?: ByteRange; abortKey?: string; what?: string }): Promise<Buffer>;
}

/** Wakes a waiter when something may have changed near `key` (a native wait), or after `ms`. */
export type Notifier = (key: string, ms: number) => Promise<void>;

export interface StoreExchangeOptions {
  /** Native wait; without one the exchange polls with exponential backoff. */
  notifier?: Notifier;
  /** Polling backoff: first interval, cap (ms). */
  pollMs?: { first: number; max: number };
}

export interface ExchangeCounters { polls: number; waitMs: number }

/**
 * Wall time blocked in waits, counted once however many waits overlap: a worker that waits for
 * three neighbours at once is blocked for the longest of the three, not their sum.
 */
export class WaitClock implements ExchangeCounters {
  polls = 0;
  private readonly intervals: [number, number][] = [];

  /** Records that a wait was blocked from `from` to `to` (performance.now() times). */
  blocked(from: number, to: number): void {
    if (to > from) this.intervals.push([from, to]);
  }

  get waitMs(): number {
    let total = 0;
    let upTo = -Infinity;
    for (const [a, b] of this.intervals.slice().sort((x, y) => x[0] - y[0])) {
      if (b <= upTo) continue;
      total += b - Math.max(a, upTo);
      upTo = b;
    }
    return total;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The exchange over an ObjectStore. Every failed poll is a billed GET on OSS, so polls are
 * counted; with a native notifier the misses cost nothing and are not.
 */
export class StoreExchange implements Exchange {
  readonly counters = new WaitClock();
  constructor(private readonly store: ObjectStore, private readonly opts: StoreExchangeOptions = {}) {}

  put(key: string, body: Buffer): Promise<void> {
    return this.store.put(key, body);
  }

  async wait(key: string, o: { deadline: number; range?: ByteRange; abortKey?: string; what?: string }): Promise<Buffer> {
    const t0 = performance.now();
    const { first, max } = this.opts.pollMs ?? { first: 5, max: 200 };
    let interval = first;
    let misses = 0;
    let attempt = t0;
    try {
      for (;;) {
        attempt = performance.now();
        try {
          return await this.store.get(key, o.range);
        } catch (e) {
          if (!(e instanceof ObjectNotFoundError)) throw e;
        }
        // Checking the abort key is free after a native wake-up; polling OSS, one in four misses.
        const checkAbort = this.opts.notifier ? true : misses % 4 === 3;
        if (o.abortKey && checkAbort && await this.exists(o.abortKey)) throw new ExchangeAbortedError(`gave up waiting for ${o.what ?? key}: the request was aborted`, { key });
        const left = o.deadline - Date.now();
        if (left <= 0) throw new ExchangeTimeoutError(`timed out waiting for ${o.what ?? key}`, { key });
        misses++;
        if (this.opts.notifier) await this.opts.notifier(key, Math.min(left, 250));
        else {
          this.counters.polls++;
          await sleep(Math.min(left, interval * (0.5 + Math.random())));
          interval = Math.min(max, interval * 2);
        }
      }
    } finally {
      // Blocked time only: the read that finally succeeds is exchange time, not waiting.
      this.counters.blocked(t0, attempt);
    }
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.store.get(key);
      return true;
    } catch (e) {
      if (e instanceof ObjectNotFoundError) return false;
      throw e;
    }
  }
}
