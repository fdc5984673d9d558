import type { ObjectStore } from '../store/object-store.ts';
import { CountingStore } from '../store/counting-store.ts';
import type { Invoker, InvokeResult } from '../invoke/invoker.ts';
import { FunctionError, InvokeError } from '../invoke/errors.ts';
import { INVOKE_RETRY, retryableInvoke, withRetries, type RetryPolicy } from '../invoke/retry.ts';
import type { Tensor } from '../runtime/ort.ts';
import type { Chain, MasterStage } from '../plan/schema.ts';
import type { Exchange, Notifier } from '../exchange/exchange.ts';
import { addTraffic, storeExchangeBackend, type ExchangeBackend } from '../exchange/backend.ts';
import type { ArtifactCache } from './artifacts.ts';
import { MASTER, masterSource, schedule, type Routes } from '../plan/bundles.ts';
import { coScheduled } from '../planner/chains.ts';
import { bundleBody, SegmentReader } from './segments.ts';
import { masterReportSchema, workerReportSchema, workerTaskSchema, type MasterReport, type MasterTask, type UnitReport, type WorkerReport, type WorkerTask } from './protocol.ts';
import { requestKeys } from './keys.ts';
import { decodeTensor, encodeTensor } from './tile-codec.ts';
import { MasterFailedError, WorkerFailedError } from './errors.ts';
import { inSpan, inStoreSpan, invocationSpans } from './trace.ts';

export interface MasterDeps {
  store: ObjectStore;
  invoker: Invoker;
  cache: ArtifactCache;
  workerFunction: string;
  /** Bound on parallel worker invocations of a chain whose workers do not wait for each other. */
  concurrency: number;
  notifier?: Notifier;
  /** What strips, partials and the abort key move through (makeExchange); without it, the store with `notifier`. */
  exchange?: ExchangeBackend;
  /** Worker invocations that crash, time out or are throttled are sent again under this policy. */
  retry?: RetryPolicy;
}

/**
 * Runs `fn` over `items` with at most `limit` in flight. On a failure no new items start, the
 * ones in flight are awaited (so nothing still writes after cleanup), then the first error is thrown.
 */
async function boundedAll<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>, onError?: () => Promise<void>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let error: unknown;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (error === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]);
      } catch (e) {
        if (error === undefined) { error = e; await onError?.().catch(() => undefined); }
      }
    }
  });
  await Promise.all(lanes);
  if (error !== undefined) throw error;
  return results;
}

/**
 * The master: starts each chain (one worker invocation per tile, all at once when they wait
 * for each other) and runs the stages that need whole maps itself. It moves no feature-map
 * bytes except for those stages: the handler writes the input and reads the output.
 */
export async function runMasterTask(task: MasterTask, deps: MasterDeps): Promise<MasterReport> {
  const t0 = performance.now();
  const store = new CountingStore(deps.store);
  const exchange = (deps.exchange ?? storeExchangeBackend(deps.notifier)).forTask(store);
  const rid = task.requestId;
  const { plan, routes } = await deps.cache.getRoutes(task.planKey, task.maxWorkers);
  const tLoad = performance.now() - t0;
  const reader = new SegmentReader(exchange, routes, MASTER, task);
  const held = new Map<string, Tensor>();
  const units: UnitReport[] = [];

  const gather = async (name: string): Promise<Tensor> => {
    let t = held.get(name);
    if (t) return t;
    const read = routes.masterReads.get(name);
    const p = routes.producers.get(name)!;
    if (read) {
      const c = p.kind === 'input' ? plan.input.shape[1] : plan.stages.find((s) => s.id === p.stage)!.outputs[p.outputIndex].shape![1];
      t = await reader.region(read, c);
    } else {
      const key = requestKeys.whole(rid, p.stage, p.outputIndex);
      t = decodeTensor(await store.get(key), key).tensor;
    }
    held.set(name, t);
    return t;
  };

  for (const unit of schedule(plan, routes)) {
    const s0 = performance.now();
    // Units report their workers' traffic; the master's own is in `master`.
    let report: UnitReport;
    if (unit.kind === 'chain') {
      const c = unit.chain;
      report = await inSpan(`chain ${c.id}`, { 'chain.id': c.id, 'chain.workers': c.workers, 'chain.stages': c.stages.join(',') }, () => runChain(c, task, deps, exchange));
    } else {
      const st = unit.stage;
      await inStoreSpan(`master stage ${st.id}`, { 'stage.id': st.id }, store.counters, () => exchange.counters.polls, () => runMasterStage(st, deps, gather, held, store, routes, rid, exchange));
      report = emptyUnit('master', unit.stage.id, [unit.stage.id]);
    }
    units.push({ ...report, ms: performance.now() - s0 });
  }
  const c = store.counters;
  return masterReportSchema.parse({
    requestId: rid, units,
    ms: { loadPlan: tLoad, total: performance.now() - t0 },
    master: { bytesRead: c.bytesRead, bytesWritten: c.bytesWritten, storeRequests: c.gets + c.puts + c.lists + c.deletes + exchange.counters.polls, storeRetries: c.retries, ...(exchange.traffic() ? { exchange: exchange.traffic() } : {}) },
  });
}

