import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RedisExchangeBackend } from '../../src/exchange/redis-exchange.ts';
import { ExchangeError } from '../../src/exchange/errors.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { CountingStore } from '../../src/store/counting-store.ts';
import { loadConfig } from '../../src/config.ts';
import { makeExchange } from '../../src/serve/deps.ts';
import { requestPrefix } from '../../src/serve/keys.ts';
import { runExchangeContract } from './contract.ts';
import { skipWithoutRedis, startRedis, type RedisServer } from '../../src/bench/redis-server.ts';

// The Redis exchange against a real redis-server: the same contract as the object store's, plus
// what is Redis's own (keys deleted per request, TTLs, the input left in the object store).
let redis: RedisServer | undefined;
const backends: RedisExchangeBackend[] = [];
const backend = (o: Partial<ConstructorParameters<typeof RedisExchangeBackend>[0]> = {}) => {
  const b = new RedisExchangeBackend({ url: redis!.url, ttlMs: 60_000, ...o });
  backends.push(b);
  return b;
};

before(async () => { if (!skipWithoutRedis) redis = await startRedis(); });
after(async () => {
  for (const b of backends) await b.close();
  await redis?.stop();
});

// Waiter and writer on separate backends: two function instances with their own connections.
runExchangeContract('RedisExchange (XREAD BLOCK on per-key streams)', {
  native: true,
  skip: skipWithoutRedis,
  setup: async () => {
    const writer = backend().forTask(new MemoryStore());
    return { ex: backend().forTask(new MemoryStore()), write: (k, b) => writer.put(k, b) };
  },
});

