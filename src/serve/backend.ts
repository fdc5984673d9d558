import { randomBytes } from 'node:crypto';
import type { InferOptions, InferenceBackend, ModelEntry } from './model-entry.ts';
import type { Plan } from '../plan/schema.ts';
import type { Invoker } from '../invoke/invoker.ts';
import { FunctionError, InvokeError } from '../invoke/errors.ts';
import type { FloatTensor, Tensor } from '../runtime/ort.ts';
import { dtypeOf, toFloat32 } from '../tensor/dtype.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { CountingStore } from '../store/counting-store.ts';
import { addTraffic, storeExchangeBackend, type ExchangeBackend, type ExchangeTraffic } from '../exchange/backend.ts';
import { estimateCost, type BilledInvocation, type FunctionResources } from '../billing/pricing.ts';
import type { RequestCost } from './cost-report.ts';
import { requestKeys, requestPrefix } from './keys.ts';
import { masterReportSchema, masterTaskSchema, type MasterReport } from './protocol.ts';
import { HANDLER, INPUT } from '../plan/bundles.ts';
import { bundleBody, SegmentReader } from './segments.ts';
import { decodeTensor } from './tile-codec.ts';
import type { PlanCache } from './plans.ts';
import type { ShapePlans } from './shape-plans.ts';
import { DeadlineUnmeetableError, MasterFailedError, MasterInvocationError, RequestRejectedError } from './errors.ts';
import { SpanKind } from '@opentelemetry/api';
import { inSpan, inStoreSpan, traceFields } from './trace.ts';

export interface RequestDeps {
  store: ObjectStore;
  invoker: Invoker;
  plans: PlanCache;
  masterFunction: string;
  /** Worker instances that may run at once (the worker function's maximum instances). */
  maxWorkers: number;
  /** How long a request may take, ms. */
  timeoutMs: number;
  /** What the outputs' bundles and the abort key move through (makeExchange); without it, the store. */
  exchange?: ExchangeBackend;
}

export interface RequestResult {
  outputs: Record<string, Tensor>;
  report: MasterReport;
  masterMs: number;
  coldMaster: boolean;
  ms: { total: number; storeInput: number; master: number; fetchOutput: number };
  store: { requests: number; bytesRead: number; bytesWritten: number; retries: number };
  /** The handler's traffic through an exchange that is not the object store (Redis). */
  exchange?: ExchangeTraffic;
}

/**
 * One request, from the handler's side: write the input once, cut for the workers that read
 * it (one bundle, one ranged read each), invoke the master, assemble the outputs from the
 * workers' bundles (or whole tensors), and delete everything under the request's prefix.
 */
