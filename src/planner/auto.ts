import type { IrNode } from '../graph/ir.ts';
import { numel } from '../graph/shapes.ts';
import { tensorByteSize } from '../onnx/model-io.ts';
import { estimateCost } from '../billing/pricing.ts';
import { predictGroup, predictPlan, vcpuSpeed, type CostProfile, type Prediction, type PredictOptions, type TileWork } from '../cost/model.ts';
import { articulationPoints } from './stages.ts';
import { analyzeModel, DEFAULT_MAX_WORKERS, planModel, spatialInputsOf, stageIO, type Grid, type PlannedModel } from './plan.ts';
import { planSchema } from '../plan/schema.ts';
import { tileGroup } from './tiles.ts';
import type { CutCosts } from './cuts.ts';
import { GridTooLargeError, PlanSpecError } from './errors.ts';

/**
 * `balanced` (the default): the cheapest plan whose predicted latency is within
 * `latencySlack` (default 0.25, i.e. 25%) of the fastest plan's, so that a few milliseconds are
 * never bought with many more invocations; `latency`: the fastest; `cost`: the cheapest within
 * `sloMs`. Cost is the whole request's: FC compute, store requests, and the Tair share.
 */
export type Objective = 'balanced' | 'latency' | 'cost';
export const DEFAULT_LATENCY_SLACK = 0.25;

export interface AutoOptions {
  objective: Objective;
  /** `balanced`: how much slower than the fastest plan the chosen one may be (0.25 = 25%). */
  latencySlack?: number;
  profile: CostProfile;
  /** Worker resources: vCPU, and memory (MB) that every worker's predicted peak must fit in. */
  vcpu: number;
  workerMemoryMb: number;
  /** Parallel worker instances (local: the pool size; FC: the function's instance limit). */
  concurrency: number;
  batch: number;
  /** Latency bound for `cost` (ms). */
  sloMs?: number;
  maxTilesPerGroup?: number;
  /** The worker function's maximum instances: the widest co-scheduled chain (capped by `concurrency`). Default 100, FC's usual quota. */
  maxWorkers?: number;
}

/** One plan the automatic planner priced, or why it was dropped. */
export interface AutoCandidate {
  /** `RxC`: that grid for every group, cuts where exchanging beats recomputing; `mixed`: the per-group DP. */
  label: string;
  grids: Grid[];
  tiles?: number;
  chains?: number;
  latencyMs?: number;
  computeUnits?: number;
  workerPeakMb?: number;
  skipped?: string;
}

/** What the mixed-grid DP chose: cut tensors and one grid per group. */
export interface MixedChoice {
  cuts: string[];
  grids: Grid[];
  /** Predicted latency and compute units of the tiled part, as the search saw them. */
  searchLatencyMs: number;
  searchComputeUnits: number;
  /** Group/grid pairs the DP priced. */
  evaluated: number;
}

export interface AutoChoice extends MixedChoice {
  /** The chosen candidate's label (see AutoCandidate); `cuts` is empty unless it is `mixed`. */
  label: string;
  candidates: AutoCandidate[];
}

const GRID_STEPS = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64];

interface Option { grid: Grid; latencyMs: number; cu: number; peakMb: number }

/**
 * Chooses group boundaries and each group's grid by dynamic programming over the cut points
 * (articulation tensors) of every maximal tileable span: best[j] = min over i < j and grids g of
 * best[i] + cost(nodes i..j as one group with grid g). A group's cost is the cost model's
 * prediction (latency, or compute units + lambda * latency for `cost`, with lambda searched so
 * the plan meets the SLO). Grids whose worker peak memory exceeds the limit are infeasible.
 */
export function chooseAutoPlan(modelBytes: Uint8Array, inputShape: number[], o: AutoOptions): MixedChoice {
  return mixedSearch(modelBytes, inputShape, o)(o.sloMs, o.objective === 'latency' ? 'latency' : 'cost');
}

