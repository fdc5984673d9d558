import { z } from 'zod';
import type { ObjectStore } from '../store/object-store.ts';
import { StoreExchange, type Exchange, type ExchangeCounters, type Notifier } from './exchange.ts';

/** Exchange traffic that is not object-store traffic (the Redis exchange's), per task or request. */
export const exchangeTrafficSchema = z.object({
  requests: z.number().int().nonnegative(),
  bytesRead: z.number().nonnegative(),
  bytesWritten: z.number().nonnegative(),
}).strict();
export type ExchangeTraffic = z.infer<typeof exchangeTrafficSchema>;

/** One task's view of the exchange: its counters are that task's alone. */
export interface TaskExchange extends Exchange {
  readonly counters: ExchangeCounters;
  /** Traffic outside the object store; undefined where the exchange is the store (already counted there). */
  traffic(): ExchangeTraffic | undefined;
}

/**
 * What a function process holds for the whole of its life: connections, if any. Each task takes
 * its own view over the task's (counting) store; `clear` removes a request's keys when the
 * request ends, `close` releases the connections.
 */
export interface ExchangeBackend {
  readonly kind: 'store' | 'redis';
  forTask(store: ObjectStore): TaskExchange;
  clear(requestPrefix: string): Promise<void>;
  close(): Promise<void>;
}

/** The object store as the exchange (OSS polls, the filesystem store wakes on inotify). */
export function storeExchangeBackend(notifier?: Notifier): ExchangeBackend {
  return {
    kind: 'store',
    forTask(store) {
      const ex = new StoreExchange(store, { notifier });
      return Object.assign(ex, { traffic: () => undefined });
    },
    // The request's store prefix is deleted by the handler with everything else of the request.
    clear: async () => undefined,
    close: async () => undefined,
  };
}

/** Sums traffic figures, undefined when none of them is defined. */
export function addTraffic(...xs: (ExchangeTraffic | undefined)[]): ExchangeTraffic | undefined {
  const d = xs.filter((x): x is ExchangeTraffic => !!x);
  if (!d.length) return undefined;
  return d.reduce((a, x) => ({ requests: a.requests + x.requests, bytesRead: a.bytesRead + x.bytesRead, bytesWritten: a.bytesWritten + x.bytesWritten }), { requests: 0, bytesRead: 0, bytesWritten: 0 });
}