export async function runRequest(deps: RequestDeps, planKey: string, input: Tensor, rid: string, opts: { deadline?: number } = {}): Promise<RequestResult> {
  const t0 = performance.now();
  const store = new CountingStore(deps.store);
  const exchange = (deps.exchange ?? storeExchangeBackend()).forTask(store);
  let masterFailed = false;
  try {
    const { plan, routes } = await deps.plans.getRoutes(planKey, deps.maxWorkers);
    const s = plan.input.shape;
    if (input.dims.length !== 4 || input.dims[1] !== s[1] || input.dims[2] !== s[2] || input.dims[3] !== s[3]) {
      throw new RequestRejectedError(`input is [${input.dims}], this model's plan needs [N,${s.slice(1)}]`, { requestId: rid });
    }
    // Producers write the input's bytes as they are: a float32 map where the plan says float16 would misalign every strip.
    const want = plan.input.dtype ?? 'float32';
    if (dtypeOf(input) !== want) {
      throw new RequestRejectedError(`input ${plan.input.name} is ${dtypeOf(input)}, this model's plan needs ${want}`, { requestId: rid, context: { input: plan.input.name, expected: want, given: dtypeOf(input) } });
    }
    const batch = input.dims[0];
    // The caller's deadline (the HTTP request's), never past what this function may run.
    const deadline = Math.floor(Math.min(opts.deadline ?? Infinity, Date.now() + deps.timeoutMs));
    const predicted = predictedMs(plan, batch);
    if (predicted !== undefined && Date.now() + predicted > deadline) {
      const left = Math.max(0, deadline - Date.now());
      throw new DeadlineUnmeetableError(`request cannot finish within its deadline: the plan predicts ${Math.round(predicted)} ms for batch ${batch}, ${left} ms left; retry later or with a longer x-request-timeout-ms`,
        { requestId: rid, predictedMs: predicted, leftMs: left });
    }
    const inputBundle = routes.bundles.get(INPUT);
    if (inputBundle) {
      const full = { y0: 0, y1: s[2], x0: 0, x1: s[3] };
      const body = bundleBody(inputBundle, () => ({ t: input, region: full }));
      await inStoreSpan('store input', { 'request.id': rid }, store.counters, () => exchange.counters.polls, () => store.put(requestKeys.bundle(rid, INPUT), body));
    }
    const tPut = performance.now();
    let report: MasterReport;
    let masterMs: number;
    let coldMaster = false;
    try {
      // The master's span is a child of this one: its context travels in the task.
      const res = await inSpan(`invoke ${deps.masterFunction}`, { 'faas.invoked_name': deps.masterFunction, 'request.id': rid }, async () => {
        const task = masterTaskSchema.parse({ requestId: rid, planKey, maxWorkers: deps.maxWorkers, batch, deadline, ...traceFields() });
        return deps.invoker.invoke(deps.masterFunction, Buffer.from(JSON.stringify(task)), { deadline: task.deadline });
      }, SpanKind.CLIENT);
      report = masterReportSchema.parse(JSON.parse(res.payload.toString('utf8')));
      masterMs = res.durationMs;
      coldMaster = res.coldStart;
    } catch (e) {
      // A master that died leaves its workers waiting for each other: tell them to stop now.
      masterFailed = true;
      await exchange.put(requestKeys.abort(rid), Buffer.from('abort')).catch(() => undefined);
      if (e instanceof FunctionError) throw new MasterInvocationError(`inference failed in the master: ${e.errorType}: ${e.errorMessage}`, { requestId: rid, context: { ...(e.details ?? {}) }, cause: e });
      if (e instanceof InvokeError) throw new MasterInvocationError(`inference failed: ${e.message}`, { requestId: rid, cause: e });
      throw new MasterFailedError(`invalid master report: ${(e as Error).message}`, { requestId: rid, cause: e });
    }
    const tMaster = performance.now();
    const reader = new SegmentReader(exchange, routes, HANDLER, { requestId: rid, batch, deadline });
    const outputs: Record<string, Tensor> = {};
    await inStoreSpan('fetch output', { 'request.id': rid }, store.counters, () => exchange.counters.polls, async () => { for (const o of plan.outputs) {
      const read = routes.handlerReads.get(o.name);
      if (read) outputs[o.name] = await reader.region(read, o.shape[1]);
      else {
        const p = routes.producers.get(o.name)!;
        const key = requestKeys.whole(rid, p.stage, p.outputIndex);
        outputs[o.name] = decodeTensor(await store.get(key), key).tensor;
      }
    } });
    const tEnd = performance.now();
    const c = store.counters;
    return {
      outputs, report, masterMs, coldMaster,
      ms: { total: tEnd - t0, storeInput: tPut - t0, master: tMaster - tPut, fetchOutput: tEnd - tMaster },
      store: { requests: c.gets + c.puts + c.lists + c.deletes + exchange.counters.polls, bytesRead: c.bytesRead, bytesWritten: c.bytesWritten, retries: c.retries },
      ...(exchange.traffic() ? { exchange: exchange.traffic() } : {}),
    };
  } finally {
    await sweep(deps.store, rid);
    // The exchange's keys of the request (Redis): deleted now, their TTL is the safety net.
    await deps.exchange?.clear(requestPrefix(rid)).catch(() => undefined);
    // Workers of a failed master may still be finishing a tile they started: sweep again once
    // they have seen the abort key (the store's lifecycle rule is the last safety net).
    if (masterFailed) setTimeout(() => void sweep(deps.store, rid), SECOND_SWEEP_MS).unref();
    if (masterFailed && deps.exchange) setTimeout(() => void deps.exchange!.clear(requestPrefix(rid)).catch(() => undefined), SECOND_SWEEP_MS).unref();
  }
}

const SECOND_SWEEP_MS = 5000;

async function sweep(store: ObjectStore, rid: string): Promise<void> {
  const keys = await store.list(requestPrefix(rid)).catch(() => [] as string[]);
  if (keys.length) await store.delete(keys).catch(() => undefined);
}

/**
 * The plan's own latency prediction (recorded by the automatic planner), scaled to the batch:
 * undefined for plans without one. Compute grows with the batch, fixed costs do not, so scaling
 * it whole overestimates; only refusals depend on it.
 */
export function predictedMs(plan: Plan, batch: number): number | undefined {
  const p = plan.prediction;
  if (!p) return undefined;
  return p.latencyMs * Math.max(1, batch / Math.max(1, p.batch));
}