/** chooseAutoPlan's group-candidate tables, priced once; the returned search solves them for an SLO. */
function mixedSearch(modelBytes: Uint8Array, inputShape: number[], o: AutoOptions): (sloMs: number | undefined, objective: 'latency' | 'cost') => MixedChoice {
  const { graph, info, cls, spans } = analyzeModel(modelBytes, inputShape);
  const scale = o.batch / inputShape[0];
  const predictOpts: PredictOptions = { profile: o.profile, vcpu: o.vcpu, memoryMb: o.workerMemoryMb, batch: o.batch, concurrency: Math.min(o.concurrency, o.maxWorkers ?? DEFAULT_MAX_WORKERS) };
  // No group wider than the worker function's instances: it would queue behind FC's quota.
  const maxTiles = o.maxTilesPerGroup ?? Math.min(256, o.maxWorkers ?? DEFAULT_MAX_WORKERS);
  const tiled = new Set<string>();
  for (const n of graph.nodes) if (cls.local.has(n)) for (const x of n.inputs) if (graph.constants.has(x)) tiled.add(x);
  const residentWeightBytes = [...tiled].reduce((a, w) => a + tensorByteSize(graph.constants.get(w)!), 0);
  let evaluated = 0;

  const evalGroupCandidate = (nodes: IrNode[], spanOrdinal: number): Option[] => {
    const { inputs, outputs } = stageIO(graph, nodes);
    const spatialInputs = spatialInputsOf(inputs, nodes, cls);
    const out = info.shapes.get(outputs[outputs.length - 1])!;
    const [H, W] = [Math.min(...outputs.map((t) => info.shapes.get(t)![2])), Math.min(...outputs.map((t) => info.shapes.get(t)![3]))];
    const weights = new Set<string>();
    for (const n of nodes) for (const x of n.inputs) if (graph.constants.has(x)) weights.add(x);
    const weightBytes = [...weights].reduce((a, w) => a + tensorByteSize(graph.constants.get(w)!), 0);
    const chan = (t: string) => info.shapes.get(t)![1];
    const grids = new Map<string, Grid>();
    for (const r of GRID_STEPS) {
      if (r > H) break;
      const c = Math.max(1, Math.min(W, Math.round((r * out[3]) / out[2])));
      if (r * c <= maxTiles) grids.set(`${r}x${c}`, { rows: r, cols: c });
    }
    const options: Option[] = [];
    for (const grid of grids.values()) {
      let tiles;
      try {
        tiles = tileGroup({ nodes, ops: cls.local, spatialInputs, outputs }, info, grid, spanOrdinal).tiles;
      } catch {
        continue; // e.g. a grid too fine for a layer in this candidate
      }
      evaluated++;
      const work: TileWork[] = tiles.map((t) => ({
        flops: t.flops * scale,
        peakBytes: t.peakBytes * scale,
        // Producers' and consumers' grids are not known here: assume each region spans about
        // four neighbouring tiles, and that consumers' halos add ~15% to what is written.
        readRequests: 4 * t.inputs.length,
        readBytes: t.inputs.reduce((a, i) => a + (i.region.y1 - i.region.y0) * (i.region.x1 - i.region.x0) * chan(i.tensor) * 4 * o.batch, 0),
        writeRequests: 4 * t.outputs.length,
        writeBytes: 1.15 * t.outputs.reduce((a, i) => a + (i.region.y1 - i.region.y0) * (i.region.x1 - i.region.x0) * chan(i.tensor) * 4 * o.batch, 0),
      }));
      const g = predictGroup({ id: spanOrdinal, tiles: work, residentWeightBytes, subModelBytes: weightBytes }, predictOpts);
      if (g.workerPeakMb > o.workerMemoryMb) continue;
      const cu = estimateCost(g.billedMs.map((ms) => ({ function: 'w', durationMs: ms })), { w: { vcpu: o.vcpu, memoryMb: o.workerMemoryMb } }).computeUnits;
      options.push({ grid, latencyMs: g.latencyMs, cu, peakMb: g.workerPeakMb });
    }
    return options;
  };

  // Evaluate every group candidate of every span once; the DP (and the lambda search) reuse them.
  const groupSpans = spans.filter((r) => r.kind === 'group');
  const tables = groupSpans.map((span, spanOrdinal) => {
    // Cut candidates: block inputs (fan-out) and changes of resolution; cutting inside a
    // conv-BN-ReLU chain never beats cutting at its ends.
    const all = articulationPoints(span, cls);
    const hw = (t: string) => info.shapes.get(t)!.slice(2).join('x');
    const points = all.filter((p, i) => p.fanOut > 1 || hw(p.tensor) !== hw((all[i + 1]?.tensor) ?? span.nodes[span.nodes.length - 1].outputs[0]));
    const bounds = [-1, ...points.map((p) => p.after), span.nodes.length - 1];
    const options = new Map<string, Option[]>();
    for (let i = 0; i < bounds.length - 1; i++) {
      for (let j = i + 1; j < bounds.length; j++) {
        options.set(`${i}:${j}`, evalGroupCandidate(span.nodes.slice(bounds[i] + 1, bounds[j] + 1), spanOrdinal));
      }
    }
    return { span, points, bounds, options };
  });

  const solve = (lambda: number, objective: 'latency' | 'cost') => {
    const cuts: string[] = [];
    const grids: Grid[] = [];
    let latency = 0;
    let cu = 0;
    for (const t of tables) {
      const n = t.bounds.length;
      const best: { score: number; from: number; opt?: Option }[] = Array.from({ length: n }, () => ({ score: Infinity, from: -1 }));
      best[0] = { score: 0, from: -1 };
      for (let j = 1; j < n; j++) {
        for (let i = 0; i < j; i++) {
          if (best[i].score === Infinity) continue;
          for (const opt of t.options.get(`${i}:${j}`)!) {
            const score = best[i].score + (objective === 'latency' ? opt.latencyMs + 1e-6 * opt.cu : opt.cu + lambda * opt.latencyMs);
            if (score < best[j].score) best[j] = { score, from: i, opt };
          }
        }
      }
      if (best[n - 1].score === Infinity) {
        throw new PlanSpecError(`no grid keeps every worker within ${o.workerMemoryMb} MB for the layers ${t.span.nodes[0].label} .. ${t.span.nodes[t.span.nodes.length - 1].label}; raise --worker-memory-mb`);
      }
      const chain: { i: number; j: number; opt: Option }[] = [];
      for (let j = n - 1; j > 0; j = best[j].from) chain.unshift({ i: best[j].from, j, opt: best[j].opt! });
      for (const c of chain) {
        grids.push(c.opt.grid);
        latency += c.opt.latencyMs;
        cu += c.opt.cu;
        if (c.j < n - 1) cuts.push(t.points[c.j - 1].tensor);
      }
    }
    return { cuts, grids, latency, cu };
  };

  return (sloMs, objective) => {
    const solveAt = (lambda: number) => solve(lambda, objective);
    let chosen = solveAt(0);
    if (objective === 'cost') {
      const slo = sloMs ?? Infinity;
      if (chosen.latency > slo) {
        // Raise the price of latency until the cheapest plan meets the SLO.
        let lo = 0;
        let hi = 1e-6;
        while (solveAt(hi).latency > slo && hi < 1e6) hi *= 4;
        if (solveAt(hi).latency > slo) throw new PlanSpecError(`no plan meets a latency of ${slo.toFixed(0)} ms: the fastest predicted is ${solveAt(hi).latency.toFixed(0)} ms for the tiled part`);
        for (let k = 0; k < 30; k++) {
          const mid = (lo + hi) / 2;
          if (solveAt(mid).latency > slo) lo = mid; else hi = mid;
        }
        chosen = solveAt(hi);
      }
    }
    return { cuts: chosen.cuts, grids: chosen.grids, searchLatencyMs: chosen.latency, searchComputeUnits: chosen.cu, evaluated };
  };
}

