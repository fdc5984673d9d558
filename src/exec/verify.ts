import type { Plan } from '../plan/schema.ts';
import { createSession, type SessionOptions, type Tensor } from '../runtime/ort.ts';
import { compareTensors, randomTensor } from '../tensor/random.ts';
import { executePlan, type LocalStageTiming } from './in-process.ts';
import { fromFloat32, type DType } from '../tensor/dtype.ts';
import { AttrType, DataType, decodeModel, encodeModel } from '../onnx/model-io.ts';
import { buildGraph } from '../graph/ir.ts';
import { inferTypes } from '../graph/types.ts';

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
  timings: LocalStageTiming[];
}

/** Tolerance of the equality check: float rounding, scaled to the output's magnitude. */
export const tolerance = (maxRef: number, eps = 1e-4) => eps * Math.max(1, maxRef);

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

const ONNX_TYPE: Record<DType, number> = {
  float32: DataType.FLOAT, float16: DataType.FLOAT16, bfloat16: DataType.BFLOAT16, int8: DataType.INT8,
  uint8: DataType.UINT8, int32: DataType.INT32, int64: DataType.INT64, bool: DataType.BOOL,
};

/**
 * The whole model with every stage boundary of `plan` as an extra output, holding what the
 * plan moves there: a stage-by-stage check feeds each stage from it. A float16 value the plan
 * moves as float32 (graph/types.ts `float16Boundaries`) is tapped as Neg -> Neg -> Cast(float),
 * the producing side of the boundary: its unrounded value, and ORT decides the same Casts as
 * in the model alone (a plain output or Cast would keep a rounding Cast alive).
 */
export function withBoundaryOutputs(modelBytes: Uint8Array, plan: Plan): Uint8Array {
  const model = decodeModel(modelBytes, plan.model.name);
  const types = inferTypes(buildGraph(decodeModel(modelBytes, plan.model.name), plan.model.name));
  const g = model.graph!;
  const have = new Set((g.output ?? []).map((o) => o.name));
  const taps: { name: string; dtype: DType }[] = [];
  for (const s of plan.stages) {
    for (const t of [...s.inputs, ...s.outputs]) {
      if (have.has(t.name) || t.name === plan.input.name) continue;
      have.add(t.name);
      taps.push({ name: t.name, dtype: t.dtype ?? 'float32' });
    }
  }
  const widened = new Set(taps.filter((t) => t.dtype === 'float32' && types.get(t.name) === DataType.FLOAT16).map((t) => t.name));
  if (widened.size) {
    const rename = (x: string) => (widened.has(x) ? `${x}__h` : x);
    g.node = (g.node ?? []).map((n) => ({ ...n, input: (n.input ?? []).map(rename), output: (n.output ?? []).map(rename) }));
    g.valueInfo = (g.valueInfo ?? []).map((v) => ({ ...v, name: rename(v.name ?? '') }));
    for (const t of widened) {
      g.node.push({ opType: 'Neg', input: [`${t}__h`], output: [`${t}__wneg`] });
      g.node.push({ opType: 'Neg', input: [`${t}__wneg`], output: [`${t}__w16`] });
      g.node.push({ opType: 'Cast', input: [`${t}__w16`], output: [t], attribute: [{ name: 'to', type: AttrType.INT, i: DataType.FLOAT }] });
    }
  }
  for (const t of taps) g.output!.push({ name: t.name, type: { tensorType: { elemType: ONNX_TYPE[t.dtype] } } });
  return encodeModel(model);
}