describe('RedisExchange', { skip: skipWithoutRedis }, () => {
  const body = Buffer.from(Array.from({ length: 64 }, (_, i) => i));

  it('clear deletes every key of the request (values, streams, registry) and no other request\'s', async () => {
    const b = backend();
    const ex = b.forTask(new MemoryStore());
    await ex.put('requests/ra/b-s0t0', body);
    await ex.put('requests/ra/b-s0t1', body);
    await ex.put('requests/ra/abort', Buffer.from('abort'));
    await ex.put('requests/rb/b-s0t0', body);
    const keysOf = (rid: string) => redis!.client.keys(`*{requests/${rid}}*`);
    assert.equal((await keysOf('ra')).length, 3 * 2 + 1);
    // Every key carries the TTL: the safety net if nobody clears the request.
    for (const k of await keysOf('ra')) {
      const ttl = await redis!.client.pttl(k);
      assert.ok(ttl > 50_000 && ttl <= 60_000, `${k}: pttl ${ttl}`);
    }
    await b.clear(requestPrefix('ra'));
    assert.deepEqual(await keysOf('ra'), []);
    assert.equal((await keysOf('rb')).length, 3);
    await b.clear(requestPrefix('rb'));
    assert.deepEqual(await keysOf('rb'), []);
    await b.clear(requestPrefix('never-written'));
  });

  it('counts its own requests and bytes (not store traffic), and waitMs, never polls', async () => {
    const store = new CountingStore(new MemoryStore());
    const b = backend();
    const ex = b.forTask(store);
    const other = backend().forTask(new MemoryStore());
    setTimeout(() => void other.put('requests/rc/b-s0t0', body), 100);
    await ex.wait('requests/rc/b-s0t0', { deadline: Date.now() + 5000, range: { start: 8, end: 24 } });
    await ex.put('requests/rc/b-s1t0', body);
    const t = ex.traffic()!;
    assert.equal(t.bytesRead, 16);
    assert.equal(t.bytesWritten, 64);
    // A miss, one blocking read, the read that finds it, and the put.
    assert.ok(t.requests >= 4 && t.requests <= 6, `requests ${t.requests}`);
    assert.ok(ex.counters.waitMs >= 80 && ex.counters.polls === 0);
    assert.equal(store.counters.gets + store.counters.puts, 0, 'nothing went through the object store');
    await b.clear(requestPrefix('rc'));
  });

  it('makeExchange leaves the handler\'s input bundle in the object store and moves strips through Redis', async () => {
    const store = new CountingStore(new MemoryStore());
    const config = loadConfig({ EXCHANGE: 'redis', REDIS_URL: redis!.url });
    const b = makeExchange(config, store);
    assert.equal(b.kind, 'redis');
    backends.push(b as RedisExchangeBackend);
    const ex = b.forTask(store);
    await store.put('requests/rd/b-input', body);
    assert.deepEqual(await ex.wait('requests/rd/b-input', { deadline: Date.now() + 1000, range: { start: 1, end: 3 } }), body.subarray(1, 3));
    await ex.put('requests/rd/b-s0t0', body);
    assert.deepEqual(await store.list('requests/rd/'), ['requests/rd/b-input']);
    assert.equal((await redis!.client.keys('*{requests/rd}/b-s0t0')).length, 1);
    await b.clear(requestPrefix('rd'));
    assert.deepEqual(await redis!.client.keys('*{requests/rd}*'), []);
  });

  it('a range past the end of the value is an error naming the key, not a short read', async () => {
    const ex = backend().forTask(new MemoryStore());
    await ex.put('requests/re/b-s0t0', body);
    await assert.rejects(ex.wait('requests/re/b-s0t0', { deadline: Date.now() + 1000, range: { start: 60, end: 70 } }),
      (e: Error) => e instanceof ExchangeError && /requests\/re\/b-s0t0/.test(e.message) && /60\.\.70/.test(e.message));
  });

  it('a value that vanished after its write (request cleared) fails the wait at once', async () => {
    const b = backend();
    const ex = b.forTask(new MemoryStore());
    await ex.put('requests/rf/b-s0t0', body);
    // The value gone, its notification left: as if the request was cleared between the two.
    await redis!.client.del((b.keys('requests/rf/b-s0t0')).data);
    const t0 = performance.now();
    await assert.rejects(ex.wait('requests/rf/b-s0t0', { deadline: Date.now() + 10_000 }), /gone/);
    assert.ok(performance.now() - t0 < 1000);
    await b.clear(requestPrefix('rf'));
  });

  it('an unreachable server fails with an ExchangeError naming the key, before the deadline', async () => {
    const b = new RedisExchangeBackend({ url: 'redis://127.0.0.1:1', ttlMs: 1000 });
    try {
      const t0 = performance.now();
      await assert.rejects(b.forTask(new MemoryStore()).put('requests/rg/b-s0t0', body), (e: Error) => e instanceof ExchangeError && /Redis exchange: writing requests\/rg\/b-s0t0 failed/.test(e.message));
      assert.ok(performance.now() - t0 < 10_000);
    } finally {
      await b.close();
    }
  });
});

describe('EXCHANGE / REDIS_URL configuration', () => {
  it('defaults to the store; redis needs a redis:// URL; both reach the function processes', async () => {
    const { functionEnv } = await import('../../src/config.ts');
    assert.equal(loadConfig({}).exchange, 'store');
    assert.throws(() => loadConfig({ EXCHANGE: 'redis' }), /EXCHANGE=redis needs REDIS_URL/);
    assert.throws(() => loadConfig({ EXCHANGE: 'redis', REDIS_URL: 'http://x' }), /REDIS_URL/);
    assert.throws(() => loadConfig({ EXCHANGE: 'tair' }), /EXCHANGE/);
    const c = loadConfig({ EXCHANGE: 'redis', REDIS_URL: 'redis://10.0.0.5:6379' });
    assert.deepEqual([c.exchange, c.redisUrl], ['redis', 'redis://10.0.0.5:6379']);
    const env = functionEnv(c);
    assert.deepEqual([env.EXCHANGE, env.REDIS_URL], ['redis', 'redis://10.0.0.5:6379']);
    assert.equal(loadConfig(env).redisUrl, 'redis://10.0.0.5:6379');
  });
});
