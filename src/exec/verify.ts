import type { Plan } from '../plan/schema.ts';
import { createSession, type SessionOptions, type Tensor } from '../runtime/ort.ts';
import { compareTensors, randomTensor } from '../tensor/random.ts';
import { executePlan, type StageTiming } from './in-process.ts';
import { fromFloat32 } from '../tensor/dtype.ts';

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

/**
 * Tolerance of the equality check: float rounding, scaled to the output's magnitude. `eps` is
 * 1e-4, except for plans that move float16 or bfloat16 maps between stages (`boundaryEps`).
 */
export const tolerance = (maxRef: number, eps = 1e-4) => eps * Math.max(1, maxRef);

/**
 * ORT computes a float16 segment in float32 and drops the Cast pairs between its ops, so the
 * whole model never rounds inside it. The planner never cuts there (stages.ts `noCut`), but a
 * map that must go to the master (a Softmax over channels, say) crosses as float16, rounded:
 * such a plan equals the whole model to one ulp of that type, 2^-10 (2^-7 for bfloat16).
 */
export function boundaryEps(plan: Plan): number {
  const dtypes = new Set(plan.stages.flatMap((s) => [...s.inputs, ...s.outputs].map((t) => t.dtype ?? 'float32')));
  return dtypes.has('bfloat16') ? 2 ** -7 : dtypes.has('float16') ? 2 ** -10 : 1e-4;
}

export async function monolithic(modelBytes: Uint8Array, input: Tensor, inputName: string, opts: SessionOptions = {}) {
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
  const random = randomTensor(shape, opts.seed ?? 1);
  const inputDtype = plan.input.dtype ?? 'float32';
  const input: Tensor = inputDtype === 'float16' || inputDtype === 'bfloat16' ? fromFloat32(inputDtype, shape, random.data) : random;
  const eps = boundaryEps(plan);
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
    ok: maxAbsDiff <= tolerance(maxRef, eps), maxAbsDiff, maxRef, tolerance: tolerance(maxRef, eps),
    groups: plan.summary.groups, tiles: plan.summary.tiles, redundancy: plan.summary.redundancy,
    monolithicMs, partitionedMs, timings,
  };
}
