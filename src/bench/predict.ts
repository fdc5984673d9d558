/**
 * The predicted columns, from the cost model (src/cost/model.ts) with the local profile (and the
 * FC profile for the FC columns, with both ends of its published ranges). `predictColumns` is the one place the bench calls the model; a
 * model error leaves the columns empty with a note instead of failing the run.
 */
import type { Plan } from '../plan/schema.ts';
import { predictPlan, type CostProfile } from '../cost/model.ts';
import { loadProfileRange, localProfile, type ProfileRange } from '../cost/profiles.ts';
import type { PredictedColumns } from './columns.ts';

export interface CostModel {
  predictPlan: typeof predictPlan;
  local: CostProfile;
  fc?: CostProfile;
  /** The FC profile at both ends of its published ranges. */
  fcRange?: ProfileRange;
}

/** The model and its profiles, or a note saying why predictions are off. */
export function loadCostModel(): { model?: CostModel; note?: string } {
  let local: CostProfile;
  try {
    local = localProfile();
  } catch (e) {
    return { note: `predicted columns empty: no local cost profile (${(e as Error).message.split('\n')[0]})` };
  }
  let fcRange: ProfileRange | undefined;
  let note: string | undefined;
  try {
    fcRange = loadProfileRange('fc');
  } catch (e) {
    note = `predicted FC columns empty: ${(e as Error).message.split('\n')[0]}`;
  }
  return { model: { predictPlan, local, fc: fcRange?.typical, fcRange }, note };
}

export interface PredictInput {
  plan: Plan;
  vcpu: number;
  memoryMb: number;
  batch: number;
  /** Worker instances that can run at once (the stack's WORKER_MAX_INSTANCES). */
  workerLanes: number;
  /** Requests the bench keeps in flight at once: they share this machine's cores and instances. */
  requests?: number;
  master: { vcpu: number; memoryMb: number };
  handler: { vcpu: number; memoryMb: number };
}

/** Predicted columns for one configuration, or undefined (no model, or the model threw: `onError`). */
export function predictColumns(m: CostModel | undefined, inp: PredictInput, onError?: (msg: string) => void): PredictedColumns | undefined {
  if (!m) return undefined;
  try {
    const opts = { vcpu: inp.vcpu, memoryMb: inp.memoryMb, batch: inp.batch, concurrency: inp.workerLanes, master: inp.master, handler: inp.handler };
    const local = m.predictPlan(inp.plan, { ...opts, profile: m.local, requests: inp.requests ?? 1 });
    // On FC every tile can get its own instance: the plan's tile count bounds the concurrency.
    const fcOpts = { ...opts, concurrency: Math.max(1, inp.plan.summary.tiles) };
    const fc = m.fc ? m.predictPlan(inp.plan, { ...fcOpts, profile: m.fc }) : undefined;
    const best = m.fcRange ? m.predictPlan(inp.plan, { ...fcOpts, profile: m.fcRange.best }) : undefined;
    const worst = m.fcRange ? m.predictPlan(inp.plan, { ...fcOpts, profile: m.fcRange.worst }) : undefined;
    return {
      latencyMs: local.latencyMs, workerPeakMb: local.workerPeakMb, invocations: local.invocations,
      storeRequests: local.storeRequests, storeBytes: local.storeBytes, computeUnits: local.billed.computeUnits,
      fcLatencyMs: fc?.latencyMs, fcComputeUnits: fc?.billed.computeUnits, fcLatencyBestMs: best?.latencyMs, fcLatencyWorstMs: worst?.latencyMs,
    };
  } catch (e) {
    onError?.(`cost model failed for ${inp.plan.model.name} batch ${inp.batch}: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}
