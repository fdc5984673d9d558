import { planModel } from '../../src/planner/plan.ts';
import { publishPlan } from '../../src/serve/artifacts.ts';
import { bundleBody } from '../../src/serve/segments.ts';
import { requestKeys } from '../../src/serve/keys.ts';
import { INPUT, type Routes } from '../../src/plan/bundles.ts';
import { randomTensor } from '../../src/tensor/random.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';
import type { Plan } from '../../src/plan/schema.ts';
import type { FloatTensor } from '../../src/runtime/ort.ts';
import { randomCase, type RandomCase } from './random-models.ts';

/**
 * One small generated CNN (a group, an SE-style reduction, a group) on a 2x2 grid, planned twice:
 * `wide` (100 workers: one chain of 4 workers that wait for each other, the reduction inside it)
 * and `narrow` (2 workers: one single-group chain per group, the reduction a master stage between
 * them). For unit tests of the master and the worker.
 */
export interface ServeCase { c: RandomCase; wide: Plan; narrow: Plan; x: FloatTensor }

export function serveCase(seed = 1): ServeCase {
  const c = randomCase(seed, { shape: [1, 2, 16, 16], maxOps: 3, minSide: 4, se: 0.5, minReductions: 1 });
  const plan = (maxWorkers: number) => planModel(c.bytes, { inputShape: c.shape, grid: { rows: 2, cols: 2 }, cuts: 'block', maxWorkers }).plan;
  return { c, wide: plan(100), narrow: plan(2), x: randomTensor(c.shape, seed) };
}

export async function publish(store: ObjectStore, k: ServeCase, plan: Plan, name: string): Promise<string> {
  return (await publishPlan(store, k.c.bytes, plan, name)).planKey;
}

/** The handler's part of a request: the input bundle every first-stage reader waits for. */
export async function putInput(store: ObjectStore, routes: Routes, rid: string, x: FloatTensor): Promise<void> {
  const full = { y0: 0, y1: x.dims[2], x0: 0, x1: x.dims[3] };
  await store.put(requestKeys.bundle(rid, INPUT), bundleBody(routes.bundles.get(INPUT)!, () => ({ t: x, region: full })));
}
