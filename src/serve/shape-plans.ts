/**
 * Plans made on demand, one per input shape, for models served without a committed plan.
 *
 * The first request of a new H x W makes the plan in the handler (`--grid auto` under the worker
 * memory, planner/auto.ts), checks it against monolithic ORT (./guard.ts), and only then
 * publishes it: sub-models, then the plan under `artifacts/<modelSha>/plans/auto-<H>x<W>.json`.
 * The plan key therefore exists only for verified plans, and every later request, on any
 * instance, finds it there. Concurrent requests of one instance share one planning; instances
 * take a lock object beside the plan key so that one of them plans while the others wait for it.
 */
import { randomBytes } from 'node:crypto';
import { sha256 } from '../onnx/model-io.ts';
import { planModelAuto } from '../planner/auto.ts';
import { ObjectNotFoundError, type ObjectStore } from '../store/object-store.ts';
import { publishPlan } from './artifacts.ts';
import { guardPlan, PlanMismatchError, type GuardResult } from './guard.ts';
import { artifactKeys } from './keys.ts';
import type { AutoPlanning } from './registry.ts';
import { ArtifactMissingError, PlanningFailedError, RequestRejectedError, ServeError } from './errors.ts';
import { modelIo } from './model-config.ts';

export const autoPlanName = (h: number, w: number) => `auto-${h}x${w}`;

/** Checks H and W against the model's shape policy: a 400 naming the rule. */
export function checkShape(model: string, policy: AutoPlanning['shape'], h: number, w: number): void {
  if (policy.kind === 'fixed') {
    if (h !== policy.height || w !== policy.width) throw new RequestRejectedError(`model ${model} is served at ${policy.height}x${policy.width}, got ${h}x${w}`, { reason: 'shape_mismatch' });
    return;
  }
  for (const [what, v] of [['H', h], ['W', w]] as const) {
    if (v < policy.minSide || v > policy.maxSide) throw new RequestRejectedError(`model ${model}: input ${what} = ${v} is outside ${policy.minSide}..${policy.maxSide}`, { reason: 'shape_mismatch', context: { [what]: v } });
    if (v % policy.multipleOf) throw new RequestRejectedError(`model ${model}: input ${what} = ${v} is not a multiple of ${policy.multipleOf}`, { reason: 'shape_mismatch', context: { [what]: v } });
  }
}

export interface PlanEvent { model: string; shape: [number, number]; planKey: string; planMs: number; guard: GuardResult; tiles: number; label: string }

const LOCK_STALE_MS = 10 * 60_000;

export class ShapePlans {
  private readonly inflight = new Map<string, Promise<string>>();
  private readonly models = new Map<string, Promise<Uint8Array>>();
  /** Plans this instance made (tests and logs). */
  readonly made: PlanEvent[] = [];

  constructor(private readonly store: ObjectStore, private readonly opts: { threads?: number; pollMs?: number; log?: (e: PlanEvent) => void } = {}) {}

