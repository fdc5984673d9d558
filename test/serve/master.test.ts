import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { ArtifactCache } from '../../src/serve/artifacts.ts';
import { runMasterTask, type MasterDeps } from '../../src/serve/master.ts';
import { runWorkerTask } from '../../src/serve/worker.ts';
import { requestKeys, requestPrefix } from '../../src/serve/keys.ts';
import { masterReportSchema, workerTaskSchema, type MasterTask, type WorkerReport, type WorkerTask } from '../../src/serve/protocol.ts';
import { MasterFailedError, WorkerFailedError } from '../../src/serve/errors.ts';
import { FunctionCrashedError } from '../../src/invoke/errors.ts';
import type { Invoker, InvokeResult } from '../../src/invoke/invoker.ts';
import { buildRoutes, masterSource, type Routes } from '../../src/plan/bundles.ts';
import { coScheduled } from '../../src/planner/chains.ts';
import type { Plan } from '../../src/plan/schema.ts';
import { publish, putInput, serveCase } from '../helpers/serve-case.ts';

// The master alone on a MemoryStore, its workers behind a stub invoker: each invocation is
// recorded and answered by `reply` (a real worker on the same store, a canned report, a crash).
const k = serveCase();
const store = new MemoryStore();
const cache = new ArtifactCache(store);
let wideKey: string;
let narrowKey: string;

interface Call { task: WorkerTask; attempt: number; startedAt: number; endedAt?: number }
type Reply = (task: WorkerTask, attempt: number) => Promise<unknown>;

/** A stub invoker for the worker function: records every call and how many ran at once. */
function stub(reply: Reply) {
  const calls: Call[] = [];
  let inFlight = 0;
  const seen = { maxInFlight: 0 };
  const invoker: Invoker = {
    async invoke(fn: string, payload: Buffer): Promise<InvokeResult> {
      assert.equal(fn, 'worker');
      const task = workerTaskSchema.parse(JSON.parse(payload.toString('utf8')));
      const call: Call = { task, attempt: calls.filter((c) => c.task.chain === task.chain && c.task.worker === task.worker).length + 1, startedAt: performance.now() };
      calls.push(call);
      seen.maxInFlight = Math.max(seen.maxInFlight, ++inFlight);
      try {
        const out = await reply(task, call.attempt);
        return { payload: Buffer.from(typeof out === 'string' ? out : JSON.stringify(out)), instanceId: `i${task.worker}`, coldStart: task.worker === 0, initMs: 50, durationMs: 7 + task.worker, peakRssBytes: 1e6 * (task.worker + 1) };
      } finally {
        inFlight--;
        call.endedAt = performance.now();
      }
    },
  };
  return { invoker, calls, seen };
}

const deps = (invoker: Invoker, over: Partial<MasterDeps> = {}): MasterDeps => ({ store, invoker, cache, workerFunction: 'worker', concurrency: 8, retry: { retries: 2, minMs: 1, maxMs: 5 }, ...over });
const task = (rid: string, planKey: string, maxWorkers: number): MasterTask => ({ requestId: rid, planKey, maxWorkers, batch: 1, deadline: Date.now() + 20_000 });
const realWorker: Reply = (t) => runWorkerTask(t, { store, cache });
const canned = (t: WorkerTask): WorkerReport => ({
  chain: t.chain, worker: t.worker, ms: { load: 1, compute: 10 + t.worker, exchange: 2, wait: 3, total: 20 },
  sessionsLoaded: 1, bytesRead: 100 * (t.worker + 1), bytesWritten: 10, storeRequests: 5, storeRetries: t.worker === 3 ? 1 : 0,
});
const pairs = (calls: Call[]) => calls.map((c) => `${c.task.chain}:${c.task.worker}`).sort();

before(async () => {
  wideKey = await publish(store, k, k.wide, 'wide');
  narrowKey = await publish(store, k, k.narrow, 'narrow');
  const wide = (await cache.getRoutes(wideKey, 100)).routes.chains;
  assert.ok(wide.length === 1 && coScheduled(wide[0]) && wide[0].workers === 4, JSON.stringify(wide));
  const narrow = (await cache.getRoutes(narrowKey, 2)).routes.chains;
  assert.ok(narrow.length === 2 && narrow.every((c) => !coScheduled(c) && c.workers === 4), JSON.stringify(narrow));
});
after(() => cache.release());

