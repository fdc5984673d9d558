import type { Plan } from '../plan/schema.ts';
import { planSchema, planVersionProblem, upgradePlanJson } from '../plan/schema.ts';
import { chainsFor } from '../planner/chains.ts';
import { ObjectNotFoundError, type ObjectStore } from '../store/object-store.ts';
import { buildRoutes, type Routes } from '../plan/bundles.ts';
import { ArtifactMissingError } from './errors.ts';

/**
 * Per-instance cache of published plans and their routes (which chains, which bundles), so a
 * warm function parses a plan once. No runtime imports: the handler uses it too.
 */
export class PlanCache {
  private plans = new Map<string, Promise<Plan>>();
  private routes = new Map<string, Routes>();
  constructor(protected readonly store: ObjectStore) {}

  getPlan(key: string): Promise<Plan> {
    let p = this.plans.get(key);
    if (!p) {
      p = (async () => {
        const raw = await this.fetch(key, 'plan');
        let json: unknown;
        try { json = JSON.parse(raw.toString('utf8')); } catch (cause) { throw new ArtifactMissingError(`plan is not JSON: ${(cause as Error).message}`, { key, cause }); }
        // Plans published, or cached per shape, by older code: upgraded when lossless, refused by version otherwise.
        json = upgradePlanJson(json);
        const version = planVersionProblem(json);
        if (version) throw new ArtifactMissingError(`${version}; republish it`, { key });
        const r = planSchema.safeParse(json);
        if (!r.success) throw new ArtifactMissingError(`plan is not valid (${r.error.issues.slice(0, 4).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}); republish it`, { key });
        return r.data;
      })();
      p.catch(() => this.plans.delete(key));
      this.plans.set(key, p);
    }
    return p;
  }

  /** The plan and its routes when at most `maxWorkers` worker instances run at once. */
  async getRoutes(key: string, maxWorkers: number): Promise<{ plan: Plan; routes: Routes }> {
    const plan = await this.getPlan(key);
    const k = `${key}\n${maxWorkers}`;
    let r = this.routes.get(k);
    if (!r) { r = buildRoutes(plan, chainsFor(plan, maxWorkers)); this.routes.set(k, r); }
    return { plan, routes: r };
  }

  protected async fetch(key: string, what: string): Promise<Buffer> {
    try {
      return await this.store.get(key);
    } catch (e) {
      if (e instanceof ObjectNotFoundError) throw new ArtifactMissingError(`${what} not found in the store: publish the plan first`, { key, cause: e });
      throw e;
    }
  }
}
