import type { ObjectStore } from '../store/object-store.ts';
import { CountingStore } from '../store/counting-store.ts';
import type { Tensor } from '../runtime/ort.ts';
import { fromFloat32, isFloatDtype } from '../tensor/dtype.ts';
import { combinePartials, partialOf } from '../tensor/reduce.ts';
import type { Region } from '../plan/schema.ts';
import type { GroupStage, MasterStage, Stage } from '../plan/schema.ts';
import { runTile } from '../exec/tile.ts';
import type { Notifier } from '../exchange/exchange.ts';
import { storeExchangeBackend, type ExchangeBackend } from '../exchange/backend.ts';
import { ExchangeError } from '../exchange/errors.ts';
import type { ArtifactCache } from './artifacts.ts';
import { readerItems, tileKey, tileSource, workerReader } from '../plan/bundles.ts';
import { requestKeys } from './keys.ts';
import { decodeTensor, encodeTensor } from './tile-codec.ts';
import { bundleBody, SegmentReader } from './segments.ts';
import { ServeError } from './errors.ts';
import { inSpan, inStoreSpan, storeDelta } from './trace.ts';
import type { WorkerReport, WorkerTask } from './protocol.ts';

/** `exchange`: what strips and partials move through (makeExchange); without it, the store with `notifier`. */
export interface WorkerDeps { store: ObjectStore; cache: ArtifactCache; notifier?: Notifier; exchange?: ExchangeBackend }

/**
 * One worker of a chain: runs its tile of every stage of the chain, keeping its cells in
 * memory. After each group it writes one bundle with the strips (and reduction partials) its
 * neighbours need; before each group it reads, waiting if need be, the strips it needs.
 */
