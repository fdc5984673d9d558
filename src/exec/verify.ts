import type { Plan } from '../plan/schema.ts';
import { createSession, type FloatTensor, type SessionOptions } from '../runtime/ort.ts';
import { compareTensors, randomTensor } from '../tensor/random.ts';
import { executePlan, type StageTiming } from './in-process.ts';

export interface VerifyResult {
  ok: boolean;
  maxAbsDiff: number;
  maxRef: number;
  tolerance: number;
  groups: number;
  tiles: number;
  redundancy: number;
  monolithicMs: number;
  partitionedMs: number;
  timings: StageTiming[];
}

/** Tolerance of the equality check: float rounding, scaled to the output's magnitude. */
export const tolerance = (maxRef: number) => 1e-4 * Math.max(1, maxRef);

export async function monolithic(modelBytes: Uint8Array, input: FloatTensor, inputName: string, opts: SessionOptions = {}) {
  const s = await createSession(modelBytes, 'monolithic', opts);
  try {
    return await s.run({ [inputName]: input });
  } finally {
    await s.release();
  }
}

/** Runs the plan tile by tile and the whole model in ORT on the same seeded input, and compares. */
export async function verifyPlan(modelBytes: Uint8Array, plan: Plan, subModels: Map<number, Uint8Array>, opts: { seed?: number; batch?: number } & SessionOptions = {}): Promise<VerifyResult> {
  const shape = plan.input.shape.slice();
  if (opts.batch) shape[0] = opts.batch;
  const input = randomTensor(shape, opts.seed ?? 1);
  let t0 = performance.now();
  const ref = await monolithic(modelBytes, input, plan.input.name, opts);
  const monolithicMs = performance.now() - t0;
  t0 = performance.now();
  const { outputs, timings } = await executePlan(plan, subModels, input, opts);
  const partitionedMs = performance.now() - t0;
  let maxAbsDiff = 0;
  let maxRef = 0;
  for (const o of plan.outputs) {
    const c = compareTensors(ref[o.name], outputs[o.name]);
    maxAbsDiff = Math.max(maxAbsDiff, c.maxAbsDiff);
    maxRef = Math.max(maxRef, c.maxRef);
  }
  return {
    ok: maxAbsDiff <= tolerance(maxRef), maxAbsDiff, maxRef, tolerance: tolerance(maxRef),
    groups: plan.summary.groups, tiles: plan.summary.tiles, redundancy: plan.summary.redundancy,
    monolithicMs, partitionedMs, timings,
  };
}
