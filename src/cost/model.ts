import { z } from 'zod';
import type { Plan, Stage } from '../plan/schema.ts';
import { buildRoutes, bundleBytes, bundleReadBytes, bundleReads, readerBytes, schedule } from '../plan/bundles.ts';
import { chainsFor, coScheduled } from '../planner/chains.ts';
import { estimateCost, type BilledInvocation, type CostEstimate } from '../billing/pricing.ts';

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
  /**
   * CPU the workers get together (cores) when more of them are busy than that: the machine's
   * cores less what the handler, the master, the bench and anything else running take. Busy
   * workers that want more share it equally (see `workerSpeed`). Unset: maxParallelWorkers.
   */
  effectiveCores: z.number().positive().optional(),
  /** First polling interval of a wait on a store without native waits (OSS); 0 = native wait, no polls billed. */
  pollIntervalMs: z.number().nonnegative().default(0),
  /**
   * Requests per second the store takes under one prefix before it throttles (OSS: 503s). A
   * request's keys share `requests/<id>/`, a sequential prefix. Unset: no limit (local store).
   */
  storeRequestsPerSec: z.number().positive().optional(),
  /** Throughput of the whole bucket, shared by every instance (MB/s); unset: no limit. */
  storeBucketBandwidthMBps: z.number().positive().optional(),
  /** USD per 10,000 store requests (OSS bills PUT and GET); unset: free (local). */
  storeUsdPer10kRequests: z.number().nonnegative().optional(),
  /** Worker function's instance limit the planner plans for (FC quota). */
  instanceQuota: z.number().int().positive().optional(),
  /**
   * A worker with a fractional vCPU stopped for a fixed part of every period (the local duty
   * cycle, where the bench cannot make cgroups): each stage waits, on average, (1 - share) x
   * this for itself or a neighbour to run again (ms). Unset, or with cpuQuotaPeriodMs: 0.
   */
  throttleRoundMs: z.number().nonnegative().optional(),
  /**
   * Fractional vCPU enforced as a CPU-time quota per period of this length (ms), as CFS
   * bandwidth control does (the bench's cgroups): a worker runs at its threads' full speed until
   * it has used vCPU x period of CPU time in the period, and waits for the next one after that.
   * Short stages run at full speed; long ones average vCPU. Unset: a worker always runs at its
   * vCPU's share of a core's speed.
   */
  cpuQuotaPeriodMs: z.number().positive().optional(),
  /**
   * Worker CPU time per tile and stage that does not scale with FLOPs or batch: the session
   * call, cropping and padding, encoding the bundle (ms at one vCPU). Unset: 0.
   */
  stageOverheadMs: z.number().nonnegative().optional(),
  /** Round trip of one Redis/Tair command from a function in the same VPC (ms). */
  redisLatencyMs: z.number().nonnegative().optional(),
  /** What one function instance moves to or from Redis (MB/s; one connection). */
  redisClientBandwidthMBps: z.number().positive().optional(),
  /** Bandwidth of the whole Tair instance, shared by every worker (MB/s). */
  redisBandwidthMBps: z.number().positive().optional(),
  /** Price of the Tair instance (USD per hour, billed whether used or not). */
  redisUsdPerHour: z.number().nonnegative().optional(),
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
  /**
   * Where a chain's workers exchange strips and partials: the object store (default; polls where
   * it has no native wait) or Redis/Tair (blocking waits, no polls; needs the profile's redis*
   * figures). Inputs, outputs and whole tensors stay in the object store either way.
   */
  exchange?: 'store' | 'redis';
  /** Requests per hour the Tair instance serves, to spread its hourly price (default 3,600: one a second). */
  requestsPerHour?: number;
  /**
   * Requests in flight at once (closed-loop clients) sharing the machine's cores and the worker
   * instances; default 1. See `contendedLatency`.
   */
  requests?: number;
}

