import { sha256 } from '../onnx/model-io.ts';
import { branchKey, type Plan } from '../plan/schema.ts';
import { materializePlan } from '../planner/materialize.ts';
import { createSession, type ModelSession, type SessionOptions } from '../runtime/ort.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { PlanCache } from './plans.ts';
import { ArtifactMissingError } from './errors.ts';
import { artifactKeys } from './keys.ts';

/**
 * Uploads a plan and its sub-models. Sub-models are content-addressed, so publishing several
 * plans of one model shares identical groups, and re-publishing is idempotent.
 */
export async function publishPlan(store: ObjectStore, modelBytes: Uint8Array, plan: Plan, planName: string): Promise<{ planKey: string; uploaded: number; bytes: number }> {
  const { subModels } = materializePlan(modelBytes, plan);
  let uploaded = 0;
  let bytes = 0;
  const existing = new Set(await store.list('artifacts/submodels/'));
  const models: [string, Uint8Array][] = [];
  for (const s of plan.stages) {
    models.push([s.subModel.sha256, subModels.get(s.id)!]);
    if (s.kind === 'master' && s.reduce?.branch) models.push([s.reduce.branch.sha256, subModels.get(branchKey(s.id))!]);
  }
  for (const [sha, b] of models) {
    const key = artifactKeys.subModel(sha);
    if (existing.has(key)) continue;
    existing.add(key);
    await store.put(key, b);
    uploaded++;
    bytes += b.length;
  }
  const planKey = artifactKeys.plan(plan.model.sha256, planName);
  await store.put(planKey, Buffer.from(JSON.stringify(plan)));
  return { planKey, uploaded, bytes };
}

/**
 * Per-instance cache of plans, routes and ORT sessions: a warm function never reloads a model.
 * Sessions are keyed by sub-model hash and evicted least-recently-used beyond `maxSessions`,
 * which bounds a worker's memory when one instance serves tiles of many groups.
 */
export class ArtifactCache extends PlanCache {
  private sessions = new Map<string, Promise<ModelSession>>();
  loads = 0;
  constructor(store: ObjectStore, private readonly opts: SessionOptions & { maxSessions?: number } = {}) { super(store); }

  /** Releases every cached session (a test or an embedding process shutting down). */
  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((p) => p.then((s) => s.release(), () => undefined)));
  }

  /** Returns the session and whether it was already loaded (warm). */
  async getSession(subSha: string): Promise<{ session: ModelSession; cached: boolean }> {
    const hit = this.sessions.get(subSha);
    if (hit) {
      this.sessions.delete(subSha);
      this.sessions.set(subSha, hit);
      return { session: await hit, cached: true };
    }
    const p = (async () => {
      const key = artifactKeys.subModel(subSha);
      const bytes = await this.fetch(key, 'sub-model');
      if (sha256(bytes) !== subSha) throw new ArtifactMissingError('sub-model bytes do not match their hash', { key });
      this.loads++;
      return createSession(bytes, `sub-model ${subSha.slice(0, 12)}`, this.opts);
    })();
    p.catch(() => this.sessions.delete(subSha));
    this.sessions.set(subSha, p);
    const max = this.opts.maxSessions ?? 8;
    while (this.sessions.size > max) {
      const [oldest, s] = this.sessions.entries().next().value as [string, Promise<ModelSession>];
      this.sessions.delete(oldest);
      void s.then((x) => x.release(), () => undefined);
    }
    return { session: await p, cached: false };
  }
}
