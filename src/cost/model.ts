import { z } from 'zod';
import type { Plan, Stage } from '../plan/schema.ts';
import { buildRoutes, bundleBytes, schedule, segmentRange } from '../serve/bundles.ts';
import { chainsFor, coScheduled } from '../planner/chains.ts';
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
  /** First polling interval of a wait on a store without native waits (OSS); 0 = native wait, no polls billed. */
  pollIntervalMs: z.number().nonnegative().default(0),
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
  /** Worker instances that may run at once (the chains the plan runs as); default the plan's own. */
  maxWorkers?: number;
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
 * Predicts one request of `plan` as the runtime runs it: each chain is one invocation per
 * worker; inside it, every stage costs the slowest worker's compute plus an exchange round
 * (first byte, strip bytes, and on a polling store the expected polls) where strips or
 * partials move. Master stages run at master speed; the handler writes the input once and
 * reads the output once. Store requests and bytes are counted from the routes, exactly.
 */
export function predictPlan(plan: Plan, o: PredictOptions): Prediction {
  const p = o.profile;
  const scale = o.batch / plan.input.shape[0];
  const routes = buildRoutes(plan, chainsFor(plan, o.maxWorkers ?? plan.maxWorkers));
  const byId = new Map<number, Stage>(plan.stages.map((s) => [s.id, s]));
  const speed = vcpuSpeed(p, o.vcpu) * 1e9;
  const segBytes = (source: string, reader: string) => {
    const b = routes.bundles.get(source)!;
    const r = segmentRange(b, reader, o.batch);
    return r.end - r.start;
  };
  const transfer = (bytes: number) => (bytes / MB / p.storeBandwidthMBps) * 1000;
  const channels = (t: string) => { const q = routes.producers.get(t)!; return q.kind === 'input' ? plan.input.shape[1] : byId.get(q.stage)!.outputs[q.outputIndex].shape![1]; };
  const wholeBytes = (t: string) => { const q = routes.producers.get(t)!; const sh = byId.get(q.stage)?.outputs[q.outputIndex].shape ?? []; return sh.slice(1).reduce((a, b) => a + b, 1) * 4 * o.batch; };
  const groups: GroupPrediction[] = [];
  const billed: BilledInvocation[] = [];
  let storeRequests = 0;
  let storeBytes = 0;
  for (const b of routes.bundles.values()) {
    storeRequests += 1 + b.segments.length;
    storeBytes += 2 * bundleBytes(b, o.batch);
  }
  for (const t of routes.wholeWrites) { storeRequests += 2; storeBytes += 2 * wholeBytes(t); }
  const residentWeightBytes = plan.stages.reduce((a, s) => a + (s.kind === 'group' ? s.bytes.weights : 0), 0);
  let latency = p.requestOverheadMs + 2 * p.invokeOverheadMs;
  const inBundle = routes.bundles.get('input');
  if (inBundle) latency += p.storeLatencyMs + transfer(bundleBytes(inBundle, o.batch));
  for (const r of routes.handlerReads.values()) latency += p.storeLatencyMs + transfer(r.region.y1 * r.region.x1 * channels(r.tensor) * 4 * o.batch);
  let workerPeak = 0;
  let polls = 0;
  for (const unit of schedule(plan, routes)) {
    if (unit.kind === 'master') {
      latency += ((unit.stage.flops * scale) / (p.masterGflops * 1e9)) * 1000;
      continue;
    }
    const c = unit.chain;
    const lanes = Math.min(c.workers, p.maxParallelWorkers, coScheduled(c) ? c.workers : o.concurrency);
    const perWorker = new Array<number>(c.workers).fill(0);
    let chainMs = 0;
    let subModelBytes = 0;
    for (const id of c.stages) {
      const s = byId.get(id)!;
      if (s.kind === 'master') {
        // Partials: one round for the workers that combine them; the branch is tiny.
        const role = routes.reduceRole.get(s.id);
        chainMs += p.storeLatencyMs + ((s.flops * scale) / speed) * 1000;
        if (s.reduce?.branch) subModelBytes += s.reduce.branch.bytes;
        if (p.pollIntervalMs > 0) polls += (role === 'all' ? c.workers : 1) * (c.workers - 1);
        continue;
      }
      subModelBytes += s.subModel.bytes;
      const times = s.tiles.map((t) => {
        const compute = ((t.flops * scale) / speed) * 1000;
        const reads = routes.reads.get(`${s.id}:${t.index}`) ?? [];
        const sources = new Set<string>();
        for (const r of reads) for (const part of r.parts) if (!part.self) sources.add(part.source);
        // A worker fetches all its segments at once (worker.ts): one first byte, then the bytes
        // at its instance's bandwidth.
        let readBytes = 0;
        for (const src of sources) readBytes += segBytes(src, `c${c.id}w${routes.ownerOf(s.id, t.index)}`);
        let io = sources.size ? p.storeLatencyMs + transfer(readBytes) : 0;
        const out = routes.bundles.get(`s${s.id}t${t.index}`);
        if (out) io += p.storeLatencyMs + transfer(bundleBytes(out, o.batch));
        workerPeak = Math.max(workerPeak, p.baseRssMb + (residentWeightBytes * p.weightRssFactor + t.peakBytes * scale * p.activationRssFactor) / MB);
        return { compute, io, reads: sources.size };
      });
      times.forEach((x, ti) => { perWorker[routes.ownerOf(s.id, ti)] += x.compute + x.io; });
      const stageMs = coScheduled(c)
        ? (c.workers <= lanes ? Math.max(...times.map((x) => x.compute + x.io)) : makespan(times.map((x) => x.compute), lanes) + Math.max(...times.map((x) => x.io)))
        : makespan(times.map((x) => x.compute + x.io + p.invokeOverheadMs), lanes);
      chainMs += stageMs;
      if (p.pollIntervalMs > 0) {
        // Each read waits for its slowest neighbour; backoff polls about log2(wait / first interval) times.
        const slowest = Math.max(...times.map((x) => x.compute));
        for (const x of times) polls += x.reads * (1 + Math.log2(1 + (slowest - x.compute) / p.pollIntervalMs));
      }
    }
    const setup = (subModelBytes / MB) * p.sessionLoadMsPerMB * (1 - p.sessionHitRate) + p.coldStartProbability * p.coldStartMs;
    const unitMs = chainMs + setup + (coScheduled(c) ? p.invokeOverheadMs : 0);
    latency += unitMs;
    // Co-scheduled workers are billed while they wait for each other: the chain's duration each.
    for (let j = 0; j < c.workers; j++) billed.push({ function: 'worker', durationMs: coScheduled(c) ? unitMs - p.invokeOverheadMs : perWorker[j] + setup });
    groups.push({ id: c.id, tiles: c.workers, latencyMs: unitMs, maxTileMs: Math.max(...perWorker), computeMs: 0, ioMs: 0, workerPeakMb: workerPeak });
  }
  storeRequests += Math.round(polls);
  billed.push({ function: 'master', durationMs: latency - p.invokeOverheadMs });
  billed.push({ function: 'handler', durationMs: latency });
  const resources = { worker: { vcpu: o.vcpu, memoryMb: o.memoryMb }, master: o.master ?? defaultResources.master, handler: o.handler ?? defaultResources.handler };
  return {
    latencyMs: latency, workerPeakMb: workerPeak, invocations: billed.length, storeRequests,
    storeBytes, billed: estimateCost(billed, resources), groups,
  };
}