export interface BackendDeps extends RequestDeps {
  workerFunction: string;
  handlerFunction: string;
  resources: Record<string, FunctionResources>;
  /** Plans of models served without a committed plan, made and checked per input shape. */
  shapePlans?: ShapePlans;
}

/** The handler's backend: one request through `runRequest`, and what it cost. */
export class DistributedBackend implements InferenceBackend {
  constructor(private readonly deps: BackendDeps) {}

  async ready() { return true; }

  async infer(model: ModelEntry, input: Tensor, requestId: string, opts: InferOptions = {}) {
    // Clients may choose x-request-id; a random suffix keeps two requests from ever sharing a
    // store prefix (and deleting each other's tiles).
    const rid = `${requestId.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 48) || 'r'}-${randomBytes(6).toString('hex')}`;
    const planKey = model.planKey
      ?? (model.auto && this.deps.shapePlans ? await this.deps.shapePlans.planKey(model.name, model.auto, input.dims[2], input.dims[3], opts.deadline) : undefined);
    if (!planKey) throw new RequestRejectedError(`model ${model.name} has no plan`);
    const r = await runRequest(this.deps, planKey, input, rid, opts);
    const out = r.outputs[model.outputName] ?? Object.values(r.outputs)[0];
    // The routes' backend contract is float32 outputs: other dtypes are widened (exact up to 2^24).
    const output: FloatTensor = out.data instanceof Float32Array ? { dims: out.dims, data: out.data } : { dims: out.dims, data: toFloat32(out) };
    return { output, cost: requestCost(r, this.deps) };
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

/** The cost report every response carries in `parameters.cost`, built once from the reports. */
export function requestCost(r: RequestResult, fns: { handlerFunction: string; masterFunction: string; workerFunction: string; resources: Record<string, FunctionResources> }): RequestCost {
  const { report } = r;
  const calls: BilledInvocation[] = [
    { function: fns.handlerFunction, durationMs: r.ms.total },
    { function: fns.masterFunction, durationMs: r.masterMs },
    ...report.units.flatMap((s) => s.workerMs.map((ms) => ({ function: fns.workerFunction, durationMs: ms }))),
  ];
  const sum = (f: (s: MasterReport['units'][number]) => number) => report.units.reduce((a, s) => a + f(s), 0);
  const compute = sum((s) => s.computeMs);
  const exchange = sum((s) => s.exchangeMs);
  const wait = sum((s) => s.waitMs);
  const redis = addTraffic(r.exchange, report.master.exchange, ...report.units.map((s) => s.exchange));
  return {
    requestId: report.requestId,
    ms: { total: r.ms.total, storeInput: r.ms.storeInput, master: r.ms.master, fetchOutput: r.ms.fetchOutput, masterLoadPlan: report.ms.loadPlan },
    stages: report.units.map((s) => ({
      id: s.id, kind: s.kind, stages: s.stages, ms: round(s.ms), invocations: s.invocations, retries: s.retries, coldStarts: s.coldStarts, maxColdStartMs: round(s.maxColdStartMs),
      maxWorkerMs: round(s.maxWorkerMs), maxWorkerComputeMs: round(s.maxWorkerComputeMs), peakWorkerRssMb: round(s.peakWorkerRssBytes / 1048576),
      bytesRead: s.bytesRead, bytesWritten: s.bytesWritten, storeRequests: s.storeRequests, storeRetries: s.storeRetries,
    })),
    invocations: { master: 1, worker: sum((s) => s.invocations), coldStarts: sum((s) => s.coldStarts) + (r.coldMaster ? 1 : 0), retries: sum((s) => s.retries) },
    store: {
      requests: r.store.requests + report.master.storeRequests + sum((s) => s.storeRequests),
      bytesRead: r.store.bytesRead + report.master.bytesRead + sum((s) => s.bytesRead),
      bytesWritten: r.store.bytesWritten + report.master.bytesWritten + sum((s) => s.bytesWritten),
      retries: r.store.retries + report.master.storeRetries + sum((s) => s.storeRetries),
    },
    ...(redis ? { exchange: redis } : {}),
    workerTime: {
      computeMs: round(compute), exchangeMs: round(exchange), waitMs: round(wait),
      exchangeShare: compute + exchange + wait > 0 ? +((exchange + wait) / (compute + exchange + wait)).toFixed(4) : 0,
    },
    peakWorkerRssMb: round(Math.max(0, ...report.units.map((s) => s.peakWorkerRssBytes)) / 1048576),
    billed: estimateCost(calls, fns.resources),
  };
}
