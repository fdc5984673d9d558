import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { ArtifactCache } from '../../src/serve/artifacts.ts';
import { runWorkerTask } from '../../src/serve/worker.ts';
import { requestKeys, requestPrefix } from '../../src/serve/keys.ts';
import { workerReportSchema, type WorkerTask } from '../../src/serve/protocol.ts';
import { ServeError } from '../../src/serve/errors.ts';
import { readerBytes, workerReader, type Routes } from '../../src/plan/bundles.ts';
import type { Chain } from '../../src/plan/schema.ts';
import { publish, putInput, serveCase } from '../helpers/serve-case.ts';

// The worker alone on a MemoryStore: what it reads, what it writes and what it reports, with its
// neighbours' bundles put there beforehand (by real workers of an earlier run of the same request).
const k = serveCase();
const store = new MemoryStore();
const cache = new ArtifactCache(store);
let planKey: string;
let routes: Routes;
let chain: Chain;
const task = (rid: string, over: Partial<WorkerTask> = {}): WorkerTask => ({ requestId: rid, planKey, maxWorkers: 100, batch: 1, deadline: Date.now() + 20_000, chain: chain.id, worker: 0, ...over });

before(async () => {
  planKey = await publish(store, k, k.wide, 'wide');
  ({ routes } = await cache.getRoutes(planKey, 100));
  assert.equal(routes.chains.length, 1, 'the wide plan is one chain');
  chain = routes.chains[0];
  assert.ok(chain.workers === 4 && chain.stages.length === 3, JSON.stringify(chain));
});
after(() => cache.release());

const bundlesOf = async (s: MemoryStore, rid: string) => {
  const keys = (await s.list(requestPrefix(rid))).filter((x) => x !== requestKeys.bundle(rid, 'input'));
  return new Map(await Promise.all(keys.map(async (x) => [x, await s.get(x)] as const)));
};

describe('runWorkerTask', () => {
  it('reads its input region and its neighbours\' strips from bundles in the store, writes its bundles and reports its counters', async () => {
    // All four workers once, to have every neighbour's bundles.
    const rid = 'w-all';
    await putInput(store, routes, rid, k.x);
    await Promise.all([0, 1, 2, 3].map((w) => runWorkerTask(task(rid, { worker: w }), { store, cache })));
    const all = await bundlesOf(store, rid);
    for (const w of [0, 1, 2, 3]) {
      // Then worker w alone in a fresh store holding the input and everyone else's bundles.
      const alone = new MemoryStore();
      await putInput(alone, routes, rid, k.x);
      const own = [...routes.bundles.keys()].filter((src) => {
        const m = /^s(\d+)t(\d+)$/.exec(src);
        return m && routes.ownerOf(+m[1], +m[2]) === w;
      }).map((src) => requestKeys.bundle(rid, src));
      assert.ok(own.length > 0, `worker ${w} writes bundles`);
      for (const [key, body] of all) if (!own.includes(key)) await alone.put(key, body);
      const t0 = performance.now();
      // A fresh cache, as in a cold instance: the counters include loading its sessions.
      const cold = new ArtifactCache(store);
      const rep = workerReportSchema.parse(await runWorkerTask(task(rid, { worker: w }), { store: alone, cache: cold }).finally(() => cold.release()));
      assert.ok(performance.now() - t0 < 10_000);
      // It wrote exactly its own bundles, byte for byte what it wrote among its neighbours.
      const wrote = await bundlesOf(alone, rid);
      for (const key of own) assert.ok(wrote.get(key)?.equals(all.get(key)!), `worker ${w}: ${key} differs`);
      assert.equal(wrote.size, all.size);
      // Counters: it read its segments of every bundle (input included) once, and wrote its bundles.
      const me = workerReader(chain.id, w);
      const expectRead = [...routes.bundles.values()].filter((b) => b.segments.some((x) => x.readers.includes(me))).reduce((a, b) => a + readerBytes(b, me, 1), 0);
      assert.deepEqual({ chain: rep.chain, worker: rep.worker }, { chain: chain.id, worker: w });
      assert.equal(rep.bytesRead, expectRead, `worker ${w} bytesRead`);
      assert.equal(rep.bytesWritten, own.reduce((a, key) => a + all.get(key)!.length, 0), `worker ${w} bytesWritten`);
      assert.ok(rep.storeRequests >= own.length + 1, `worker ${w} storeRequests ${rep.storeRequests}`);
      assert.equal(rep.storeRetries, 0);
      assert.ok(rep.sessionsLoaded >= 1 && rep.ms.compute > 0 && rep.ms.total >= rep.ms.compute, JSON.stringify(rep));
    }
  });

  it('fails naming the neighbour, the stage and the request when a neighbour\'s strips never come', async () => {
    const rid = 'w-lonely';
    await putInput(store, routes, rid, k.x);
    const wait = 400;
    const t0 = performance.now();
    await assert.rejects(runWorkerTask(task(rid, { deadline: Date.now() + wait }), { store, cache }), (e: Error) => {
      assert.ok(e instanceof ServeError, e.name);
      assert.match(e.message, new RegExp(`chain ${chain.id} worker 0: .*timed out`));
      assert.match(e.message, /worker [123]'s strips of stage \d+/);
      assert.match(e.message, new RegExp(`request ${rid}`));
      return true;
    });
    assert.ok(performance.now() - t0 < wait + 1500);
  });

  it('refuses a chain or a worker the plan does not have, writing nothing', async () => {
    const rid = 'w-refused';
    await assert.rejects(runWorkerTask(task(rid, { chain: 5 }), { store, cache }), (e: Error) => e instanceof ServeError && /has no chain 5 with 100 workers/.test(e.message));
    await assert.rejects(runWorkerTask(task(rid, { worker: 4 }), { store, cache }), (e: Error) => e instanceof ServeError && new RegExp(`chain ${chain.id} has 4 workers, not 5`).test(e.message));
    assert.deepEqual(await store.list(requestPrefix(rid)), []);
  });
});
