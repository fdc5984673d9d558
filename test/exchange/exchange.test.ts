import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreExchange } from '../../src/exchange/exchange.ts';
import { ExchangeAbortedError, ExchangeError, ExchangeTimeoutError } from '../../src/exchange/errors.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { FsStore } from '../../src/store/fs-store.ts';
import { StoreThrottledError, type ObjectStore } from '../../src/store/object-store.ts';

const body = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

interface Backend { store: ObjectStore; exchange: () => StoreExchange }

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'fc-exchange-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

const backends: { name: string; native: boolean; make: () => Backend }[] = [
  {
    name: 'MemoryStore, polling', native: false,
    make: () => { const store = new MemoryStore(); return { store, exchange: () => new StoreExchange(store) }; },
  },
  {
    name: 'FsStore, native wait', native: true,
    make: () => { const store = new FsStore(dir); return { store, exchange: () => new StoreExchange(store, { notifier: (k, ms) => store.changed(k, ms) }) }; },
  },
];

let n = 0;
for (const { name, native, make } of backends) {
  describe(`StoreExchange over ${name}`, () => {
    // Each test waits in its own request directory, which exists before the wait (as the
    // handler's input bundle makes it exist for the workers).
    const setup = async () => {
      const b = make();
      const rid = `r${++n}`;
      await b.store.put(`requests/${rid}/input`, Buffer.from('x'));
      return { ...b, ex: b.exchange(), key: `requests/${rid}/b-s1t2`, abortKey: `requests/${rid}/abort` };
    };

    it('wait resolves once the key is written, with just the byte range asked for', async () => {
      const { store, ex, key } = await setup();
      const t0 = performance.now();
      setTimeout(() => void store.put(key, body), 120);
      const got = await ex.wait(key, { deadline: Date.now() + 5000, range: { start: 10, end: 30 }, what: 'the strips' });
      const ms = performance.now() - t0;
      assert.deepEqual([...got], [...body.subarray(10, 30)]);
      assert.ok(ms >= 110, `resolved after ${ms} ms, before the write`);
      // Native: woken by the write. Polling: within one backoff interval (<= 1.5 x 200 ms).
      assert.ok(ms < 120 + (native ? 400 : 700), `resolved ${Math.round(ms - 120)} ms after the write`);
      assert.ok(ex.counters.waitMs >= 100, `waitMs ${ex.counters.waitMs}`);
      // Whole object without a range; an existing key needs no wait at all.
      const polls = ex.counters.polls;
      assert.deepEqual(await ex.wait(key, { deadline: Date.now() + 1000 }), body);
      assert.equal(ex.counters.polls, polls);
    });

    it('throws ExchangeTimeoutError at the deadline, naming what it waited for', async () => {
      const { ex, key } = await setup();
      const t0 = performance.now();
      await assert.rejects(ex.wait(key, { deadline: Date.now() + 200, what: "worker 3's strips of stage 2 (chain 0, request r)" }), (e: Error) => {
        assert.ok(e instanceof ExchangeTimeoutError && e instanceof ExchangeError, e.name);
        assert.match(e.message, /timed out waiting for worker 3's strips of stage 2 \(chain 0, request r\)/);
        assert.equal((e as ExchangeTimeoutError).key, key);
        return true;
      });
      const ms = performance.now() - t0;
      assert.ok(ms >= 190 && ms < 200 + 400, `gave up after ${Math.round(ms)} ms with a 200 ms deadline`);
      // Without `what`, the key.
      await assert.rejects(ex.wait(key, { deadline: Date.now() + 30 }), (e: Error) => e instanceof ExchangeTimeoutError && e.message.includes(key));
    });

    it('throws ExchangeAbortedError soon after the abort key appears, long before the deadline', async () => {
      const { store, ex, key, abortKey } = await setup();
      const t0 = performance.now();
      setTimeout(() => void store.put(abortKey, Buffer.from('abort')), 100);
      await assert.rejects(ex.wait(key, { deadline: Date.now() + 20_000, abortKey, what: 'the partials' }), (e: Error) => {
        assert.ok(e instanceof ExchangeAbortedError && e instanceof ExchangeError, e.name);
        assert.match(e.message, /the partials/);
        assert.match(e.message, /aborted/);
        return true;
      });
      const ms = performance.now() - t0;
      // The abort key is checked every 4th miss: ~1 s at most with the native wait's 250 ms naps.
      assert.ok(ms < 100 + 2000, `gave up ${Math.round(ms - 100)} ms after the abort`);
      // An abort key already there: the wait gives up within a few misses.
      const t1 = performance.now();
      await assert.rejects(ex.wait(`${key}x`, { deadline: Date.now() + 20_000, abortKey }), ExchangeAbortedError);
      assert.ok(performance.now() - t1 < 2000);
    });

    it(native ? 'counts no polls: the native wait costs no reads' : 'counts every failed poll (a billed GET on OSS)', async () => {
      const { store, ex, key } = await setup();
      setTimeout(() => void store.put(key, body), 150);
      await ex.wait(key, { deadline: Date.now() + 5000 });
      if (native) assert.equal(ex.counters.polls, 0);
      // Backoff from 5 ms doubling: 150 ms are a handful of polls, not one per millisecond.
      else assert.ok(ex.counters.polls >= 2 && ex.counters.polls <= 12, `polls ${ex.counters.polls}`);
    });
  });
}

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
