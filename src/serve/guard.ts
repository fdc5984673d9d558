/**
 * The guard: before a plan serves its first request it is run in-process, stage by stage, and
 * every stage's outputs are compared with monolithic ONNX Runtime's values of the same tensors.
 * Each stage is fed the monolithic values of its inputs, so a wrong stage is named exactly,
 * never blamed on an earlier one. When the monolithic run at the plan's shape would not fit the
 * memory budget, the same grids and cuts are planned at a smaller shape and that plan is checked.
 */
import type { GroupStage, Plan } from '../plan/schema.ts';
import { cutCandidates, planModel, type Grid } from '../planner/plan.ts';
import { createSession, type SessionOptions, type Tensor } from '../runtime/ort.ts';
import { cropRegion, pasteRegion, zerosOf } from '../tensor/nchw.ts';
import { dtypeOf, fromFloat32 } from '../tensor/dtype.ts';
import { compareTensors, randomTensor } from '../tensor/random.ts';
import { tolerance, withBoundaryOutputs } from '../exec/verify.ts';
import { runTile } from '../exec/tile.ts';
import { ServeError } from './errors.ts';

/** A plan whose answer differs from monolithic ORT: it is refused, naming the first wrong stage. */
export class PlanMismatchError extends ServeError {
  override name = 'PlanMismatchError';
  constructor(message: string, readonly stage: { id: number; label: string }, readonly diff: { maxAbsDiff: number; maxRef: number; tolerance: number; tensor: string }) {
    super(message);
  }
  override get details(): Record<string, unknown> {
    return { ...super.details, stage: this.stage.id, stageLabel: this.stage.label, ...this.diff };
  }
}

export interface GuardResult {
  /** The shape the check ran at: the plan's own, or a smaller one with the same grids and cuts. */
  shape: number[];
  reduced: boolean;
  stages: number;
  maxAbsDiff: number;
  ms: number;
}


/**
 * Bytes the guard needs for `plan`: every boundary tensor twice (monolithic and tiled), the
 * largest group's working set (its tiles' op peaks, which cover the whole map), the model, and
 * the runtime.
 */
export function guardBytes(plan: Plan): number {
  let boundary = 0;
  const seen = new Set<string>();
  let working = 0;
  for (const s of plan.stages) {
    for (const t of s.outputs) {
      if (seen.has(t.name) || !t.shape) continue;
      seen.add(t.name);
      boundary += t.shape.reduce((a, b) => a * b, 1) * 4;
    }
    if (s.kind === 'group') working = Math.max(working, s.tiles.reduce((a, t) => a + t.peakBytes, 0));
  }
  return 2 * boundary + 2 * working + 2 * plan.model.bytes + RUNTIME_BYTES;
}

const RUNTIME_BYTES = 200 * 1048576;

/**
 * Where the plan cuts a run of tileable ops into groups: between two consecutive groups, the
 * cut candidate (articulation tensor, planner/plan.ts cutCandidates) the first hands to the
 * second. Boundaries next to master stages need no cut: they are where the run ends anyway.
 */
export function planCuts(plan: Plan, candidates: Set<string>): string[] {
  const cuts: string[] = [];
  for (let i = 1; i < plan.stages.length; i++) {
    const a = plan.stages[i - 1];
    const b = plan.stages[i];
    if (a.kind !== 'group' || b.kind !== 'group') continue;
    const made = new Set(a.outputs.map((o) => o.name));
    const t = b.inputs.find((x) => x.spatial && made.has(x.name) && candidates.has(x.name));
    if (t) cuts.push(t.name);
  }
  return cuts;
}

const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
const lcm = (a: number, b: number) => (a / gcd(a, b)) * b;

const structure = (p: Plan) => p.stages.map((s) => `${s.kind}:${s.nodes.join(',')}${s.kind === 'group' ? `@${s.grid.rows}x${s.grid.cols}` : ''}`).join('|');

/**
 * The shape the guard runs at: the plan's own if its check fits `budgetBytes`, otherwise H and
 * W scaled down by whole steps of 32 (and of `multipleOf`), so every stride-2 level up to /32
 * keeps the parity, hence the padding and the ceil-mode overhangs, of the full size; at least
 * `minTile` pixels per tile.
 */
export function guardShape(plan: Plan, budgetBytes: number, multipleOf = 1, minTile = 128): number[] {
  const [n, c, h, w] = plan.input.shape;
  const need = guardBytes(plan);
  if (need <= budgetBytes) return [n, c, h, w];
  const rows = Math.max(1, ...plan.stages.map((s) => (s.kind === 'group' ? s.grid.rows : 1)));
  const cols = Math.max(1, ...plan.stages.map((s) => (s.kind === 'group' ? s.grid.cols : 1)));
  const f = Math.sqrt(Math.max(0.01, (budgetBytes - RUNTIME_BYTES) / (need - RUNTIME_BYTES)));
  const step = lcm(32, multipleOf);
  const side = (v: number, tiles: number) => {
    const floor = v - Math.max(0, Math.floor((v - tiles * minTile) / step)) * step;
    return Math.max(floor, v - Math.max(0, Math.ceil((v - Math.floor(v * f)) / step)) * step);
  };
  return [n, c, side(h, rows), side(w, cols)];
}

