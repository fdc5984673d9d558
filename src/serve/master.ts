import { z } from 'zod';
import type { ObjectStore } from '../store/object-store.ts';
import { CountingStore } from '../store/counting-store.ts';
import type { Invoker, InvokeResult } from '../invoke/invoker.ts';
import { InvokeError } from '../invoke/errors.ts';
import type { FloatTensor } from '../runtime/ort.ts';
import type { GroupStage, MasterStage } from '../plan/schema.ts';
import type { ArtifactCache } from './artifacts.ts';
import { readRegion, writePieces, workerTaskSchema, type WorkerReport, type WorkerTask } from './worker.ts';
import { requestKeys, requestPrefix } from './keys.ts';
import { decodeTensor, encodeTensor } from './tile-codec.ts';
import { MasterFailedError, WorkerFailedError } from './errors.ts';

export const masterTaskSchema = z.object({
  requestId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  planKey: z.string().min(1),
}).strict();
export type MasterTask = z.infer<typeof masterTaskSchema>;

export interface StageReport {
  id: number;
  kind: 'group' | 'master';
  ms: number;
  invocations: number;
  coldStarts: number;
  /** Slowest instance start (spawn + module load) among this stage's cold starts. */
  maxColdStartMs: number;
  maxWorkerMs: number;
  /** Worker handler durations, as FC bills them. */
  workerMs: number[];
  maxWorkerComputeMs: number;
  peakWorkerRssBytes: number;
  bytesRead: number;
  bytesWritten: number;
  storeRequests: number;
}

export interface MasterReport {
  requestId: string;
  outputs: { name: string; key: string; dims: number[] }[];
  stages: StageReport[];
  ms: { loadPlan: number; total: number };
  master: { bytesRead: number; bytesWritten: number; storeRequests: number };
}

export interface MasterDeps {
  store: ObjectStore;
  invoker: Invoker;
  cache: ArtifactCache;
  workerFunction: string;
  /** Bound on parallel worker invocations per group. */
  concurrency: number;
}

/**
 * Runs `fn` over `items` with at most `limit` in flight. On a failure no new items start, the
 * ones in flight are awaited (so nothing still writes after cleanup), then the first error is thrown.
 */
async function boundedAll<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let error: unknown;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (error === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]);
      } catch (e) {
        if (error === undefined) error = e;
      }
    }
  });
  await Promise.all(lanes);
  if (error !== undefined) throw error;
  return results;
}

/**
 * The master: runs master segments itself, fans each group out to workers with bounded
 * concurrency, and cuts the tensors it holds into the pieces the next group's tiles read.
 * Between two groups it moves no tensor bytes. Intermediate objects are deleted on the way out,
 * success or failure.
 */
export async function runMasterTask(task: MasterTask, deps: MasterDeps): Promise<MasterReport> {
  const t0 = performance.now();
  const store = new CountingStore(deps.store);
  const rid = task.requestId;
  const { plan, exchange } = await deps.cache.getPlan(task.planKey);
  const tLoad = performance.now() - t0;
  const held = new Map<string, FloatTensor>();
  const stages: StageReport[] = [];
  try {
    const inputKey = requestKeys.input(rid);
    const input = decodeTensor(await store.get(inputKey), inputKey).tensor;
    if (input.dims.length !== 4 || input.dims[1] !== plan.input.shape[1] || input.dims[2] !== plan.input.shape[2] || input.dims[3] !== plan.input.shape[3]) {
      throw new MasterFailedError(`input is [${input.dims}], plan ${task.planKey} needs [N,${plan.input.shape.slice(1)}]`, { requestId: rid });
    }
    held.set(plan.input.name, input);

    const gather = async (name: string): Promise<FloatTensor> => {
      const h = held.get(name);
      if (h) return h;
      const pieces = exchange.masterReads.get(name);
      if (!pieces) throw new MasterFailedError(`no stage produces ${name}`, { requestId: rid });
      const p = exchange.producers.get(name)!;
      const shape = (plan.stages.find((s) => s.id === p.stage) as GroupStage).outputs[p.outputIndex].shape;
      const t = await readRegion(store, rid, { y0: 0, y1: shape[2], x0: 0, x1: shape[3] }, pieces);
      held.set(name, t);
      return t;
    };

    for (const stage of plan.stages) {
      const s0 = performance.now();
      const c0 = { ...store.counters };
      let report: PartialReport;
      if (stage.kind === 'master') {
        report = await runMasterStage(stage, deps, gather, held);
      } else {
        report = await runGroupStage(stage, task, deps, store, exchange, held);
      }
      const c = store.counters;
      stages.push({
        ...report, ms: performance.now() - s0,
        bytesRead: report.bytesRead + c.bytesRead - c0.bytesRead,
        bytesWritten: report.bytesWritten + c.bytesWritten - c0.bytesWritten,
        storeRequests: report.storeRequests + (c.gets + c.puts + c.lists + c.deletes) - (c0.gets + c0.puts + c0.lists + c0.deletes),
      });
    }

    const outputs = [];
    for (const [i, o] of plan.outputs.entries()) {
      const t = await gather(o.name);
      const key = requestKeys.output(rid, i);
      await store.put(key, encodeTensor(t));
      outputs.push({ name: o.name, key, dims: t.dims });
    }
    const c = store.counters;
    return {
      requestId: rid, outputs, stages,
      ms: { loadPlan: tLoad, total: performance.now() - t0 },
      master: { bytesRead: c.bytesRead, bytesWritten: c.bytesWritten, storeRequests: c.gets + c.puts + c.lists + c.deletes },
    };
  } finally {
    // Pieces are intermediate; the input and outputs belong to the handler, which deletes the rest.
    const keys = (await deps.store.list(requestPrefix(rid)).catch(() => [] as string[]))
      .filter((k) => k !== requestKeys.input(rid) && !/\/output-\d+$/.test(k));
    if (keys.length) await deps.store.delete(keys).catch(() => undefined);
  }
}

