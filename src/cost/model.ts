import { z } from 'zod';
import type { Plan } from '../plan/schema.ts';
import { buildExchange, exchangeBytes } from '../serve/exchange.ts';
import { estimateCost, type BilledInvocation, type CostEstimate } from '../serve/cost.ts';

/**
 * Parameters of the performance and cost model. One profile describes one platform: the local
 * stack (calibrated by `npm run bench -- --calibrate`) or Function Compute (documented
 * assumptions, profiles/fc.json).
 */
export const costProfileSchema = z.object({
  name: z.string(),
  notes: z.string().default(''),
  /** Sustained CNN inference throughput of one vCPU in ORT (GFLOP/s). */
  gflopsPerVcpu: z.number().positive(),
  /** Speed-up per extra vCPU beyond the first (ORT intra-op threads), 0..1. */
  threadEfficiency: z.number().min(0).max(1),
  /** Round trip of one synchronous invocation, excluding the function's own work (ms). */
  invokeOverheadMs: z.number().nonnegative(),
  /** Start of a new instance: runtime + module + ORT load (ms). */
  coldStartMs: z.number().nonnegative(),
  /** Share of worker invocations that hit a cold instance in steady state. */
  coldStartProbability: z.number().min(0).max(1),
  /** First-byte latency of one object-store request (ms). */
  storeLatencyMs: z.number().nonnegative(),
  /** Object-store throughput of one function instance (MB/s). */
  storeBandwidthMBps: z.number().positive(),
  /** Creating an ORT session, per MB of sub-model (ms). */
  sessionLoadMsPerMB: z.number().nonnegative(),
  /** Probability that a warm worker already holds the group's session. */
  sessionHitRate: z.number().min(0).max(1),
  /** RSS of an idle worker instance (runtime, ORT, code) in MB. */
  baseRssMb: z.number().nonnegative(),
  /** RSS per byte of sub-model weights once the session exists (pre-packing, arena). */
  weightRssFactor: z.number().nonnegative(),
  /** RSS per byte of a tile's peak activations (ORT arena and copies). */
  activationRssFactor: z.number().nonnegative(),
  /** Master-side throughput for master segments (GFLOP/s). */
  masterGflops: z.number().positive(),
  /** Fixed handler + master bookkeeping per request (ms). */
  requestOverheadMs: z.number().nonnegative(),
  /** Workers that can compute at the same time whatever the instance count (local: CPU cores). */
  maxParallelWorkers: z.number().int().positive().default(100_000),
}).strict();
export type CostProfile = z.infer<typeof costProfileSchema>;

export interface PredictOptions {
  profile: CostProfile;
  /** Worker vCPU and memory (MB). */
  vcpu: number;
  memoryMb: number;
  batch: number;
  /** Worker instances that can run at once (FC: effectively the tile count). */
  concurrency: number;
  /** Resources of the master and handler, for billing. */
  master?: { vcpu: number; memoryMb: number };
  handler?: { vcpu: number; memoryMb: number };
}

export interface GroupPrediction {
  id: number;
  tiles: number;
  latencyMs: number;
  maxTileMs: number;
  computeMs: number;
  ioMs: number;
  workerPeakMb: number;
}

export interface Prediction {
  latencyMs: number;
  workerPeakMb: number;
  invocations: number;
  storeRequests: number;
  storeBytes: number;
  billed: CostEstimate;
  groups: GroupPrediction[];
}

const MB = 1048576;

export function vcpuSpeed(p: CostProfile, vcpu: number): number {
  return p.gflopsPerVcpu * (vcpu <= 1 ? vcpu : 1 + (vcpu - 1) * p.threadEfficiency);
}

/** Makespan of `durations` on `lanes` parallel instances (longest-first list scheduling). */
export function makespan(durations: number[], lanes: number): number {
  const load = new Array(Math.max(1, Math.min(lanes, durations.length))).fill(0);
  for (const d of durations.slice().sort((a, b) => b - a)) {
    let i = 0;
    for (let j = 1; j < load.length; j++) if (load[j] < load[i]) i = j;
    load[i] += d;
  }
  return Math.max(0, ...load);
}

/** What the model needs to know about one tile. */
export interface TileWork { flops: number; peakBytes: number; readRequests: number; readBytes: number; writeRequests: number; writeBytes: number }

/**
 * `residentWeightBytes`: weights a worker instance holds while running this group's tile. A
 * worker caches the sessions of every group it has served, so this is all groups' weights.
 */
export interface GroupWork { id: number; tiles: TileWork[]; residentWeightBytes: number; subModelBytes: number }

/**
 * One group: every tile's duration (compute at the worker's vCPU, store reads and writes,
 * session load when the instance lacks it, expected cold start), scheduled on `concurrency`
 * instances. All byte and FLOP figures are at the request's batch size.
 */