describe('runMasterTask', () => {
  it('runs chains one worker per tile, bounded for independent workers, and runs master stages between them', async () => {
    const rid = 'm-narrow';
    const { plan, routes } = await cache.getRoutes(narrowKey, 2);
    await putInput(store, routes, rid, k.x);
    const masterStage = plan.stages.find((s) => s.kind === 'master')!;
    const masterOut = routes.bundles.has(masterSource(masterStage.id)) ? requestKeys.bundle(rid, masterSource(masterStage.id)) : requestKeys.whole(rid, masterStage.id, 0);
    const sawMasterOutput = new Map<string, boolean>();
    const s = stub(async (t, n) => {
      sawMasterOutput.set(`${t.chain}:${t.worker}`, (await store.list(requestPrefix(rid))).includes(masterOut));
      return realWorker(t, n);
    });
    const rep = masterReportSchema.parse(await runMasterTask(task(rid, narrowKey, 2), deps(s.invoker, { concurrency: 1 })));
    // One invocation per tile of each chain, one at a time (concurrency 1: they do not wait for each other).
    assert.deepEqual(pairs(s.calls), ['0:0', '0:1', '0:2', '0:3', '1:0', '1:1', '1:2', '1:3']);
    assert.equal(s.seen.maxInFlight, 1);
    // The master stage ran between the chains: the first chain's workers did not see its output, the second's did.
    assert.deepEqual([...sawMasterOutput].filter(([, saw]) => saw).map(([w]) => w).sort(), ['1:0', '1:1', '1:2', '1:3']);
    assert.deepEqual(rep.units.map((u) => `${u.kind} ${u.id} [${u.stages.join(',')}]`), routes.chains.flatMap((c, i) => [`chain ${c.id} [${c.stages.join(',')}]`, ...(i === 0 ? [`master ${masterStage.id} [${masterStage.id}]`] : [])]));
    const chainUnits = rep.units.filter((u) => u.kind === 'chain');
    assert.ok(chainUnits.every((u) => u.invocations === 4 && u.retries === 0 && u.workerMs.length === 4), JSON.stringify(chainUnits));
    // The master read the first chain's output for its stage and wrote the stage's output.
    assert.ok(rep.master.bytesRead > 0 && rep.master.bytesWritten > 0, JSON.stringify(rep.master));
    assert.ok(!(await store.list(requestPrefix(rid))).includes(requestKeys.abort(rid)));
    await store.delete(await store.list(requestPrefix(rid)));
  });

  it('starts a co-scheduled chain\'s workers all at once whatever its concurrency, and sums their parsed replies', async () => {
    const rid = 'm-wide';
    let release!: () => void;
    const allStarted = new Promise<void>((r) => { release = r; });
    const s = stub(async (t) => {
      if (s.calls.length === 4) release();
      // Workers of a chain wait for each other: none answers before all four have started.
      let timer: NodeJS.Timeout | undefined;
      const tooLate = new Promise((_, rej) => { timer = setTimeout(() => rej(new FunctionCrashedError('not started together', { functionName: 'worker' })), 3000); });
      try { await Promise.race([allStarted, tooLate]); } finally { clearTimeout(timer); }
      return canned(t);
    });
    const rep = await runMasterTask(task(rid, wideKey, 100), deps(s.invoker, { concurrency: 1, retry: { retries: 0, minMs: 1, maxMs: 1 } }));
    assert.equal(s.seen.maxInFlight, 4);
    assert.deepEqual(pairs(s.calls), ['0:0', '0:1', '0:2', '0:3']);
    assert.ok(s.calls.every((c) => c.task.requestId === rid && c.task.planKey === wideKey && c.task.maxWorkers === 100 && c.task.batch === 1));
    assert.equal(rep.units.length, 1);
    const u = rep.units[0];
    assert.deepEqual(
      { invocations: u.invocations, retries: u.retries, coldStarts: u.coldStarts, maxColdStartMs: u.maxColdStartMs, workerMs: [...u.workerMs].sort(), maxWorkerMs: u.maxWorkerMs },
      { invocations: 4, retries: 0, coldStarts: 1, maxColdStartMs: 50, workerMs: [10, 7, 8, 9], maxWorkerMs: 10 },
    );
    assert.deepEqual(
      { computeMs: u.computeMs, exchangeMs: u.exchangeMs, waitMs: u.waitMs, maxWorkerComputeMs: u.maxWorkerComputeMs, peakWorkerRssBytes: u.peakWorkerRssBytes, bytesRead: u.bytesRead, bytesWritten: u.bytesWritten, storeRequests: u.storeRequests, storeRetries: u.storeRetries },
      { computeMs: 46, exchangeMs: 8, waitMs: 12, maxWorkerComputeMs: 13, peakWorkerRssBytes: 4e6, bytesRead: 1000, bytesWritten: 40, storeRequests: 20, storeRetries: 1 },
    );
  });

  it('fails the chain naming the tile when a worker\'s reply is not a report', async () => {
    const s = stub(async (t) => (t.worker === 2 ? { ...canned(t), ms: undefined } : canned(t)));
    await assert.rejects(runMasterTask(task('m-bad-reply', wideKey, 100), deps(s.invoker)), (e: Error) => {
      assert.ok(e instanceof WorkerFailedError, e.name);
      assert.equal(e.tile, 2);
      assert.match(e.message, /invalid report/);
      return true;
    });
    await store.delete(await store.list(requestPrefix('m-bad-reply')));
  });

  it('retries a crashed worker for that tile only', async () => {
    const s = stub(async (t, n) => {
      if (t.worker === 1 && n === 1) throw new FunctionCrashedError('instance died', { functionName: 'worker', signal: 'SIGKILL' });
      return canned(t);
    });
    const rid = 'm-retry';
    const rep = await runMasterTask(task(rid, wideKey, 100), deps(s.invoker));
    assert.deepEqual(pairs(s.calls), ['0:0', '0:1', '0:1', '0:2', '0:3']);
    assert.deepEqual({ invocations: rep.units[0].invocations, retries: rep.units[0].retries }, { invocations: 4, retries: 1 });
    assert.deepEqual(await store.list(requestPrefix(rid)), []);
  });

  it('writes the abort key when a worker\'s retries run out, and names the tile and the attempts', async () => {
    const s = stub(async (t) => {
      if (t.worker === 1) throw new FunctionCrashedError('instance died', { functionName: 'worker', signal: 'SIGKILL' });
      return canned(t);
    });
    const rid = 'm-abort';
    await assert.rejects(runMasterTask(task(rid, wideKey, 100), deps(s.invoker)), (e: Error) => {
      assert.ok(e instanceof WorkerFailedError, e.name);
      assert.equal(e.tile, 1);
      assert.match(e.message, /after 2 retries in this chain.*instance died/);
      return true;
    });
    assert.equal(s.calls.filter((c) => c.task.worker === 1).length, 3);
    assert.ok(s.calls.filter((c) => c.task.worker !== 1).every((c) => c.attempt === 1));
    assert.deepEqual(await store.list(requestPrefix(rid)), [requestKeys.abort(rid)]);
    await store.delete([requestKeys.abort(rid)]);
  });

  it('refuses a co-scheduled chain wider than the workers that may run at once, invoking nothing', async () => {
    // Routes as formed for 100 workers, served to a request that may run 2: the guard, not a deadlock.
    class OwnChains extends ArtifactCache {
      override async getRoutes(key: string): Promise<{ plan: Plan; routes: Routes }> {
        const plan = await this.getPlan(key);
        return { plan, routes: buildRoutes(plan, plan.chains) };
      }
    }
    const s = stub(async (t) => canned(t));
    const rid = 'm-too-wide';
    await assert.rejects(runMasterTask(task(rid, wideKey, 2), deps(s.invoker, { cache: new OwnChains(store) })), (e: Error) => {
      assert.ok(e instanceof MasterFailedError, e.name);
      assert.match(e.message, /chain 0 needs 4 workers at once, the worker function runs at most 2/);
      return true;
    });
    assert.equal(s.calls.length, 0);
    assert.deepEqual(await store.list(requestPrefix(rid)), []);
  });
});