/**
 * Checks `plan` (its sub-models `subModels`) against monolithic ORT. With `budgetBytes` below
 * what the check at the plan's shape needs, plans the same grids and cuts at a smaller shape and
 * checks that. Throws PlanMismatchError naming the first stage whose outputs differ.
 */
export async function guardPlan(
  modelBytes: Uint8Array, plan: Plan, subModels: Map<number, Uint8Array>,
  opts: SessionOptions & { budgetBytes?: number; multipleOf?: number; seed?: number } = {},
): Promise<GuardResult> {
  const t0 = performance.now();
  const shape = guardShape(plan, opts.budgetBytes ?? Infinity, opts.multipleOf);
  let checked = plan;
  let subs = subModels;
  const reduced = shape[2] !== plan.input.shape[2] || shape[3] !== plan.input.shape[3];
  if (reduced) {
    const grids: Grid[] = plan.stages.filter((s): s is GroupStage => s.kind === 'group').map((s) => s.grid);
    const candidates = new Set(cutCandidates(modelBytes, shape).map((c) => c.tensor));
    let small;
    try {
      small = planModel(modelBytes, { inputShape: shape, grid: grids, cuts: { tensors: planCuts(plan, candidates) }, maxWorkers: plan.maxWorkers, name: plan.model.name });
    } catch (e) {
      throw new ServeError(`guard: the plan of ${plan.model.name} at ${plan.input.shape.join('x')} cannot be made again at the smaller shape ${shape.join('x')}: ${(e as Error).message}`, { cause: e });
    }
    if (structure(small.plan) !== structure(plan)) {
      throw new ServeError(`guard: the plan of ${plan.model.name} at ${plan.input.shape.join('x')} cannot be checked at the smaller shape ${shape.join('x')} (its stages differ there), and the check at full size needs ${Math.ceil(guardBytes(plan) / 1048576)} MB`);
    }
    checked = small.plan;
    subs = small.subModels;
  }
  const inputDtype = checked.input.dtype ?? 'float32';
  const random = randomTensor(checked.input.shape, opts.seed ?? 1);
  const input: Tensor = inputDtype === 'float16' || inputDtype === 'bfloat16' ? fromFloat32(inputDtype, checked.input.shape, random.data) : random;
  const ref = new Map<string, Tensor>([[checked.input.name, input]]);
  const mono = await createSession(withBoundaryOutputs(modelBytes, checked), `${plan.model.name} (monolithic)`, opts);
  try {
    for (const [k, v] of Object.entries(await mono.run({ [checked.input.name]: input }))) ref.set(k, v);
  } finally {
    await mono.release();
  }
  let worst = 0;
  const get = (stage: number, name: string) => {
    const t = ref.get(name);
    if (!t) throw new ServeError(`guard: stage ${stage} reads ${name}, which the monolithic run did not produce`);
    return t;
  };
  for (const stage of checked.stages) {
    const session = await createSession(subs.get(stage.id)!, `${plan.model.name} stage ${stage.id}`, opts);
    const got: Record<string, Tensor> = {};
    try {
      if (stage.kind === 'master') {
        const feeds: Record<string, Tensor> = {};
        for (const i of stage.inputs) feeds[i.name] = get(stage.id, i.name);
        Object.assign(got, await session.run(feeds));
      } else {
        const whole: Record<string, Tensor> = {};
        for (const i of stage.inputs) if (!i.spatial) whole[i.name] = get(stage.id, i.name);
        for (const tile of stage.tiles) {
          const spatial: Record<string, Tensor> = {};
          for (const i of tile.inputs) spatial[i.tensor] = cropRegion(get(stage.id, i.tensor), i.region);
          const res = await runTile(session, stage, tile, spatial, whole);
          for (const o of tile.outputs) {
            const t = res[o.tensor];
            got[o.tensor] ??= zerosOf(dtypeOf(t), [checked.input.shape[0], ...stage.outputs.find((x) => x.name === o.tensor)!.shape.slice(1)]);
            pasteRegion(got[o.tensor], t, o.region);
          }
        }
      }
    } finally {
      await session.release();
    }
    for (const o of stage.outputs) {
      const want = get(stage.id, o.name);
      const have = got[o.name];
      const c = have ? compareTensors(want, have) : { maxAbsDiff: Infinity, maxRef: 0 };
      const tol = tolerance(c.maxRef);
      worst = Math.max(worst, c.maxAbsDiff);
      if (!(c.maxAbsDiff <= tol)) {
        const label = plan.stages.find((s) => s.id === stage.id)?.label ?? stage.label;
        throw new PlanMismatchError(
          `plan of ${plan.model.name} at ${plan.input.shape.join('x')} refused: stage ${stage.id} (${label}) differs from monolithic ORT on ${o.name}: maxAbsDiff ${c.maxAbsDiff} > ${tol.toExponential(2)} (checked at ${checked.input.shape.join('x')})`,
          { id: stage.id, label }, { maxAbsDiff: c.maxAbsDiff, maxRef: c.maxRef, tolerance: tol, tensor: o.name },
        );
      }
    }
  }
  return { shape: checked.input.shape, reduced, stages: checked.stages.length, maxAbsDiff: worst, ms: performance.now() - t0 };
}
