/**
 * The plans a sweep serves. ResNet-18's `2x2` and `4x4` are the committed plans (the paper's 24-
 * and 72-worker schemes); other models are planned here (one group per resolution stage).
 * `auto` is the planner's search (`planModelAuto`, src/planner/auto.ts: cuts and grids chosen with
 * the cost model's local profile for the lowest predicted latency, every worker's predicted peak
 * within the worker memory), made per batch size, worker resources and pool size, since the best
 * plan depends on all three. If the search fails (e.g. no plan fits the memory), `auto` is
 * skipped for that configuration with the planner's message. Everything goes through `makePlans`.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plan } from '../plan/schema.ts';
import { parsePlan } from '../planner/materialize.ts';
import { planModel, type Grid } from '../planner/plan.ts';
import { planModelAuto } from '../planner/auto.ts';
import { COMMITTED_PLANS } from '../planner/committed.ts';
import { localProfile } from '../cost/profiles.ts';
import type { PlanSpec, Resources } from './sweep.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface PlanFile {
  spec: PlanSpec;
  arch: string;
  /** For `auto`: the batch size the plan was searched for. */
  batch?: number;
  /** Served model name: the file's base name. */
  name: string;
  file: string;
  plan: Plan;
}

export interface MakePlansOptions {
  arch: string;
  modelBytes: Uint8Array;
  specs: readonly PlanSpec[];
  /** Batch sizes `auto` is searched for. */
  batches: readonly number[];
  /** Where generated plans are written. */
  dir: string;
  inputShape?: number[];
  /** Worker resources and pool size the plans are for (the `auto` search uses them). */
  resources: Resources;
  workers: number;
}

const grid = (n: number): Grid => ({ rows: n, cols: n });

/** The plan serving `spec` at `batch` among `plans`. */
export function planFor(plans: readonly PlanFile[], spec: PlanSpec, batch: number): PlanFile | undefined {
  return plans.find((p) => p.spec === spec && (spec !== 'auto' || p.batch === batch));
}

export async function makePlans(o: MakePlansOptions): Promise<{ plans: PlanFile[]; notes: string[] }> {
  const shape = o.inputShape ?? [1, 3, 224, 224];
  const size = shape[2];
  const plans: PlanFile[] = [];
  const notes: string[] = [];
  await mkdir(o.dir, { recursive: true });
  const write = async (spec: PlanSpec, name: string, plan: Plan, batch?: number) => {
    const file = join(o.dir, `${name}.json`);
    await writeFile(file, JSON.stringify(plan));
    plans.push({ spec, arch: o.arch, name, file, plan, ...(batch !== undefined ? { batch } : {}) });
  };
  for (const spec of o.specs) {
    if (spec === 'auto') {
      for (const batch of o.batches) {
        const r = autoPlan(o.modelBytes, shape, o.arch, o.resources, batch, o.workers);
        if (r.plan) await write(spec, `${o.arch}-${size}-auto-b${batch}`, r.plan, batch);
        else notes.push(r.note!);
      }
      continue;
    }
    const name = `${o.arch}-${size}-${spec}`;
    const committed = COMMITTED_PLANS.find((c) => c.arch === o.arch && c.file.endsWith(`/${name}.json`) && c.inputShape.join() === shape.join());
    if (committed) {
      const file = join(root, committed.file);
      plans.push({ spec, arch: o.arch, name, file, plan: parsePlan(JSON.parse(await readFile(file, 'utf8')), file) });
      continue;
    }
    await write(spec, name, planModel(o.modelBytes, { inputShape: shape, grid: grid(spec === '2x2' ? 2 : 4), cuts: 'stage', name: o.arch }).plan);
  }
  return { plans, notes };
}

/** The planner's latency-optimal plan for these worker resources, batch and pool size, or why not. */
export function autoPlan(modelBytes: Uint8Array, inputShape: number[], arch: string, r: Resources, batch: number, workers: number): { plan?: Plan; note?: string } {
  try {
    const { plan } = planModelAuto(modelBytes, inputShape, { objective: 'latency', profile: localProfile(), vcpu: r.vcpu, workerMemoryMb: r.memoryMb, concurrency: workers, batch }, arch);
    return { plan };
  } catch (e) {
    const err = e as Error & { issues?: { path: PropertyKey[]; message: string }[] };
    const first = err.issues?.[0];
    const msg = (first ? `${first.path.map(String).join('.')}: ${first.message}` : err.message).replace(/\s+/g, ' ').slice(0, 200);
    return { note: `plan auto skipped for ${arch} batch ${batch} (${r.vcpu} vCPU / ${r.memoryMb} MB): ${err.name}: ${msg}` };
  }
}