/** Prices for choosing a chain's cuts (chooseCuts), from the profile the plan is made for. */
export function cutCostsFor(profile: CostProfile, vcpu: number): CutCosts {
  // A round is a bundle written and then read, plus the first poll on a store without waits.
  return { gflops: vcpuSpeed(profile, vcpu), roundMs: 2 * profile.storeLatencyMs + profile.pollIntervalMs, mbps: profile.storeBandwidthMBps, groupMs: 1 };
}

/**
 * Grids to try as one grid for the whole model: the GRID_STEPS rows shaped to the aspect of
 * the smallest map every plan must tile (a tileable span's own outputs, whatever its cuts),
 * within `maxTiles`, each with a lower bound of its worker peak (weights, and the widest op's
 * activations spread evenly over the tiles: halos only add to it).
 */
function uniformGrids(modelBytes: Uint8Array, inputShape: number[], o: AutoOptions, maxTiles: number): { grids: { grid: Grid; minPeakMb: number }[]; weightsPeakMb: number } {
  const { graph, info, cls, spans } = analyzeModel(modelBytes, inputShape);
  const scale = o.batch / inputShape[0];
  let [H, W] = [inputShape[2], inputShape[3]];
  for (const span of spans) {
    if (span.kind !== 'group') continue;
    for (const t of stageIO(graph, span.nodes).outputs) {
      const s = info.shapes.get(t)!;
      if (s[2] * s[3] < H * W) [H, W] = [s[2], s[3]];
    }
  }
  const weights = new Set<string>();
  let widest = 0;
  for (const n of graph.nodes) {
    const op = cls.local.get(n);
    if (!op) continue;
    for (const x of n.inputs) if (graph.constants.has(x)) weights.add(x);
    const bytes = (numel(info.shapes.get(n.outputs[0])!) + op.spatialInputs.reduce((a, i) => a + numel(info.shapes.get(n.inputs[i])!), 0)) * 4;
    widest = Math.max(widest, bytes);
  }
  const weightBytes = [...weights].reduce((a, w) => a + tensorByteSize(graph.constants.get(w)!), 0);
  const p = o.profile;
  const grids = new Map<string, { grid: Grid; minPeakMb: number }>();
  for (const r of GRID_STEPS) {
    if (r > H) break;
    const c = Math.max(1, Math.min(W, Math.round((r * W) / H)));
    if (r * c > maxTiles) continue;
    const minPeakMb = p.baseRssMb + (weightBytes * p.weightRssFactor + ((widest * scale) / (r * c)) * p.activationRssFactor) / 1048576;
    grids.set(`${r}x${c}`, { grid: { rows: r, cols: c }, minPeakMb });
  }
  return { grids: [...grids.values()], weightsPeakMb: p.baseRssMb + (weightBytes * p.weightRssFactor) / 1048576 };
}