  /** The key of the verified plan for `model` at H x W, planning and checking it first if nobody has. */
  planKey(model: string, auto: AutoPlanning, h: number, w: number, deadline = Date.now() + 600_000): Promise<string> {
    checkShape(model, auto.shape, h, w);
    const key = artifactKeys.plan(auto.modelSha, autoPlanName(h, w));
    let p = this.inflight.get(key);
    if (!p) {
      p = this.obtain(model, auto, h, w, key, deadline);
      // A failure is not cached: the next request tries again (and gets the same refusal).
      p.catch(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async exists(key: string): Promise<boolean> {
    return (await this.store.list(key)).includes(key);
  }

  private async obtain(model: string, auto: AutoPlanning, h: number, w: number, key: string, deadline: number): Promise<string> {
    const lockKey = `${key}.lock`;
    const me = randomBytes(8).toString('hex');
    const poll = this.opts.pollMs ?? 100;
    for (;;) {
      if (await this.exists(key)) return key;
      let holder: { owner: string; at: number } | undefined;
      try {
        holder = JSON.parse((await this.store.get(lockKey)).toString('utf8')) as { owner: string; at: number };
      } catch (e) {
        if (!(e instanceof ObjectNotFoundError) && !(e instanceof SyntaxError)) throw e;
      }
      if (holder && holder.owner !== me && Date.now() - holder.at < LOCK_STALE_MS) {
        if (Date.now() > deadline) throw new ServeError(`model ${model}: another instance is still planning ${h}x${w}`);
        await new Promise((r) => setTimeout(r, poll));
        continue;
      }
      await this.store.put(lockKey, Buffer.from(JSON.stringify({ owner: me, at: Date.now() })));
      // Two instances may both write the lock: after a pause the one whose write stands plans.
      await new Promise((r) => setTimeout(r, Math.min(200, poll * 2)));
      const now = JSON.parse((await this.store.get(lockKey)).toString('utf8')) as { owner: string };
      if (now.owner !== me) continue;
      try {
        if (await this.exists(key)) return key;
        await this.make(model, auto, h, w);
        return key;
      } finally {
        await this.store.delete([lockKey]).catch(() => undefined);
      }
    }
  }

  private modelBytes(auto: AutoPlanning): Promise<Uint8Array> {
    let p = this.models.get(auto.modelKey);
    if (!p) {
      p = (async () => {
        let b: Buffer;
        try { b = await this.store.get(auto.modelKey); } catch (e) {
          if (e instanceof ObjectNotFoundError) throw new ArtifactMissingError('model not found in the store: publish it first', { key: auto.modelKey, cause: e });
          throw e;
        }
        if (sha256(b) !== auto.modelSha) throw new ArtifactMissingError('model bytes do not match their hash', { key: auto.modelKey });
        return new Uint8Array(b);
      })();
      p.catch(() => this.models.delete(auto.modelKey));
      this.models.set(auto.modelKey, p);
    }
    return p;
  }

  private async make(model: string, auto: AutoPlanning, h: number, w: number): Promise<void> {
    const bytes = await this.modelBytes(auto);
    const t0 = performance.now();
    const shape = [1, this.channels(bytes, model), h, w];
    let planned;
    try {
      planned = planModelAuto(bytes, shape, {
        objective: auto.objective, profile: auto.profile, vcpu: auto.vcpu, workerMemoryMb: auto.workerMemoryMb,
        concurrency: auto.concurrency, maxWorkers: auto.maxWorkers, batch: 1,
      }, model);
    } catch (e) {
      throw new PlanningFailedError(`model ${model}: no plan for ${h}x${w}: ${(e as Error).message}`, { cause: e });
    }
    const planMs = performance.now() - t0;
    let guard: GuardResult;
    try {
      guard = await guardPlan(bytes, planned.plan, planned.subModels, {
        budgetBytes: auto.guardMemoryMb * 1048576, threads: this.opts.threads,
        multipleOf: auto.shape.kind === 'dynamic' ? auto.shape.multipleOf : 1,
      });
    } catch (e) {
      if (e instanceof PlanMismatchError) throw new PlanningFailedError(e.message, { reason: 'plan_refused', context: e.details, cause: e });
      throw new PlanningFailedError(`model ${model}: the plan for ${h}x${w} could not be checked: ${(e as Error).message}`, { cause: e });
    }
    const { planKey } = await publishPlan(this.store, bytes, planned.plan, autoPlanName(h, w));
    const ev: PlanEvent = { model, shape: [h, w], planKey, planMs, guard, tiles: planned.plan.summary.tiles, label: planned.choice.label };
    this.made.push(ev);
    this.opts.log?.(ev);
  }

  private channels(bytes: Uint8Array, model: string): number {
    return modelIo(bytes, model).inputs[0].shape[1];
  }
}