export interface StagePrediction {
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
  /** Object-store requests (polls included); with exchange `redis`, only the input, outputs and whole tensors. */
  storeRequests: number;
  /** Bytes written and read per request, wherever they go (object store, or Redis for the exchange). */
  storeBytes: number;
  billed: CostEstimate;
  groups: StagePrediction[];
  /** Redis commands (exchange `redis`): puts and blocking reads. */
  redisOps: number;
  /**
   * The highest store request rate of any chain (requests over the chain's duration, at least a
   * second: rate limits count per second). Compare with the profile's storeRequestsPerSec.
   */
  peakStoreRps: number;
  /** Time added because the store would throttle a chain's requests (ms, included in latencyMs). */
  throttleMs: number;
  /**
   * One request's demand on the resources concurrent requests share (ms): its core-time over the
   * cores, its worker-instance time over the instances, and under a quota an instance's CPU time
   * over its vCPU; the largest bounds throughput.
   */
  bottleneckMs: number;
  /** USD per request beyond FC compute: store requests, and the Tair instance's share. */
  otherUsd: { store: number; redis: number };
  /** FC compute plus store requests plus the Tair share, USD per request. */
  totalUsd: number;
}

export class CostModelError extends Error {
  override name = 'CostModelError';
}

const MB = 1048576;

export function vcpuSpeed(p: CostProfile, vcpu: number): number {
  return p.gflopsPerVcpu * (vcpu <= 1 ? vcpu : 1 + (vcpu - 1) * p.threadEfficiency);
}

/**
 * Workers that compute at once: the machine's vCPUs (maxParallelWorkers: cores locally,
 * unbounded on FC) over each worker's vCPU, so four 0.5-vCPU workers share two cores without
 * waiting for each other while four 1-vCPU workers take turns.
 */
export function parallelLanes(p: CostProfile, vcpu: number): number {
  return Math.max(1, Math.floor(p.maxParallelWorkers / Math.max(vcpu, 1e-9) + 1e-9));
}

/**
 * Per-worker throughput (FLOP/s) while `busy` workers compute at once. A worker alone runs at its
 * vCPU (one runnable thread gets a core, as the monolithic run does). Several run at their vCPU
 * unless together they want more CPU than the workers get (effectiveCores: locally the cores
 * less the handler, the master, the bench and their own exchanges), which they then share
 * equally: four 1-vCPU workers on two cores run at half speed each, all at once (the kernel
 * time-slices them), not two after two.
 */
export function workerSpeed(p: CostProfile, vcpu: number, busy: number): number {
  if (busy <= 1) return vcpuSpeed(p, vcpu) * 1e9;
  const cores = p.effectiveCores ?? p.maxParallelWorkers;
  return vcpuSpeed(p, vcpu) * 1e9 * Math.min(1, cores / (busy * Math.max(vcpu, 1e-9)));
}

/**
 * The vCPU a worker computes at while it has quota: its threads' whole cores under a CPU-time
 * quota (cpuQuotaPeriodMs), else its vCPU.
 */
export function burstVcpu(p: CostProfile, vcpu: number): number {
  return p.cpuQuotaPeriodMs === undefined ? vcpu : Math.max(vcpu, Math.ceil(vcpu - 1e-9));
}

/** CPU time (core-ms) of `flops` for a worker computing at `burst` vCPU. */
export function coreMsOf(p: CostProfile, burst: number, flops: number): number {
  return (flops / (vcpuSpeed(p, burst) * 1e9)) * 1000 * burst;
}

/**
 * Under a CPU-time quota, the least wall time `coreMs` of CPU time takes at `vcpu`: none beyond
 * the compute itself while it fits in one period's quota, else the quota's rate.
 */
export function quotaBoundMs(p: CostProfile, vcpu: number, coreMs: number): number {
  if (p.cpuQuotaPeriodMs === undefined || coreMs <= vcpu * p.cpuQuotaPeriodMs) return 0;
  return coreMs / vcpu;
}

/** The stage's wait for stopped workers: a period's stopped part, less what a long stage already spans. */
export const THROTTLE_PERIOD_MS = 100;
function throttleWaitFor(p: CostProfile, vcpu: number, stageMs: number): number {
  // A quota never stops an idle worker: there is no window to wait for (quotaBoundMs covers the rest).
  if (p.cpuQuotaPeriodMs !== undefined) return 0;
  return (1 - cpuShare(vcpu)) * (p.throttleRoundMs ?? 0) * Math.max(0, 1 - stageMs / THROTTLE_PERIOD_MS);
}