/**
 * `--grid auto`: prices whole plans with the cost model and keeps the best. Candidates: every
 * uniform grid within `maxWorkers` (one chain per span of groups, cut where an exchange round
 * beats recomputing halos), and the per-group DP's mixed grids (chooseAutoPlan), none with a
 * group wider than `maxWorkers`. Plans whose predicted worker peak exceeds the memory limit, or
 * whose store requests would exceed the profile's rate limit, are dropped; then the objective
 * decides (see Objective). The plan records the prediction (whole request: chains, master
 * stages, input and output); `balanced` is recorded as `cost` with the latency bound it used
 * as `sloMs`.
 */
export function planModelAuto(modelBytes: Uint8Array, inputShape: number[], o: AutoOptions, name = 'model'): PlannedModel & { choice: AutoChoice } {
  // A co-scheduled chain needs all its workers running at once: no wider than the instances
  // that can run (the local pool's size), nor than the function's limit; and no group, chained
  // or not, runs on more instances than that.
  // A group that is not chained runs its tiles as separate invocations, queued on the instances
  // that run at once, but never on more than the function's limit (FC throttles beyond it).
  const groupCap = Math.max(1, o.maxWorkers ?? DEFAULT_MAX_WORKERS);
  const maxWorkers = Math.max(1, Math.min(groupCap, Math.floor(o.concurrency)));
  const opts: AutoOptions = { ...o, maxWorkers, concurrency: maxWorkers, maxTilesPerGroup: Math.min(o.maxTilesPerGroup ?? 256, groupCap) };
  const predictOpts: PredictOptions = { profile: o.profile, vcpu: o.vcpu, memoryMb: o.workerMemoryMb, batch: o.batch, concurrency: opts.concurrency, maxWorkers };
  const slack = o.latencySlack ?? DEFAULT_LATENCY_SLACK;
  if (!(slack >= 0)) throw new PlanSpecError(`--latency-slack must be 0 or more, not ${o.latencySlack}`);
  const slo = o.sloMs ?? Infinity;
  const rpsLimit = o.profile.storeRequestsPerSec;
  const candidates: AutoCandidate[] = [];
  type Priced = { planned: PlannedModel; p: Prediction; cand: AutoCandidate; mixed?: MixedChoice };
  const feasible: Priced[] = [];
  const consider = (planned: PlannedModel, label: string, mixed?: MixedChoice): Prediction => {
    const p = predictPlan(planned.plan, predictOpts);
    const groups = planned.plan.stages.flatMap((s) => (s.kind === 'group' ? [s.grid] : []));
    const cand: AutoCandidate = {
      label, grids: groups, tiles: planned.plan.summary.tiles, chains: planned.plan.chains.length,
      latencyMs: p.latencyMs, computeUnits: p.billed.computeUnits, workerPeakMb: p.workerPeakMb,
    };
    candidates.push(cand);
    const widest = Math.max(...planned.plan.stages.map((s) => (s.kind === 'group' ? s.tiles.length : 0)));
    if (widest > groupCap) { cand.skipped = `a group of ${widest} tiles > the worker function's ${groupCap} instances`; return p; }
    if (p.workerPeakMb > o.workerMemoryMb) { cand.skipped = `worker peak ${p.workerPeakMb.toFixed(0)} MB > ${o.workerMemoryMb} MB`; return p; }
    if (rpsLimit && p.peakStoreRps > rpsLimit) { cand.skipped = `${p.peakStoreRps.toFixed(0)} store requests/s > the profile's ${rpsLimit}`; return p; }
    feasible.push({ planned, p, cand, mixed });
    return p;
  };

  const maxTiles = Math.min(maxWorkers, o.maxTilesPerGroup ?? 256);
  const cutCosts = cutCostsFor(o.profile, o.vcpu);
  const uniform = uniformGrids(modelBytes, inputShape, o, maxTiles);
  // Every worker holds all the tiled weights (its sessions): no grid can go below that.
  if (uniform.weightsPeakMb > o.workerMemoryMb) throw new PlanSpecError(`no plan keeps every worker within ${o.workerMemoryMb} MB: the runtime and the weights alone take ${uniform.weightsPeakMb.toFixed(0)} MB; raise --worker-memory-mb`);
  for (const { grid, minPeakMb } of uniform.grids) {
    const label = `${grid.rows}x${grid.cols}`;
    if (minPeakMb > o.workerMemoryMb) { candidates.push({ label, grids: [grid], skipped: `worker peak at least ${minPeakMb.toFixed(0)} MB > ${o.workerMemoryMb} MB` }); continue; }
    let planned;
    try {
      planned = planModel(modelBytes, { inputShape, grid, cuts: 'exchange', cutCosts, maxWorkers, name });
    } catch (e) {
      if (!(e instanceof GridTooLargeError)) throw e;
      candidates.push({ label, grids: [grid], skipped: 'larger than a feature map' });
      continue;
    }
    consider(planned, label);
  }

  // The DP prices the tiled groups only; an SLO covers the whole request, so the fixed part
  // (master stages, input and output, request overhead) comes off the DP's budget.
  const fastestMs = () => Math.min(...feasible.map((f) => f.p.latencyMs));
  try {
    const search = mixedSearch(modelBytes, inputShape, opts);
    const runMixed = (objective: 'latency' | 'cost', sloMs: number | undefined, label: string) => {
      let budget = sloMs;
      for (let k = 0; ; k++) {
        const mixed = search(budget, objective);
        const planned = planModel(modelBytes, { inputShape, grid: mixed.grids, cuts: { tensors: mixed.cuts }, maxWorkers, name });
        const p = consider(planned, label, mixed);
        if (objective !== 'cost' || sloMs === undefined || p.latencyMs <= sloMs || k >= 3) break;
        const fixed = p.latencyMs - mixed.searchLatencyMs;
        budget = sloMs - fixed - k * 0.02 * sloMs;
        if (budget <= 0) break;
      }
    };
    runMixed('latency', undefined, 'mixed');
    if (o.objective === 'cost' && o.sloMs) runMixed('cost', o.sloMs, 'mixed-cost');
    if (o.objective === 'balanced' && feasible.length) runMixed('cost', Math.min(slo, fastestMs() * (1 + slack)), 'mixed-cost');
  } catch (e) {
    if (!(e instanceof PlanSpecError)) throw e;
    candidates.push({ label: 'mixed', grids: [], skipped: e.message });
  }

  if (!feasible.length) {
    const reasons = candidates.filter((c) => c.skipped).slice(0, 4).map((c) => `${c.label}: ${c.skipped}`).join('; ');
    throw new PlanSpecError(`no plan keeps every worker within ${o.workerMemoryMb} MB, every group within ${groupCap} workers and the store within its request rate (${reasons}); raise --worker-memory-mb or --max-workers`);
  }
  const fastest = feasible.reduce((a, b) => (b.p.latencyMs < a.p.latencyMs ? b : a));
  const bound = o.objective === 'latency' ? Infinity : o.objective === 'cost' ? slo : Math.min(slo, fastest.p.latencyMs * (1 + slack));
  const within = feasible.filter((f) => f.p.latencyMs <= bound * (1 + 1e-9));
  for (const f of feasible) if (!within.includes(f)) f.cand.skipped = `${f.p.latencyMs.toFixed(0)} ms > ${o.objective === 'balanced' ? `${((1 + slack) * 100).toFixed(0)}% of the fastest (${bound.toFixed(0)} ms)` : `--slo-ms ${slo}`}`;
  if (!within.length) throw new PlanSpecError(`no plan meets --slo-ms ${o.sloMs}: the fastest predicted is ${fastest.p.latencyMs.toFixed(0)} ms (${fastest.cand.label}, ${fastest.cand.tiles} tiles)`);
  const cheaper = (a: Priced, b: Priced) => a.p.totalUsd < b.p.totalUsd || (a.p.totalUsd === b.p.totalUsd && a.p.latencyMs < b.p.latencyMs);
  const faster = (a: Priced, b: Priced) => a.p.latencyMs < b.p.latencyMs || (a.p.latencyMs === b.p.latencyMs && a.p.totalUsd < b.p.totalUsd);
  const best = within.reduce((a, b) => ((o.objective === 'latency' ? faster(b, a) : cheaper(b, a)) ? b : a));
  const { planned, p, cand, mixed } = best;
  const choice: AutoChoice = {
    label: cand.label, cuts: mixed?.cuts ?? [], grids: cand.grids,
    searchLatencyMs: mixed?.searchLatencyMs ?? p.latencyMs, searchComputeUnits: mixed?.searchComputeUnits ?? p.billed.computeUnits,
    evaluated: mixed?.evaluated ?? 0, candidates,
  };
  const recordedSlo = o.objective === 'balanced' ? (Number.isFinite(bound) ? +bound.toFixed(2) : undefined) : o.sloMs;
  const plan = planSchema.parse({
    ...planned.plan,
    prediction: {
      profile: o.profile.name, objective: o.objective === 'latency' ? 'latency' : 'cost', vcpu: o.vcpu, workerMemoryMb: o.workerMemoryMb, concurrency: opts.concurrency, batch: o.batch,
      ...(recordedSlo ? { sloMs: recordedSlo } : {}),
      latencyMs: +p.latencyMs.toFixed(2), workerPeakMb: +p.workerPeakMb.toFixed(1), invocations: p.invocations, storeRequests: p.storeRequests,
      storeBytes: Math.round(p.storeBytes), computeUnits: +p.billed.computeUnits.toFixed(4), usdPer1000: +(p.billed.usd * 1000).toFixed(6),
    },
  });
  return { ...planned, plan, choice };
}
