/**
 * The predicted columns, from the cost model (src/cost/model.ts) with the local profile (and the
 * FC profile for the FC columns). `predictColumns` is the one place the bench calls the model; a
 * model error leaves the columns empty with a note instead of failing the run.
 */
import type { Plan } from '../plan/schema.ts';
import { predictPlan, type CostProfile } from '../cost/model.ts';
import { fcProfile, localProfile } from '../cost/profiles.ts';
import type { PredictedColumns } from './columns.ts';

export interface CostModel {
  predictPlan: typeof predictPlan;
  local: CostProfile;
  fc?: CostProfile;
}

/** The model and its profiles, or a note saying why predictions are off. */
export function loadCostModel(): { model?: CostModel; note?: string } {
  let local: CostProfile;
  try {
    local = localProfile();
  } catch (e) {
    return { note: `predicted columns empty: no local cost profile (${(e as Error).message.split('\n')[0]})` };
  }
  let fc: CostProfile | undefined;
  let note: string | undefined;
  try {
    fc = fcProfile();
  } catch (e) {
    note = `predicted FC columns empty: ${(e as Error).message.split('\n')[0]}`;
  }
  return { model: { predictPlan, local, fc }, note };
}

export interface PredictInput {
  plan: Plan;
  vcpu: number;
  memoryMb: number;
  batch: number;
  /** Worker instances that can run at once (the stack's WORKER_MAX_INSTANCES). */
  workerLanes: number;
  master: { vcpu: number; memoryMb: number };
  handler: { vcpu: number; memoryMb: number };
}

/** Predicted columns for one configuration, or undefined (no model, or the model threw: `onError`). */
export function predictColumns(m: CostModel | undefined, inp: PredictInput, onError?: (msg: string) => void): PredictedColumns | undefined {
  if (!m) return undefined;
  try {
    const opts = { vcpu: inp.vcpu, memoryMb: inp.memoryMb, batch: inp.batch, concurrency: inp.workerLanes, master: inp.master, handler: inp.handler };
    const local = m.predictPlan(inp.plan, { ...opts, profile: m.local });
    // On FC every tile can get its own instance: the plan's tile count bounds the concurrency.
    const fc = m.fc ? m.predictPlan(inp.plan, { ...opts, concurrency: Math.max(1, inp.plan.summary.tiles), profile: m.fc }) : undefined;
    return {
      latencyMs: local.latencyMs, workerPeakMb: local.workerPeakMb, invocations: local.invocations,
      storeRequests: local.storeRequests, storeBytes: local.storeBytes, computeUnits: local.billed.computeUnits,
      fcLatencyMs: fc?.latencyMs, fcComputeUnits: fc?.billed.computeUnits,
    };
  } catch (e) {
    onError?.(`cost model failed for ${inp.plan.model.name} batch ${inp.batch}: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}
