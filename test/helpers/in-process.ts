import { MemoryStore } from '../../src/store/memory-store.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';
import type { Invoker, InvokeResult } from '../../src/invoke/invoker.ts';
import { FunctionCrashedError, FunctionError } from '../../src/invoke/errors.ts';
import { ArtifactCache, publishPlan } from '../../src/serve/artifacts.ts';
import { PlanCache } from '../../src/serve/plans.ts';
import { runMasterTask } from '../../src/serve/master.ts';
import { masterTaskSchema, workerTaskSchema } from '../../src/serve/protocol.ts';
import { runWorkerTask } from '../../src/serve/worker.ts';
import { runRequest, type RequestResult } from '../../src/serve/backend.ts';
import type { Plan } from '../../src/plan/schema.ts';
import type { Tensor } from '../../src/runtime/ort.ts';
import type { Notifier } from '../../src/exchange/exchange.ts';

/** One worker invocation as the stack saw it: how long it ran, when it ended (performance.now()) and how. */
export interface WorkerEvent { chain: number; worker: number; requestId: string; ms: number; endedAt: number; error?: string }

/**
 * The real handler, master and worker code in one process: a MemoryStore and an invoker that
 * calls the functions directly (each invocation concurrent, as on FC). For property tests of
 * chains, strips and reductions without process start-up.
 */
export class InProcessStack {
  readonly store: ObjectStore;
  readonly cache: ArtifactCache;
  readonly plans: PlanCache;
  invocations = 0;
  /** Fails the n-th worker invocation (tests of failure paths). */
  failWorker?: (task: { chain: number; worker: number }) => boolean;
  /**
   * Crashes a worker invocation as an instance dying would (FunctionCrashedError, which the
   * master retries): `before` it runs, or `after` it ran and wrote everything (a late duplicate).
   * `attempt` counts the invocations of that chain and worker in this request, from 1.
   */
  crashWorker?: (task: { chain: number; worker: number }, attempt: number) => 'before' | 'after' | undefined;
  private attempts = new Map<string, number>();
  /** Native wait for the workers and the master (e.g. an FsStore's `changed`); polling without. */
  notifier?: Notifier;
  /** Every worker invocation, in the order they ended. */
  readonly workerEvents: WorkerEvent[] = [];
  readonly invoker: Invoker;

  constructor(store: ObjectStore = new MemoryStore(), readonly maxWorkers = 100) {
    this.store = store;
    this.cache = new ArtifactCache(store, { maxSessions: 256 });
    this.plans = new PlanCache(store);
    const self = this;
    this.invoker = {
      async invoke(fn: string, payload: Buffer): Promise<InvokeResult> {
        self.invocations++;
        const t0 = performance.now();
        const json = JSON.parse(payload.toString('utf8'));
        let out: unknown;
        try {
          if (fn === 'master') out = await runMasterTask(masterTaskSchema.parse(json), { store, cache: self.cache, invoker: self.invoker, workerFunction: 'worker', concurrency: 8, notifier: self.notifier });
          else {
            const task = workerTaskSchema.parse(json);
            const event: WorkerEvent = { chain: task.chain, worker: task.worker, requestId: task.requestId, ms: 0, endedAt: 0 };
            const id = `${task.requestId}:${task.chain}:${task.worker}`;
            const attempt = (self.attempts.get(id) ?? 0) + 1;
            self.attempts.set(id, attempt);
            const crash = self.crashWorker?.(task, attempt);
            const crashed = () => new FunctionCrashedError(`injected crash of chain ${task.chain} worker ${task.worker} (attempt ${attempt})`, { functionName: fn, signal: 'SIGKILL' });
            if (crash === 'before') {
              Object.assign(event, { error: 'crashed', endedAt: performance.now() });
              self.workerEvents.push(event);
              throw crashed();
            }
            try {
              if (self.failWorker?.(task)) throw new Error(`injected failure of chain ${task.chain} worker ${task.worker}`);
              out = await runWorkerTask(task, { store, cache: self.cache, notifier: self.notifier });
              if (crash === 'after') throw crashed();
            } catch (e) {
              event.error = e instanceof FunctionCrashedError ? 'crashed' : `${(e as Error).name}: ${(e as Error).message}`;
              throw e;
            } finally {
              event.endedAt = performance.now();
              event.ms = event.endedAt - t0;
              self.workerEvents.push(event);
            }
          }
        } catch (e) {
          if (e instanceof FunctionCrashedError) throw e;
          throw new FunctionError({ functionName: fn, errorType: (e as Error).name, errorMessage: (e as Error).message, details: (e as { details?: Record<string, unknown> }).details });
        }
        return { payload: Buffer.from(JSON.stringify(out)), instanceId: 'x', coldStart: false, durationMs: performance.now() - t0 };
      },
    };
  }

  /** Releases the ORT sessions the stack's functions loaded. */
  async close(): Promise<void> {
    await this.cache.release();
  }

  async publish(modelBytes: Uint8Array, plan: Plan, name = 'p'): Promise<string> {
    return (await publishPlan(this.store, modelBytes, plan, name)).planKey;
  }

  run(planKey: string, input: Tensor, rid = `r${Math.random().toString(36).slice(2, 10)}`, timeoutMs = 30_000): Promise<RequestResult> {
    return runRequest({ store: this.store, invoker: this.invoker, plans: this.plans, masterFunction: 'master', maxWorkers: this.maxWorkers, timeoutMs }, planKey, input, rid);
  }
}