export function predictGroup(g: GroupWork, o: PredictOptions): GroupPrediction & { billedMs: number[] } {
  const p = o.profile;
  const speed = vcpuSpeed(p, o.vcpu) * 1e9;
  const ioMs = (requests: number, bytes: number) => (requests ? p.storeLatencyMs : 0) + (bytes / MB / p.storeBandwidthMBps) * 1000;
  const sessionMs = (g.subModelBytes / MB) * p.sessionLoadMsPerMB * (1 - p.sessionHitRate);
  const durations: number[] = [];
  const billedMs: number[] = [];
  let maxCompute = 0;
  let maxIo = 0;
  let peak = 0;
  for (const t of g.tiles) {
    const compute = (t.flops / speed) * 1000;
    const io = ioMs(t.readRequests, t.readBytes) + ioMs(t.writeRequests, t.writeBytes);
    const d = compute + io + sessionMs + p.coldStartProbability * p.coldStartMs;
    billedMs.push(d);
    durations.push(d + p.invokeOverheadMs);
    maxCompute = Math.max(maxCompute, compute);
    maxIo = Math.max(maxIo, io);
    peak = Math.max(peak, p.baseRssMb + (g.residentWeightBytes * p.weightRssFactor + t.peakBytes * p.activationRssFactor) / MB);
  }
  return {
    id: g.id, tiles: g.tiles.length, latencyMs: makespan(durations, Math.min(o.concurrency, p.maxParallelWorkers)), maxTileMs: Math.max(0, ...durations),
    computeMs: maxCompute, ioMs: maxIo, workerPeakMb: peak, billedMs,
  };
}

export const defaultResources = { master: { vcpu: 1.5, memoryMb: 4096 }, handler: { vcpu: 0.5, memoryMb: 1024 } };

/**
 * Predicts one request of `plan`: its groups (exchange pieces from the plan), master segments
 * at master speed, the input and output through the store, and the request's fixed overhead.
 * Worker memory is per instance running one group's tile at a time.
 */
export function predictPlan(plan: Plan, o: PredictOptions): Prediction {
  const p = o.profile;
  const scale = o.batch / plan.input.shape[0];
  const ex = buildExchange(plan);
  const chan = new Map<string, number>([[plan.input.name, plan.input.shape[1]]]);
  for (const s of plan.stages) for (const out of s.outputs) if (out.shape) chan.set(out.name, out.shape[1]);
  const pieceBytes = (r: { y0: number; y1: number; x0: number; x1: number }, t: string) => (r.y1 - r.y0) * (r.x1 - r.x0) * (chan.get(t) ?? 0) * 4 * o.batch;

  const groups: GroupPrediction[] = [];
  const billed: BilledInvocation[] = [];
  let latency = p.requestOverheadMs + 2 * p.invokeOverheadMs;
  let storeRequests = 4;
  let workerPeak = 0;
  const residentWeightBytes = plan.stages.reduce((a, s) => a + (s.kind === 'group' ? s.bytes.weights : 0), 0);
  for (const s of plan.stages) {
    if (s.kind === 'master') {
      latency += ((s.flops * o.batch) / (p.masterGflops * 1e9)) * 1000;
      continue;
    }
    const tiles: TileWork[] = s.tiles.map((t) => {
      const reads = ex.reads.get(`${s.id}:${t.index}`) ?? [];
      const writes = ex.writes.get(`${s.id}:${t.index}`) ?? [];
      return {
        flops: t.flops * scale, peakBytes: t.peakBytes * scale,
        readRequests: reads.reduce((a, r) => a + r.pieces.length, 0),
        readBytes: reads.reduce((a, r) => a + r.pieces.reduce((b, q) => b + pieceBytes(q.region, q.tensor), 0), 0),
        writeRequests: writes.length,
        writeBytes: writes.reduce((a, q) => a + pieceBytes(q.region, q.tensor), 0),
      };
    });
    for (const t of tiles) storeRequests += t.readRequests + t.writeRequests;
    const g = predictGroup({ id: s.id, tiles, residentWeightBytes, subModelBytes: s.subModel.bytes }, o);
    latency += g.latencyMs;
    workerPeak = Math.max(workerPeak, g.workerPeakMb);
    for (const ms of g.billedMs) billed.push({ function: 'worker', durationMs: ms });
    const { billedMs: _b, ...rest } = g;
    groups.push(rest);
  }
  const eb = exchangeBytes(plan, o.batch);
  const inputBytes = plan.input.shape.slice(1).reduce((a, b) => a * b, 1) * 4 * o.batch;
  latency += 2 * (p.storeLatencyMs + (inputBytes / MB / p.storeBandwidthMBps) * 1000);
  billed.push({ function: 'master', durationMs: latency - p.invokeOverheadMs });
  billed.push({ function: 'handler', durationMs: latency });
  const resources = { worker: { vcpu: o.vcpu, memoryMb: o.memoryMb }, master: o.master ?? defaultResources.master, handler: o.handler ?? defaultResources.handler };
  return {
    latencyMs: latency, workerPeakMb: workerPeak, invocations: billed.length, storeRequests,
    storeBytes: eb.direct + 2 * inputBytes, billed: estimateCost(billed, resources), groups,
  };
}