/** Share of each scheduling period a worker of `vcpu` may run (1 for whole vCPUs). */
export function cpuShare(vcpu: number): number {
  return Math.min(1, vcpu / Math.max(1, Math.ceil(vcpu - 1e-9)));
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
export function predictGroup(g: GroupWork, o: PredictOptions): StagePrediction & { billedMs: number[] } {
  const p = o.profile;
  const lanes = Math.max(1, Math.min(o.concurrency, g.tiles.length));
  const burst = burstVcpu(p, o.vcpu);
  const speed = workerSpeed(p, burst, lanes);
  const overheadMs = (p.stageOverheadMs ?? 0) * ((vcpuSpeed(p, 1) * 1e9) / speed);
  const ioMs = (requests: number, bytes: number) => (requests ? p.storeLatencyMs : 0) + (bytes / MB / p.storeBandwidthMBps) * 1000;
  const sessionMs = (g.subModelBytes / MB) * p.sessionLoadMsPerMB * (1 - p.sessionHitRate);
  const durations: number[] = [];
  const billedMs: number[] = [];
  let maxCompute = 0;
  let maxIo = 0;
  let peak = 0;
  for (const t of g.tiles) {
    const compute = Math.max((t.flops / speed) * 1000, quotaBoundMs(p, o.vcpu, coreMsOf(p, burst, t.flops)));
    const io = ioMs(t.readRequests, t.readBytes) + ioMs(t.writeRequests, t.writeBytes);
    const d = compute + overheadMs + io + sessionMs + p.coldStartProbability * p.coldStartMs;
    billedMs.push(d);
    durations.push(d + p.invokeOverheadMs);
    maxCompute = Math.max(maxCompute, compute);
    maxIo = Math.max(maxIo, io);
    peak = Math.max(peak, p.baseRssMb + (g.residentWeightBytes * p.weightRssFactor + t.peakBytes * p.activationRssFactor) / MB);
  }
  return {
    id: g.id, tiles: g.tiles.length, latencyMs: makespan(durations, lanes), maxTileMs: Math.max(0, ...durations),
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
  const redis = o.exchange === 'redis';
  if (redis && (p.redisLatencyMs === undefined || p.redisClientBandwidthMBps === undefined)) {
    throw new CostModelError(`profile ${p.name} has no redisLatencyMs/redisClientBandwidthMBps: it cannot price the Redis exchange`);
  }
  // The chain's exchange: first byte, per-instance throughput, first poll interval, and the
  // bandwidth every worker shares (the bucket's, or the Tair instance's).
  const x = redis
    ? { latencyMs: p.redisLatencyMs!, mbps: p.redisClientBandwidthMBps!, pollMs: 0, sharedMBps: p.redisBandwidthMBps }
    : { latencyMs: p.storeLatencyMs, mbps: p.storeBandwidthMBps, pollMs: p.pollIntervalMs, sharedMBps: p.storeBucketBandwidthMBps };
  const scale = o.batch / plan.input.shape[0];
  // The runtime re-forms chains for the worker instances it has (WORKER_MAX_INSTANCES).
  const routes = buildRoutes(plan, chainsFor(plan, o.maxWorkers ?? Math.max(1, Math.min(plan.maxWorkers, Math.floor(o.concurrency)))));
  const byId = new Map<number, Stage>(plan.stages.map((s) => [s.id, s]));
  const burst = burstVcpu(p, o.vcpu);
  const speed = vcpuSpeed(p, burst) * 1e9;
  const segBytes = (source: string, reader: string) => {
    return readerBytes(routes.bundles.get(source)!, reader, o.batch);
  };
  const transfer = (bytes: number) => (bytes / MB / p.storeBandwidthMBps) * 1000;
  const xTransfer = (bytes: number) => (bytes / MB / x.mbps) * 1000;
  const channels = (t: string) => { const q = routes.producers.get(t)!; return q.kind === 'input' ? plan.input.shape[1] : byId.get(q.stage)!.outputs[q.outputIndex].shape![1]; };
  const wholeBytes = (t: string) => { const q = routes.producers.get(t)!; const sh = byId.get(q.stage)?.outputs[q.outputIndex].shape ?? []; return sh.slice(1).reduce((a, b) => a + b, 1) * 4 * o.batch; };
  const groups: StagePrediction[] = [];
  const billed: BilledInvocation[] = [];
  let storeRequests = 0;
  let storeBytes = 0;
  let redisOps = 0;
  for (const [key, b] of routes.bundles) {
    // With Redis only the handler's input goes through the object store.
    if (redis && key !== 'input') redisOps += 1 + bundleReads(b);
    else storeRequests += 1 + bundleReads(b);
    storeBytes += bundleBytes(b, o.batch) + bundleReadBytes(b, o.batch);
  }
  for (const t of routes.wholeWrites) { storeRequests += 2; storeBytes += 2 * wholeBytes(t); }
  const residentWeightBytes = plan.stages.reduce((a, s) => a + (s.kind === 'group' ? s.bytes.weights : 0), 0);
  let latency = p.requestOverheadMs + 2 * p.invokeOverheadMs;
  const inBundle = routes.bundles.get('input');
  if (inBundle) latency += p.storeLatencyMs + transfer(bundleBytes(inBundle, o.batch));
  for (const r of routes.handlerReads.values()) latency += x.latencyMs + xTransfer(r.region.y1 * r.region.x1 * channels(r.tensor) * 4 * o.batch);
  let workerPeak = 0;
  let polls = 0;
  let peakStoreRps = 0;
  // A fractional-vCPU worker is stopped part of every period: where several workers run a stage
  // (waiting for each other's strips, or for the slowest to finish), the stage loses part of a
  // stopped window; one worker alone just runs slower (its vCPU share is in its speed).
  const throttleWait = (stageMs: number) => throttleWaitFor(p, o.vcpu, stageMs);
  let throttleMs = 0;
  // CPU time of the request's compute (core-ms) and the worker-instance time it holds.
  let coreMs = 0;
  let instanceMs = 0;
  // CPU time per request of each worker instance: the pool gives a chain's worker j the j-th
  // instance it finds idle, the same one request after request.
  const instanceCoreMs: number[] = [];
  for (const unit of schedule(plan, routes)) {
    if (unit.kind === 'master') {
      const ms = ((unit.stage.flops * scale) / (p.masterGflops * 1e9)) * 1000;
      latency += ms;
      coreMs += ms;
      continue;
    }
    const c = unit.chain;
    // Instances computing at once: a chain's workers all run together; single-group chains run
    // their tiles on the instances there are.
    const lanes = Math.max(1, Math.min(c.workers, coScheduled(c) ? c.workers : o.concurrency));
    const perWorker = new Array<number>(c.workers).fill(0);
    // CPU time each worker spends (core-ms), for the quota's bound on the chain.
    const workerCoreMs = new Array<number>(c.workers).fill(0);
    let chainMs = 0;
    let subModelBytes = 0;
    let unitRequests = 0;
    let unitPolls = 0;
    for (const id of c.stages) {
      const s = byId.get(id)!;
      if (s.kind === 'master') {
        // Partials: one round for the workers that combine them; the branch is tiny.
        const role = routes.reduceRole.get(s.id);
        const reduceMs = ((s.flops * scale) / speed) * 1000;
        chainMs += x.latencyMs + reduceMs + (c.workers > 1 ? throttleWait(reduceMs) : 0);
        if (s.reduce?.branch) subModelBytes += s.reduce.branch.bytes;
        if (x.pollMs > 0) unitPolls += (role === 'all' ? c.workers : 1) * (c.workers - 1);
        continue;
      }
      subModelBytes += s.subModel.bytes;
      let stageBytes = 0;
      const busy = Math.min(lanes, s.tiles.length);
      const tileSpeed = workerSpeed(p, burst, busy);
      const stageOverhead = (p.stageOverheadMs ?? 0) * (speed / tileSpeed) * (vcpuSpeed(p, 1) / vcpuSpeed(p, burst));
      const times = s.tiles.map((t) => {
        const compute = Math.max(((t.flops * scale) / tileSpeed) * 1000, quotaBoundMs(p, o.vcpu, coreMsOf(p, burst, t.flops * scale))) + stageOverhead;
        const reads = routes.reads.get(`${s.id}:${t.index}`) ?? [];
        const sources = new Set<string>();
        for (const r of reads) for (const part of r.parts) if (!part.self) sources.add(part.source);
        // A worker fetches all its segments at once (worker.ts): one first byte, then the bytes
        // at its instance's bandwidth.
        let readBytes = 0;
        for (const src of sources) readBytes += segBytes(src, `c${c.id}w${routes.ownerOf(s.id, t.index)}`);
        stageBytes += readBytes;
        // The model input comes from the object store whatever the exchange.
        const fromInput = sources.has('input');
        let io = sources.size ? (fromInput && redis ? Math.max(p.storeLatencyMs, x.latencyMs) : x.latencyMs) + xTransfer(readBytes) : 0;
        const out = routes.bundles.get(`s${s.id}t${t.index}`);
        if (out) io += x.latencyMs + xTransfer(bundleBytes(out, o.batch));
        if (!redis) unitRequests += sources.size + (out ? 1 : 0);
        workerPeak = Math.max(workerPeak, p.baseRssMb + (residentWeightBytes * p.weightRssFactor + t.peakBytes * scale * p.activationRssFactor) / MB);
        return { compute, io, reads: sources.size };
      });
      times.forEach((t, ti) => { perWorker[routes.ownerOf(s.id, ti)] += t.compute + t.io; });
      s.tiles.forEach((t, ti) => {
        const cpu = coreMsOf(p, burst, t.flops * scale);
        coreMs += cpu;
        workerCoreMs[routes.ownerOf(s.id, ti)] += cpu;
      });
      let stageMs = coScheduled(c)
        ? Math.max(...times.map((t) => t.compute + t.io))
        : makespan(times.map((t) => t.compute + t.io + p.invokeOverheadMs), lanes);
      // Every worker's strips cross the bucket's (or Tair's) link once each way; OSS limits
      // upload and download traffic separately, and the writes overlap the reads' direction.
      if (x.sharedMBps) stageMs = Math.max(stageMs, Math.max(...times.map((t) => t.compute)) + (stageBytes / MB / x.sharedMBps) * 1000);
      chainMs += stageMs + (s.tiles.length > 1 ? throttleWait(stageMs) : 0);
      if (x.pollMs > 0) {
        // Each read waits for its slowest neighbour; backoff polls about log2(wait / first interval) times.
        const slowest = Math.max(...times.map((t) => t.compute));
        for (const t of times) unitPolls += t.reads * (1 + Math.log2(1 + (slowest - t.compute) / x.pollMs));
      }
    }
    // Under a quota a worker that needs more CPU time than one period's quota runs at its vCPU's rate.
    if (coScheduled(c)) chainMs = Math.max(chainMs, ...workerCoreMs.map((ms) => quotaBoundMs(p, o.vcpu, ms)));
    workerCoreMs.forEach((ms, j) => { instanceCoreMs[j] = (instanceCoreMs[j] ?? 0) + ms; });
    const setup = (subModelBytes / MB) * p.sessionLoadMsPerMB * (1 - p.sessionHitRate) + p.coldStartProbability * p.coldStartMs;
    let unitMs = chainMs + setup + (coScheduled(c) ? p.invokeOverheadMs : 0);
    polls += unitPolls;
    unitRequests += unitPolls;
    // Rate limits count per second: a chain shorter than a second has its requests in one.
    const rps = (unitRequests * 1000) / Math.max(1000, unitMs);
    peakStoreRps = Math.max(peakStoreRps, rps);
    if (p.storeRequestsPerSec && rps > p.storeRequestsPerSec) {
      const throttled = (unitRequests * 1000) / p.storeRequestsPerSec;
      throttleMs += throttled - unitMs;
      unitMs = throttled;
    }
    latency += unitMs;
    instanceMs += unitMs * (coScheduled(c) ? c.workers : Math.min(c.workers, lanes));
    // Co-scheduled workers are billed while they wait for each other: the chain's duration each.
    for (let j = 0; j < c.workers; j++) billed.push({ function: 'worker', durationMs: coScheduled(c) ? unitMs - p.invokeOverheadMs : perWorker[j] + setup });
    groups.push({ id: c.id, tiles: c.workers, latencyMs: unitMs, maxTileMs: Math.max(...perWorker), computeMs: 0, ioMs: 0, workerPeakMb: workerPeak });
  }
  if (redis) redisOps += Math.round(polls); else storeRequests += Math.round(polls);
  billed.push({ function: 'master', durationMs: latency - p.invokeOverheadMs });
  billed.push({ function: 'handler', durationMs: latency });
  const resources = { worker: { vcpu: o.vcpu, memoryMb: o.memoryMb }, master: o.master ?? defaultResources.master, handler: o.handler ?? defaultResources.handler };
  const cost = estimateCost(billed, resources);
  const otherUsd = {
    store: (storeRequests / 10_000) * (p.storeUsdPer10kRequests ?? 0),
    redis: redis ? (p.redisUsdPerHour ?? 0) / (o.requestsPerHour ?? 3600) : 0,
  };
  // Under a quota an instance busy request after request gets its vCPU's share on average,
  // however short each request's burst: its CPU time per request over its vCPU.
  const quotaMs = p.cpuQuotaPeriodMs !== undefined && burst > o.vcpu ? Math.max(0, ...instanceCoreMs) / o.vcpu : 0;
  const bottleneckMs = Math.max(coreMs / (p.effectiveCores ?? p.maxParallelWorkers), instanceMs / Math.max(1, Math.floor(o.concurrency)), quotaMs);
  return {
    latencyMs: contendedLatency(latency, bottleneckMs, o.requests ?? 1), workerPeakMb: workerPeak, invocations: billed.length, storeRequests,
    storeBytes, billed: cost, groups, redisOps, peakStoreRps, throttleMs, bottleneckMs, otherUsd,
    totalUsd: cost.usd + otherUsd.store + otherUsd.redis,
  };
}

/**
 * Latency with `requests` closed-loop clients: never below one request alone, and never below
 * what the bottleneck allows (by Little's law, R clients each waiting L at a throughput of at
 * most 1/bottleneck: L >= R * bottleneck). The asymptotic bounds of operational analysis: exact
 * far from the knee, optimistic near it.
 */
export function contendedLatency(aloneMs: number, bottleneckMs: number, requests: number): number {
  return Math.max(aloneMs, Math.max(1, requests) * bottleneckMs);
}

/**
 * One function instance running the whole model (monolithic ORT on one FC instance): the
 * handler reads the input and writes the output through the store, one invocation, one
 * session (cold start and session load as the profile expects them).
 */
export function predictMonolithic(plan: Plan, o: { profile: CostProfile; vcpu: number; memoryMb: number; batch: number }): { latencyMs: number; peakMb: number; billed: CostEstimate; totalUsd: number } {
  const p = o.profile;
  const scale = o.batch / plan.input.shape[0];
  const flops = plan.stages.reduce((a, s) => a + (s.kind === 'group' ? s.flops.full : s.flops), 0) * scale;
  const inBytes = plan.input.shape.slice(1).reduce((a, b) => a + b, 1) * 4 * o.batch;
  const outBytes = plan.outputs.reduce((a, t) => a + t.shape.slice(1).reduce((x, y) => x + y, 1) * 4 * o.batch, 0);
  const burst = burstVcpu(p, o.vcpu);
  const compute = Math.max((flops / workerSpeed(p, burst, 1)) * 1000, quotaBoundMs(p, o.vcpu, coreMsOf(p, burst, flops)));
  const setup = (plan.model.bytes / MB) * p.sessionLoadMsPerMB * (1 - p.sessionHitRate) + p.coldStartProbability * p.coldStartMs;
  const io = 2 * p.storeLatencyMs + ((inBytes + outBytes) / MB / p.storeBandwidthMBps) * 1000;
  const durationMs = compute + setup + io;
  const latencyMs = p.requestOverheadMs + p.invokeOverheadMs + durationMs;
  // A group's tiles together hold its whole map plus their halos: take the halos back off.
  const peakActivation = Math.max(0, ...plan.stages.map((s) => (s.kind === 'group' ? s.tiles.reduce((a, t) => a + t.peakBytes, 0) / Math.max(1, s.flops.redundancy) : 0)));
  const peakMb = p.baseRssMb + (plan.model.bytes * p.weightRssFactor + peakActivation * scale * p.activationRssFactor) / MB;
  const billed = estimateCost([{ function: 'mono', durationMs }], { mono: { vcpu: o.vcpu, memoryMb: o.memoryMb } });
  return { latencyMs, peakMb, billed, totalUsd: billed.usd + (2 / 10_000) * (p.storeUsdPer10kRequests ?? 0) };
}