const emptyUnit = (kind: 'chain' | 'master', id: number, stages: number[]): UnitReport => ({
  kind, id, stages, ms: 0, invocations: 0, retries: 0, coldStarts: 0, maxColdStartMs: 0, maxWorkerMs: 0, workerMs: [], computeMs: 0, exchangeMs: 0, waitMs: 0,
  maxWorkerComputeMs: 0, peakWorkerRssBytes: 0, bytesRead: 0, bytesWritten: 0, storeRequests: 0, storeRetries: 0,
});

async function runMasterStage(
  stage: MasterStage, deps: MasterDeps, gather: (n: string) => Promise<Tensor>, held: Map<string, Tensor>,
  store: ObjectStore, r: Routes, rid: string, exchange: Exchange,
): Promise<void> {
  const { session } = await deps.cache.getSession(stage.subModel.sha256);
  const feeds: Record<string, Tensor> = {};
  for (const i of stage.inputs) feeds[i.name] = await gather(i.name);
  const out = await session.run(feeds);
  for (const o of stage.outputs) held.set(o.name, out[o.name]);
  // Maps later groups read are cut into this stage's bundle; small tensors are written whole.
  const bundle = r.bundles.get(masterSource(stage.id));
  if (bundle) {
    const cell = (t: string) => ({ t: held.get(t)!, region: { y0: 0, y1: held.get(t)!.dims[2], x0: 0, x1: held.get(t)!.dims[3] } });
    await exchange.put(requestKeys.bundle(rid, bundle.source), bundleBody(bundle, cell));
  }
  await Promise.all(stage.outputs.map(async (o, i) => {
    if (r.wholeWrites.has(o.name)) await store.put(requestKeys.whole(rid, stage.id, i), encodeTensor(out[o.name]));
  }));
}

async function runChain(chain: Chain, task: MasterTask, deps: MasterDeps, exchange: Exchange): Promise<UnitReport> {
  const rid = task.requestId;
  const report = emptyUnit('chain', chain.id, chain.stages);
  const together = coScheduled(chain);
  if (together && chain.workers > task.maxWorkers) {
    throw new MasterFailedError(`chain ${chain.id} needs ${chain.workers} workers at once, the worker function runs at most ${task.maxWorkers}`, { requestId: rid });
  }
  const workers = Array.from({ length: chain.workers }, (_, w) => w);
  const abort = () => exchange.put(requestKeys.abort(rid), Buffer.from('abort'));
  // One span per worker invocation (retries included), its context in the worker's payload.
  const spans = invocationSpans(deps.workerFunction, (w) => ({ 'chain.id': chain.id, worker: w }));
  const payload = (w: number) => Buffer.from(JSON.stringify(workerTaskSchema.parse({ ...task, chain: chain.id, worker: w, ...spans.fields(w) } satisfies WorkerTask)));
  // Workers that wait for each other start together (a queue that let half of them in would
  // deadlock under concurrent requests); where the platform throttles instead, plain invokes.
  const gang = together && deps.invoker.invokeGang ? deps.invoker.invokeGang(deps.workerFunction, workers.map(payload), { deadline: task.deadline }) : undefined;
  await boundedAll(workers, together ? chain.workers : deps.concurrency, spans.wrap(async (w) => {
    let res: InvokeResult;
    try {
      // A lost tile is recomputed by a replacement while the others wait for its next strip:
      // the strips they wrote stay in the store, and the replacement writes the same bytes.
      res = await withRetries(
        (n) => (n === 1 && gang ? gang[w] : deps.invoker.invoke(deps.workerFunction, payload(w), { urgent: together, deadline: task.deadline })),
        deps.retry ?? INVOKE_RETRY,
        { deadline: task.deadline, retryable: retryableInvoke, onRetry: () => { report.retries++; } },
      );
    } catch (e) {
      const msg = e instanceof FunctionError ? `${e.errorType}: ${e.errorMessage}` : e instanceof InvokeError ? e.message : (e as Error).message;
      const attempts = report.retries > 0 ? ` (after ${report.retries} ${report.retries === 1 ? 'retry' : 'retries'} in this chain)` : '';
      throw new WorkerFailedError(`worker failed${attempts}: ${msg}`, { stage: chain.stages[0], tile: w, chain: chain.id, requestId: rid, cause: e });
    }
    let rep: WorkerReport;
    try {
      rep = workerReportSchema.parse(JSON.parse(res.payload.toString('utf8')));
    } catch (e) {
      throw new WorkerFailedError(`worker replied with an invalid report: ${(e as Error).message}`, { stage: chain.stages[0], tile: w, chain: chain.id, requestId: rid, cause: e });
    }
    report.invocations++;
    if (res.coldStart) {
      report.coldStarts++;
      report.maxColdStartMs = Math.max(report.maxColdStartMs, res.initMs ?? 0);
    }
    report.workerMs.push(res.durationMs);
    report.maxWorkerMs = Math.max(report.maxWorkerMs, res.durationMs);
    report.computeMs += rep.ms.compute;
    report.exchangeMs += rep.ms.exchange;
    report.waitMs += rep.ms.wait;
    report.maxWorkerComputeMs = Math.max(report.maxWorkerComputeMs, rep.ms.compute);
    report.peakWorkerRssBytes = Math.max(report.peakWorkerRssBytes, res.peakRssBytes ?? 0);
    report.bytesRead += rep.bytesRead;
    report.bytesWritten += rep.bytesWritten;
    report.storeRequests += rep.storeRequests;
    report.storeRetries += rep.storeRetries;
    if (rep.exchange) report.exchange = addTraffic(report.exchange, rep.exchange);
  }), together ? abort : undefined);
  return report;
}
