import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreExchange } from '../../src/exchange/exchange.ts';
import { ExchangeTimeoutError } from '../../src/exchange/errors.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { FsStore } from '../../src/store/fs-store.ts';
import { StoreThrottledError, type ObjectStore } from '../../src/store/object-store.ts';
import { storeExchangeBackend } from '../../src/exchange/backend.ts';
import { makeNotifier } from '../../src/serve/deps.ts';
import { runExchangeContract } from './contract.ts';

const body = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'fc-exchange-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

// The object store as the exchange, both ways it waits: MemoryStore polls (as OSS does), FsStore
// wakes on inotify. The Redis exchange runs the same contract in redis-exchange.test.ts.
runExchangeContract('StoreExchange over MemoryStore, polling', {
  native: false,
  setup: async () => {
    const store = new MemoryStore();
    return { ex: storeExchangeBackend().forTask(store), write: (k, b) => store.put(k, b) };
  },
});

runExchangeContract('StoreExchange over FsStore, native wait', {
  native: true,
  setup: async (rid) => {
    const store = new FsStore(dir);
    // The request's folder exists before anyone waits in it (the handler's input bundle makes it).
    await store.put(`requests/${rid}/input`, Buffer.from('x'));
    return { ex: storeExchangeBackend(makeNotifier(store)).forTask(store), write: (k, b) => store.put(k, b) };
  },
});

describe('StoreExchange details', () => {
  it('FsStore: a wait on a directory that does not exist yet still resolves (the notifier times out and retries)', async () => {
    const store = new FsStore(dir);
    const ex = new StoreExchange(store, { notifier: (k, ms) => store.changed(k, ms) });
    const key = 'requests/fresh/b-s0t0';
    const t0 = performance.now();
    setTimeout(() => void store.put(key, body), 50);
    assert.deepEqual(await ex.wait(key, { deadline: Date.now() + 5000, range: { start: 0, end: 4 } }), body.subarray(0, 4));
    assert.ok(performance.now() - t0 < 50 + 600);
    assert.equal(ex.counters.polls, 0);
  });

  it('store errors other than a missing key are not waited out', async () => {
    const store = new MemoryStore();
    const flaky: ObjectStore = {
      get: async (k) => { throw new StoreThrottledError(`throttled ${k}`, { key: k }); },
      put: (k, b) => store.put(k, b), delete: (k) => store.delete(k), list: (p) => store.list(p),
    };
    const ex = new StoreExchange(flaky);
    const t0 = performance.now();
    await assert.rejects(ex.wait('requests/r/b-s0t0', { deadline: Date.now() + 5000 }), StoreThrottledError);
    assert.ok(performance.now() - t0 < 500);
    assert.equal(ex.counters.polls, 0);
  });

  it('polling backs off to its cap', async () => {
    const store = new MemoryStore();
    const ex = new StoreExchange(store, { pollMs: { first: 1, max: 4 } });
    await assert.rejects(ex.wait('requests/r/none', { deadline: Date.now() + 200 }), ExchangeTimeoutError);
    // ~200 ms at <= 6 ms per poll (jitter 0.5-1.5 of the 4 ms cap): dozens of polls.
    assert.ok(ex.counters.polls >= 25, `polls ${ex.counters.polls}`);
  });
});
