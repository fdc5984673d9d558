import { randomBytes } from 'node:crypto';
import type { InferenceBackend, ModelEntry } from '../http/routes.ts';
import { badGateway, badRequest } from '../http/errors.ts';
import type { Invoker } from '../invoke/invoker.ts';
import { FunctionError, InvokeError } from '../invoke/errors.ts';
import type { FloatTensor } from '../runtime/ort.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { CountingStore } from '../store/counting-store.ts';
import { StoreExchange } from '../exchange/exchange.ts';
import { estimateCost, type BilledInvocation, type FunctionResources } from './cost.ts';
import type { RequestCost } from './cost-report.ts';
import { requestKeys, requestPrefix } from './keys.ts';
import { masterReportSchema, masterTaskSchema, type MasterReport } from './master.ts';
import { HANDLER, INPUT } from './bundles.ts';
import { bundleBody, SegmentReader } from './worker.ts';
import { decodeTensor } from './tile-codec.ts';
import type { PlanCache } from './plans.ts';
import { MasterFailedError } from './errors.ts';

export interface RequestDeps {
  store: ObjectStore;
  invoker: Invoker;
  plans: PlanCache;
  masterFunction: string;
  /** Worker instances that may run at once (the worker function's maximum instances). */
  maxWorkers: number;
  /** How long a request may take, ms. */
  timeoutMs: number;
}

export interface RequestResult {
  outputs: Record<string, FloatTensor>;
  report: MasterReport;
  masterMs: number;
  coldMaster: boolean;
  ms: { total: number; storeInput: number; master: number; fetchOutput: number };
  store: { requests: number; bytesRead: number; bytesWritten: number };
}

/**
 * One request, from the handler's side: write the input once, cut for the workers that read
 * it (one bundle, one ranged read each), invoke the master, assemble the outputs from the
 * workers' bundles (or whole tensors), and delete everything under the request's prefix.
 */
export async function runRequest(deps: RequestDeps, planKey: string, input: FloatTensor, rid: string): Promise<RequestResult> {
  const t0 = performance.now();
  const store = new CountingStore(deps.store);
  const exchange = new StoreExchange(store);
  try {
    const { plan, routes } = await deps.plans.getRoutes(planKey, deps.maxWorkers);
    const s = plan.input.shape;
    if (input.dims.length !== 4 || input.dims[1] !== s[1] || input.dims[2] !== s[2] || input.dims[3] !== s[3]) {
      throw badRequest(`input is [${input.dims}], this model's plan needs [N,${s.slice(1)}]`, { details: { requestId: rid } });
    }
    const batch = input.dims[0];
    const deadline = Date.now() + deps.timeoutMs;
    const inputBundle = routes.bundles.get(INPUT);
    if (inputBundle) {
      const full = { y0: 0, y1: s[2], x0: 0, x1: s[3] };
      await store.put(requestKeys.bundle(rid, INPUT), bundleBody(inputBundle, () => ({ t: input, region: full })));
    }
    const tPut = performance.now();
    let report: MasterReport;
    let masterMs: number;
    let coldMaster = false;
    try {
      const task = masterTaskSchema.parse({ requestId: rid, planKey, maxWorkers: deps.maxWorkers, batch, deadline });
      const res = await deps.invoker.invoke(deps.masterFunction, Buffer.from(JSON.stringify(task)));
      report = masterReportSchema.parse(JSON.parse(res.payload.toString('utf8')));
      masterMs = res.durationMs;
      coldMaster = res.coldStart;
    } catch (e) {
      if (e instanceof FunctionError) throw badGateway(`inference failed in the master: ${e.errorType}: ${e.errorMessage}`, { details: { requestId: rid, ...(e.details ?? {}) } as Record<string, unknown>, cause: e });
      if (e instanceof InvokeError) throw badGateway(`inference failed: ${e.message}`, { details: { requestId: rid }, cause: e });
      throw new MasterFailedError(`invalid master report: ${(e as Error).message}`, { requestId: rid, cause: e });
    }
    const tMaster = performance.now();
    const reader = new SegmentReader(exchange, routes, HANDLER, { requestId: rid, batch, deadline });
    const outputs: Record<string, FloatTensor> = {};
    for (const o of plan.outputs) {
      const read = routes.handlerReads.get(o.name);
      if (read) outputs[o.name] = await reader.region(read, o.shape[1]);
      else {
        const p = routes.producers.get(o.name)!;
        const key = requestKeys.whole(rid, p.stage, p.outputIndex);
        outputs[o.name] = decodeTensor(await store.get(key), key).tensor;
      }
    }
    const tEnd = performance.now();
    const c = store.counters;
    return {
      outputs, report, masterMs, coldMaster,
      ms: { total: tEnd - t0, storeInput: tPut - t0, master: tMaster - tPut, fetchOutput: tEnd - tMaster },
      store: { requests: c.gets + c.puts + c.lists + c.deletes + exchange.counters.polls, bytesRead: c.bytesRead, bytesWritten: c.bytesWritten },
    };
  } finally {
    const keys = await deps.store.list(requestPrefix(rid)).catch(() => [] as string[]);
    if (keys.length) await deps.store.delete(keys).catch(() => undefined);
  }
}

