/**
 * The behavioural contract every exchange backend passes (object store polling, object store
 * with a native wait, Redis). Usage (in a *.test.ts file):
 *   runExchangeContract('Redis', { native: true, setup: async (rid) => ({ ex, write }) });
 * `ex` is the waiting task's exchange; `write` writes as another invocation would (its own
 * exchange or connection). Keys are `requests/<rid>/...`, one rid per test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TaskExchange } from '../../src/exchange/backend.ts';
import { ExchangeAbortedError, ExchangeError, ExchangeTimeoutError } from '../../src/exchange/errors.ts';

export interface ExchangeUnderTest {
  ex: TaskExchange;
  write(key: string, body: Buffer): Promise<void>;
}

export interface ExchangeContractOptions {
  /** Woken by the write itself (no polls); polling backends back off up to 200 ms. */
  native: boolean;
  setup(rid: string): Promise<ExchangeUnderTest>;
  skip?: string | false;
}

const body = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
let n = 0;

export function runExchangeContract(name: string, o: ExchangeContractOptions): void {
  const native = o.native;
  const setup = async () => {
    const rid = `r${process.pid}x${++n}`;
    const u = await o.setup(rid);
    return { ...u, key: `requests/${rid}/b-s1t2`, abortKey: `requests/${rid}/abort` };
  };

  describe(`Exchange contract: ${name}`, { skip: o.skip }, () => {
    it('wait resolves once the key is written, with just the byte range asked for', async () => {
      const { ex, write, key } = await setup();
      const t0 = performance.now();
      setTimeout(() => void write(key, body), 120);
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
      // Ranges at the ends are exact too.
      assert.deepEqual([...await ex.wait(key, { deadline: Date.now() + 1000, range: { start: 0, end: 1 } })], [0]);
      assert.deepEqual([...await ex.wait(key, { deadline: Date.now() + 1000, range: { start: 96, end: 100 } })], [96, 97, 98, 99]);
    });

    it('one write wakes every waiter of the key, each with its own range', async () => {
      const { ex, write, key } = await setup();
      setTimeout(() => void write(key, body), 80);
      const ranges = [{ start: 0, end: 10 }, { start: 10, end: 50 }, { start: 50, end: 100 }, { start: 25, end: 26 }];
      const t0 = performance.now();
      const got = await Promise.all(ranges.map((range) => ex.wait(key, { deadline: Date.now() + 5000, range })));
      got.forEach((g, i) => assert.deepEqual([...g], [...body.subarray(ranges[i].start, ranges[i].end)]));
      assert.ok(performance.now() - t0 < 80 + (native ? 400 : 700));
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
      const { ex, write, key, abortKey } = await setup();
      const t0 = performance.now();
      setTimeout(() => void write(abortKey, Buffer.from('abort')), 100);
      await assert.rejects(ex.wait(key, { deadline: Date.now() + 20_000, abortKey, what: 'the partials' }), (e: Error) => {
        assert.ok(e instanceof ExchangeAbortedError && e instanceof ExchangeError, e.name);
        assert.match(e.message, /the partials/);
        assert.match(e.message, /aborted/);
        return true;
      });
      const ms = performance.now() - t0;
      // Native waits check the abort key on every wake-up; polling, every 4th miss.
      assert.ok(ms < 100 + (native ? 600 : 2000), `gave up ${Math.round(ms - 100)} ms after the abort`);
      // An abort key already there: the wait gives up within a few misses.
      const t1 = performance.now();
      await assert.rejects(ex.wait(`${key}x`, { deadline: Date.now() + 20_000, abortKey }), ExchangeAbortedError);
      assert.ok(performance.now() - t1 < (native ? 600 : 2000));
    });

    it(native ? 'counts no polls: the native wait costs no reads' : 'counts every failed poll (a billed GET on OSS)', async () => {
      const { ex, write, key } = await setup();
      setTimeout(() => void write(key, body), 150);
      await ex.wait(key, { deadline: Date.now() + 5000 });
      if (native) assert.equal(ex.counters.polls, 0);
      // Backoff from 5 ms doubling: 150 ms are a handful of polls, not one per millisecond.
      else assert.ok(ex.counters.polls >= 2 && ex.counters.polls <= 12, `polls ${ex.counters.polls}`);
    });

    it('put is visible to waiters, and a second put of the same key replaces it (a retried tile)', async () => {
      const { ex, key } = await setup();
      await ex.put(key, body);
      assert.deepEqual(await ex.wait(key, { deadline: Date.now() + 1000, range: { start: 5, end: 7 } }), body.subarray(5, 7));
      const again = Buffer.from(body).reverse();
      await ex.put(key, again);
      assert.deepEqual(await ex.wait(key, { deadline: Date.now() + 1000 }), again);
    });
  });
}
