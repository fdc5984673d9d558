import { randomBytes } from 'node:crypto';
import type { InferenceBackend, ModelEntry } from '../http/routes.ts';
import { badGateway, badRequest } from '../http/errors.ts';
import type { Invoker } from '../invoke/invoker.ts';
import { FunctionError, InvokeError } from '../invoke/errors.ts';
import type { FloatTensor } from '../runtime/ort.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { CountingStore } from '../store/counting-store.ts';
import { estimateCost, type BilledInvocation, type FunctionResources } from './cost.ts';
import type { RequestCost } from './cost-report.ts';
import { requestKeys, requestPrefix } from './keys.ts';
import { masterTaskSchema, type MasterReport } from './master.ts';
import { decodeTensor, encodeTensor } from './tile-codec.ts';

export interface BackendDeps {
  store: ObjectStore;
  invoker: Invoker;
  masterFunction: string;
  workerFunction: string;
  handlerFunction: string;
  resources: Record<string, FunctionResources>;
}

/**
 * The handler's side of a request: put the input in the store under a fresh request id, invoke
 * the master, read the output, delete everything under the request's prefix, and report what
 * the request cost.
 */
export class DistributedBackend implements InferenceBackend {
  constructor(private readonly deps: BackendDeps) {}

  async ready() { return true; }

  async infer(model: ModelEntry & { planKey?: string }, input: FloatTensor, requestId: string) {
    const t0 = performance.now();
    const store = new CountingStore(this.deps.store);
    // Clients may choose x-request-id; a random suffix keeps two requests from ever sharing a
    // store prefix (and deleting each other's tiles).
    const rid = `${requestId.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 48) || 'r'}-${randomBytes(6).toString('hex')}`;
    try {
      if (!model.planKey) throw badRequest(`model ${model.name} has no plan`);
      await store.put(requestKeys.input(rid), encodeTensor(input));
      const tPut = performance.now();
      let report: MasterReport;
      let masterMs: number;
      let coldMaster = false;
      try {
        const res = await this.deps.invoker.invoke(this.deps.masterFunction, Buffer.from(JSON.stringify(masterTaskSchema.parse({ requestId: rid, planKey: model.planKey }))));
        report = JSON.parse(res.payload.toString('utf8')) as MasterReport;
        masterMs = res.durationMs;
        coldMaster = res.coldStart;
      } catch (e) {
        if (e instanceof FunctionError) throw badGateway(`inference failed in the master: ${e.errorType}: ${e.errorMessage}`, { details: { requestId: rid, ...(e.details ?? {}) } as Record<string, unknown>, cause: e });
        if (e instanceof InvokeError) throw badGateway(`inference failed: ${e.message}`, { details: { requestId: rid }, cause: e });
        throw e;
      }
      const tMaster = performance.now();
      const out = report.outputs[0];
      const output = decodeTensor(await store.get(out.key), out.key).tensor;
      const tEnd = performance.now();
      const calls: BilledInvocation[] = [
        { function: this.deps.handlerFunction, durationMs: tEnd - t0 },
        { function: this.deps.masterFunction, durationMs: masterMs },
        ...report.stages.flatMap((s) => s.workerMs.map((ms) => ({ function: this.deps.workerFunction, durationMs: ms }))),
      ];
      const sum = (f: (s: MasterReport['stages'][number]) => number) => report.stages.reduce((a, s) => a + f(s), 0);
      const c = store.counters;
      const cost: RequestCost = {
        requestId: rid,
        ms: { total: tEnd - t0, storeInput: tPut - t0, master: tMaster - tPut, fetchOutput: tEnd - tMaster, masterLoadPlan: report.ms.loadPlan },
        stages: report.stages.map((s) => ({ id: s.id, kind: s.kind, ms: round(s.ms), invocations: s.invocations, coldStarts: s.coldStarts, maxColdStartMs: round(s.maxColdStartMs), maxWorkerMs: round(s.maxWorkerMs), maxWorkerComputeMs: round(s.maxWorkerComputeMs), peakWorkerRssMb: round(s.peakWorkerRssBytes / 1048576), bytesRead: s.bytesRead, bytesWritten: s.bytesWritten, storeRequests: s.storeRequests })),
        invocations: { master: 1, worker: sum((s) => s.invocations), coldStarts: sum((s) => s.coldStarts) + (coldMaster ? 1 : 0) },
        store: {
          requests: c.gets + c.puts + c.lists + c.deletes + report.master.storeRequests + sum((s) => s.storeRequests),
          bytesRead: c.bytesRead + report.master.bytesRead + sum((s) => s.bytesRead),
          bytesWritten: c.bytesWritten + report.master.bytesWritten + sum((s) => s.bytesWritten),
        },
        peakWorkerRssMb: round(Math.max(0, ...report.stages.map((s) => s.peakWorkerRssBytes)) / 1048576),
        billed: estimateCost(calls, this.deps.resources),
      };
      return { output, cost };
    } finally {
      const keys = await this.deps.store.list(requestPrefix(rid)).catch(() => [] as string[]);
      if (keys.length) await this.deps.store.delete(keys).catch(() => undefined);
    }
  }
}

const round = (x: number) => Math.round(x * 10) / 10;