type PartialReport = Omit<StageReport, 'ms'>;

const emptyReport = (id: number, kind: 'group' | 'master'): PartialReport => ({
  id, kind, invocations: 0, coldStarts: 0, maxColdStartMs: 0, maxWorkerMs: 0, workerMs: [], maxWorkerComputeMs: 0, peakWorkerRssBytes: 0, bytesRead: 0, bytesWritten: 0, storeRequests: 0,
});

async function runMasterStage(stage: MasterStage, deps: MasterDeps, gather: (n: string) => Promise<FloatTensor>, held: Map<string, FloatTensor>): Promise<PartialReport> {
  const { session } = await deps.cache.getSession(stage.subModel.sha256);
  const feeds: Record<string, FloatTensor> = {};
  for (const i of stage.inputs) feeds[i.name] = await gather(i.name);
  const out = await session.run(feeds);
  for (const o of stage.outputs) held.set(o.name, out[o.name]);
  return emptyReport(stage.id, 'master');
}

async function runGroupStage(
  stage: GroupStage, task: MasterTask, deps: MasterDeps, store: ObjectStore,
  exchange: Awaited<ReturnType<ArtifactCache['getPlan']>>['exchange'], held: Map<string, FloatTensor>,
): Promise<PartialReport> {
  const rid = task.requestId;
  // Tensors the master holds (the request input, master-segment outputs) are cut for this group's tiles.
  for (const i of stage.inputs) {
    const t = held.get(i.name);
    if (!t) continue;
    const p = exchange.producers.get(i.name)!;
    if (i.spatial) {
      const pieces = (exchange.masterWrites.get(i.name) ?? []).filter((w) => w.to.stage === stage.id);
      await writePieces(store, rid, t, { y0: 0, y1: t.dims[2], x0: 0, x1: t.dims[3] }, pieces);
    } else {
      await store.put(requestKeys.whole(rid, p.stage, p.outputIndex), encodeTensor(t));
    }
  }
  const report = emptyReport(stage.id, 'group');
  await boundedAll(stage.tiles, deps.concurrency, async (tile) => {
    const wt: WorkerTask = workerTaskSchema.parse({ requestId: rid, planKey: task.planKey, stage: stage.id, tile: tile.index });
    let res: InvokeResult;
    try {
      res = await deps.invoker.invoke(deps.workerFunction, Buffer.from(JSON.stringify(wt)));
    } catch (e) {
      const msg = e instanceof InvokeError ? e.message : (e as Error).message;
      throw new WorkerFailedError(`worker failed: ${msg}`, { stage: stage.id, tile: tile.index, requestId: rid, cause: e });
    }
    const w = JSON.parse(res.payload.toString('utf8')) as WorkerReport;
    report.invocations++;
    if (res.coldStart) {
      report.coldStarts++;
      report.maxColdStartMs = Math.max(report.maxColdStartMs, res.initMs ?? 0);
    }
    report.workerMs.push(res.durationMs);
    report.maxWorkerMs = Math.max(report.maxWorkerMs, res.durationMs);
    report.maxWorkerComputeMs = Math.max(report.maxWorkerComputeMs, w.ms.compute);
    report.peakWorkerRssBytes = Math.max(report.peakWorkerRssBytes, res.peakRssBytes ?? 0);
    report.bytesRead += w.bytesRead;
    report.bytesWritten += w.bytesWritten;
    report.storeRequests += w.storeRequests;
  });
  return report;
}