export async function runWorkerTask(task: WorkerTask, deps: WorkerDeps): Promise<WorkerReport> {
  const t0 = performance.now();
  const store = new CountingStore(deps.store);
  const exchange = (deps.exchange ?? storeExchangeBackend(deps.notifier)).forTask(store);
  const { plan, routes } = await deps.cache.getRoutes(task.planKey, task.maxWorkers);
  const chain = routes.chains[task.chain];
  const fail = (msg: string) => new ServeError(msg, { requestId: task.requestId });
  if (!chain) throw fail(`plan ${task.planKey} has no chain ${task.chain} with ${task.maxWorkers} workers`);
  if (task.worker >= chain.workers) throw fail(`chain ${chain.id} has ${chain.workers} workers, not ${task.worker + 1}`);
  const j = task.worker;
  const byId = new Map<number, Stage>(plan.stages.map((s) => [s.id, s]));
  const describe = (source: string) => {
    const m = /^s(\d+)t(\d+)$/.exec(source);
    return m ? `worker ${routes.ownerOf(+m[1], +m[2])}'s strips of stage ${m[1]} (chain ${chain.id}, request ${task.requestId})` : `${source} (request ${task.requestId})`;
  };
  const reader = new SegmentReader(exchange, routes, workerReader(chain.id, j), { ...task, describe });
  const held = new Map<string, { t: Tensor; region: Region }>();
  const wholes = new Map<string, Tensor>();
  const partials = new Map<string, Float32Array>();
  const channels = (t: string) => {
    const p = routes.producers.get(t)!;
    return p.kind === 'input' ? plan.input.shape[1] : byId.get(p.stage)!.outputs[p.outputIndex].shape![1];
  };
  const ms = { load: 0, compute: 0, exchange: 0 };
  let sessionsLoaded = 0;
  const timed = async <T>(k: keyof typeof ms, f: () => Promise<T>): Promise<T> => {
    const s = performance.now();
    // Store traffic shows in the trace as one span per exchange step, under its stage's span.
    try { return await (k === 'exchange' ? inStoreSpan('store', {}, store.counters, () => exchange.counters.polls, f) : f()); } finally { ms[k] += performance.now() - s; }
  };
  const session = async (sha: string) => timed('load', async () => {
    const r = await deps.cache.getSession(sha);
    if (!r.cached) sessionsLoaded++;
    return r.session;
  });
  const whole = async (name: string) => {
    let t = wholes.get(name);
    if (!t) {
      const p = routes.producers.get(name)!;
      const key = requestKeys.whole(task.requestId, p.stage, p.outputIndex);
      t = await timed('exchange', async () => decodeTensor(await unlessPutFailed(store.get(key)), key).tensor);
      wholes.set(name, t);
    }
    return t;
  };
  // Reductions of this chain whose input a group produces: partials are computed right after it.
  const reductionsOf = new Map<string, { stage: number; index: number; op: 'sum' | 'mean' | 'max' }[]>();
  for (const id of chain.stages) {
    const s = byId.get(id)!;
    if (s.kind === 'master') s.reduce!.reductions.forEach((r, index) => {
      if (!reductionsOf.has(r.input)) reductionsOf.set(r.input, []);
      reductionsOf.get(r.input)!.push({ stage: s.id, index, op: r.op });
    });
  }
  // A cell is dropped after the last stage of the chain that reads part of it from memory:
  // the worker's memory holds what is still needed, not every group's output.
  const lastUse = new Map<string, number>();
  chain.stages.forEach((id, k) => {
    const t = routes.tileOf(id, j);
    if (t === undefined) return;
    for (const r of routes.reads.get(tileKey(id, t)) ?? []) if (r.parts.some((p) => p.self)) lastUse.set(r.tensor, k);
  });
  const release = (k: number) => {
    for (const t of [...held.keys()]) if ((lastUse.get(t) ?? -1) <= k) held.delete(t);
  };
  const ms0 = performance.now() - t0;
  ms.load += ms0;
  // Bundles are written in the background while the next stage reads and computes; a write
  // that fails fails whatever this worker is waiting on, so it never waits for nothing.
  const puts: Promise<void>[] = [];
  let failPut!: (e: unknown) => void;
  const putFailed = new Promise<never>((_, reject) => { failPut = reject; });
  putFailed.catch(() => undefined);
  const unlessPutFailed = <T>(p: Promise<T>): Promise<T> => Promise.race([p, putFailed]);
  const putInBackground = (key: string, body: Buffer) => {
    const p = exchange.put(key, body);
    p.catch(failPut);
    puts.push(p);
  };

  try {
    for (const [k, id] of chain.stages.entries()) {
      const s = byId.get(id)!;
      await inSpan(`stage ${id}`, { 'stage.id': id, 'stage.kind': s.kind === 'group' ? 'group' : 'reduce', 'chain.id': chain.id, worker: j }, async (span) => {
        const delta = storeDelta(store.counters, () => exchange.counters.polls);
        if (s.kind === 'group') await runGroup(s, k);
        else await runReduce(s);
        span.setAttributes(delta());
      });
      release(k);
    }
    await timed('exchange', () => Promise.all(puts));
  } catch (e) {
    if (e instanceof ExchangeError) throw fail(`chain ${chain.id} worker ${j}: ${e.message}`);
    throw e;
  }

  async function runGroup(s: GroupStage, k: number) {
    // After a change of grid to fewer tiles some workers have none: they are done with this group.
    const ti = routes.tileOf(s.id, j);
    if (ti === undefined) return;
    const tile = s.tiles[ti];
    const sess = await session(s.subModel.sha256);
    const reads = routes.reads.get(tileKey(s.id, ti))!;
    const spatial: Record<string, Tensor> = {};
    await timed('exchange', () => unlessPutFailed(Promise.all(reads.map(async (r) => { spatial[r.tensor] = await reader.region(r, channels(r.tensor), (t) => held.get(t)!); }))));
    // Cells this stage was the last to read are copied into its inputs: free them before ORT runs.
    release(k);
    const wholeIn: Record<string, Tensor> = {};
    for (const i of s.inputs) if (!i.spatial) wholeIn[i.name] = await whole(i.name);
    await timed('compute', async () => {
      const o = await runTile(sess, s, tile, spatial, wholeIn);
      for (const x of tile.outputs) {
        held.set(x.tensor, { t: o[x.tensor], region: x.region });
        for (const r of reductionsOf.get(x.tensor) ?? []) partials.set(`${r.stage}:${r.index}`, partialOf(o[x.tensor], r.op));
      }
    });
    const bundle = routes.bundles.get(tileSource(s.id, ti));
    if (bundle) {
      await timed('exchange', async () => putInBackground(requestKeys.bundle(task.requestId, bundle.source), bundleBody(bundle, (t) => held.get(t)!, (stage, index) => partials.get(`${stage}:${index}`)!)));
    }
  }

  async function runReduce(s: MasterStage) {
    if (!routes.runners.get(s.id)!.has(j)) return;
    // Every neighbour's partials at once: the barrier costs the slowest neighbour, not their sum.
    const sources = new Set<string>();
    for (const r of s.reduce!.reductions) {
      const g = byId.get(routes.producers.get(r.input)!.stage) as GroupStage;
      for (const t of g.tiles) if (routes.ownerOf(g.id, t.index) !== j) sources.add(tileSource(g.id, t.index));
    }
    await timed('exchange', () => unlessPutFailed(Promise.all([...sources].map((x) => reader.items(x)))));
    for (const [index, r] of s.reduce!.reductions.entries()) {
      const p = routes.producers.get(r.input)!;
      const g = byId.get(p.stage) as GroupStage;
      const parts: Float32Array[] = [];
      for (const t of g.tiles) {
        if (routes.ownerOf(g.id, t.index) === j) { parts.push(partials.get(`${s.id}:${index}`)!); continue; }
        const k = readerItems(routes.bundles.get(tileSource(g.id, t.index))!, workerReader(chain.id, j)).findIndex((it) => it.kind === 'partial' && it.stage === s.id && it.index === index);
        const part = (await timed('exchange', () => unlessPutFailed(reader.items(tileSource(g.id, t.index)))))[k];
        if (!(part instanceof Float32Array)) throw fail(`partial ${index} of stage ${s.id} is not float32`);
        parts.push(part);
      }
      const shape = g.outputs[p.outputIndex].shape;
      const data = combinePartials(parts, r.op, shape[2] * shape[3]);
      const c = shape[1];
      // Partials are float32; a global reduction's output has its input map's dtype.
      const dtype = g.outputs[p.outputIndex].dtype ?? 'float32';
      if (!isFloatDtype(dtype)) throw fail(`reduction ${r.output} of stage ${s.id} has dtype ${dtype}; distributed reductions are float`);
      wholes.set(r.output, fromFloat32(dtype, r.keepdims ? [task.batch, c, 1, 1] : [task.batch, c], data));
    }
    const branch = s.reduce!.branch;
    if (branch) {
      const sess = await session(branch.sha256);
      const feeds: Record<string, Tensor> = {};
      for (const x of branch.inputs) feeds[x] = await whole(x);
      const out = await timed('compute', () => sess.run(feeds));
      for (const o of branch.outputs) wholes.set(o, out[o]);
    }
    if (j === 0) {
      await timed('exchange', () => Promise.all(s.outputs.map(async (o, i) => {
        if (routes.wholeWrites.has(o.name)) await store.put(requestKeys.whole(task.requestId, s.id, i), encodeTensor(wholes.get(o.name)!));
      })));
    }
  }

  const total = performance.now() - t0;
  const wait = exchange.counters.waitMs;
  const c = store.counters;
  return {
    chain: chain.id, worker: j,
    ms: { load: ms.load, compute: ms.compute, exchange: Math.max(0, ms.exchange - wait), wait, total },
    sessionsLoaded, bytesRead: c.bytesRead, bytesWritten: c.bytesWritten,
    storeRequests: c.gets + c.puts + c.lists + c.deletes + exchange.counters.polls,
    storeRetries: c.retries,
    ...(exchange.traffic() ? { exchange: exchange.traffic() } : {}),
  };
}