export interface BackendDeps extends RequestDeps {
  workerFunction: string;
  handlerFunction: string;
  resources: Record<string, FunctionResources>;
}

/** The handler's backend: one request through `runRequest`, and what it cost. */
export class DistributedBackend implements InferenceBackend {
  constructor(private readonly deps: BackendDeps) {}

  async ready() { return true; }

  async infer(model: ModelEntry & { planKey?: string }, input: FloatTensor, requestId: string) {
    // Clients may choose x-request-id; a random suffix keeps two requests from ever sharing a
    // store prefix (and deleting each other's tiles).
    const rid = `${requestId.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 48) || 'r'}-${randomBytes(6).toString('hex')}`;
    if (!model.planKey) throw badRequest(`model ${model.name} has no plan`);
    const r = await runRequest(this.deps, model.planKey, input, rid);
    return { output: r.outputs[model.outputName] ?? Object.values(r.outputs)[0], cost: requestCost(r, this.deps) };
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
  return {
    requestId: report.requestId,
    ms: { total: r.ms.total, storeInput: r.ms.storeInput, master: r.ms.master, fetchOutput: r.ms.fetchOutput, masterLoadPlan: report.ms.loadPlan },
    stages: report.units.map((s) => ({
      id: s.id, kind: s.kind, stages: s.stages, ms: round(s.ms), invocations: s.invocations, coldStarts: s.coldStarts, maxColdStartMs: round(s.maxColdStartMs),
      maxWorkerMs: round(s.maxWorkerMs), maxWorkerComputeMs: round(s.maxWorkerComputeMs), peakWorkerRssMb: round(s.peakWorkerRssBytes / 1048576),
      bytesRead: s.bytesRead, bytesWritten: s.bytesWritten, storeRequests: s.storeRequests,
    })),
    invocations: { master: 1, worker: sum((s) => s.invocations), coldStarts: sum((s) => s.coldStarts) + (r.coldMaster ? 1 : 0) },
    store: {
      requests: r.store.requests + report.master.storeRequests + sum((s) => s.storeRequests),
      bytesRead: r.store.bytesRead + report.master.bytesRead + sum((s) => s.bytesRead),
      bytesWritten: r.store.bytesWritten + report.master.bytesWritten + sum((s) => s.bytesWritten),
    },
    workerTime: {
      computeMs: round(compute), exchangeMs: round(exchange), waitMs: round(wait),
      exchangeShare: compute + exchange + wait > 0 ? +((exchange + wait) / (compute + exchange + wait)).toFixed(4) : 0,
    },
    peakWorkerRssMb: round(Math.max(0, ...report.units.map((s) => s.peakWorkerRssBytes)) / 1048576),
    billed: estimateCost(calls, fns.resources),
  };
}
