import type { ObjectStore } from './object-store.ts';
import { isRetryObservable } from './retrying-store.ts';

export interface StoreCounters { gets: number; puts: number; deletes: number; lists: number; bytesRead: number; bytesWritten: number; retries: number }

export const emptyCounters = (): StoreCounters => ({ gets: 0, puts: 0, deletes: 0, lists: 0, bytesRead: 0, bytesWritten: 0, retries: 0 });

/**
 * Wraps a store and counts requests and bytes, for per-request cost reports. Over a
 * RetryingStore it also counts the retries made for this wrapper's operations alone (the
 * retrying store is shared by every request of the process).
 */
export class CountingStore implements ObjectStore {
  readonly counters = emptyCounters();
  private readonly inner: ObjectStore;
  constructor(inner: ObjectStore) {
    this.inner = isRetryObservable(inner) ? inner.observed(() => { this.counters.retries++; }) : inner;
  }
  async get(key: string, range?: { start: number; end: number }) {
    const b = await this.inner.get(key, range);
    this.counters.gets++;
    this.counters.bytesRead += b.length;
    return b;
  }
  async put(key: string, body: Buffer | Uint8Array) {
    await this.inner.put(key, body);
    this.counters.puts++;
    this.counters.bytesWritten += body.length;
  }
  async delete(keys: string[]) {
    await this.inner.delete(keys);
    this.counters.deletes++;
  }
  async list(prefix: string) {
    this.counters.lists++;
    return this.inner.list(prefix);
  }
}
