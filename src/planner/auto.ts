import type { IrNode } from '../graph/ir.ts';
import { tensorByteSize } from '../onnx/model-io.ts';
import { estimateCost } from '../serve/cost.ts';
import { predictGroup, type CostProfile, type PredictOptions, type TileWork } from '../cost/model.ts';
import { articulationPoints } from './stages.ts';
import { analyzeModel, planModel, spatialInputsOf, stageIO, type Grid, type PlannedModel } from './plan.ts';
import { predictPlan } from '../cost/model.ts';
import { planSchema } from '../plan/schema.ts';
import { tileGroup } from './tiles.ts';
import { PlanSpecError } from './errors.ts';

export interface AutoOptions {
  objective: 'latency' | 'cost';
  profile: CostProfile;
  /** Worker resources: vCPU, and memory (MB) that every worker's predicted peak must fit in. */
  vcpu: number;
  workerMemoryMb: number;
  /** Parallel worker instances (local: the pool size; FC: effectively unbounded). */
  concurrency: number;
  batch: number;
  /** Latency bound for `cost` (ms). */
  sloMs?: number;
  maxTilesPerGroup?: number;
}

export interface AutoChoice {
  cuts: string[];
  grids: Grid[];
  /** Predicted latency and compute units of the tiled part, as the search saw them. */
  searchLatencyMs: number;
  searchComputeUnits: number;
  evaluated: number;
}

const GRID_STEPS = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64];

interface Option { grid: Grid; latencyMs: number; cu: number; peakMb: number }

/**
 * Chooses group boundaries and each group's grid by dynamic programming over the cut points
 * (articulation tensors) of every maximal tileable run: best[j] = min over i < j and grids g of
 * best[i] + cost(nodes i..j as one group with grid g). A group's cost is the cost model's
 * prediction (latency, or compute units + lambda * latency for `cost`, with lambda searched so
 * the plan meets the SLO). Grids whose worker peak memory exceeds the limit are infeasible.
 */
export function chooseAutoPlan(modelBytes: Uint8Array, inputShape: number[], o: AutoOptions): AutoChoice {
  const { graph, info, cls, runs } = analyzeModel(modelBytes, inputShape);
  const scale = o.batch / inputShape[0];
  const predictOpts: PredictOptions = { profile: o.profile, vcpu: o.vcpu, memoryMb: o.workerMemoryMb, batch: o.batch, concurrency: o.concurrency };
  const maxTiles = o.maxTilesPerGroup ?? 256;
  const tiled = new Set<string>();
  for (const n of graph.nodes) if (cls.local.has(n)) for (const x of n.inputs) if (graph.constants.has(x)) tiled.add(x);
  const residentWeightBytes = [...tiled].reduce((a, w) => a + tensorByteSize(graph.constants.get(w)!), 0);
  let evaluated = 0;

  const evalSegment = (nodes: IrNode[], gi: number): Option[] => {
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
        tiles = tileGroup({ nodes, ops: cls.local, spatialInputs, outputs }, info, grid, gi).tiles;
      } catch {
        continue; // e.g. a grid too fine for a layer in this segment
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
      const g = predictGroup({ id: gi, tiles: work, residentWeightBytes, subModelBytes: weightBytes }, predictOpts);
      if (g.workerPeakMb > o.workerMemoryMb) continue;
      const cu = estimateCost(g.billedMs.map((ms) => ({ function: 'w', durationMs: ms })), { w: { vcpu: o.vcpu, memoryMb: o.workerMemoryMb } }).computeUnits;
      options.push({ grid, latencyMs: g.latencyMs, cu, peakMb: g.workerPeakMb });
    }
    return options;
  };

  // Evaluate every segment of every run once; the DP (and the lambda search) reuse them.
  const groupRuns = runs.filter((r) => r.kind === 'group');
  const tables = groupRuns.map((run, ri) => {
    // Cut candidates: block inputs (fan-out) and changes of resolution; cutting inside a
    // conv-BN-ReLU chain never beats cutting at its ends.
    const all = articulationPoints(run, cls);
    const hw = (t: string) => info.shapes.get(t)!.slice(2).join('x');
    const points = all.filter((p, i) => p.fanOut > 1 || hw(p.tensor) !== hw((all[i + 1]?.tensor) ?? run.nodes[run.nodes.length - 1].outputs[0]));
    const bounds = [-1, ...points.map((p) => p.after), run.nodes.length - 1];
    const seg = new Map<string, Option[]>();
    for (let i = 0; i < bounds.length - 1; i++) {
      for (let j = i + 1; j < bounds.length; j++) {
        seg.set(`${i}:${j}`, evalSegment(run.nodes.slice(bounds[i] + 1, bounds[j] + 1), ri));
      }
    }
    return { run, points, bounds, seg };
  });

  const solve = (lambda: number) => {
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
          for (const opt of t.seg.get(`${i}:${j}`)!) {
            const score = best[i].score + (o.objective === 'latency' ? opt.latencyMs + 1e-6 * opt.cu : opt.cu + lambda * opt.latencyMs);
            if (score < best[j].score) best[j] = { score, from: i, opt };
          }
        }
      }
      if (best[n - 1].score === Infinity) {
        throw new PlanSpecError(`no grid keeps every worker within ${o.workerMemoryMb} MB for the layers ${t.run.nodes[0].label} .. ${t.run.nodes[t.run.nodes.length - 1].label}; raise --worker-memory-mb`);
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

  let chosen = solve(0);
  if (o.objective === 'cost') {
    const slo = o.sloMs ?? Infinity;
    if (chosen.latency > slo) {
      // Raise the price of latency until the cheapest plan meets the SLO.
      let lo = 0;
      let hi = 1e-6;
      while (solve(hi).latency > slo && hi < 1e6) hi *= 4;
      if (solve(hi).latency > slo) throw new PlanSpecError(`no plan meets --slo-ms ${slo}: the fastest predicted is ${solve(hi).latency.toFixed(0)} ms for the tiled part`);
      for (let k = 0; k < 30; k++) {
        const mid = (lo + hi) / 2;
        if (solve(mid).latency > slo) lo = mid; else hi = mid;
      }
      chosen = solve(hi);
    }
  }
  return { cuts: chosen.cuts, grids: chosen.grids, searchLatencyMs: chosen.latency, searchComputeUnits: chosen.cu, evaluated };
}

/**
 * `--grid auto`: searches cuts and grids, builds the plan, and records the cost model's
 * prediction for it (whole request: master segments, input and output included).
 */
export function planModelAuto(modelBytes: Uint8Array, inputShape: number[], o: AutoOptions, name = 'model'): PlannedModel & { choice: AutoChoice } {
  const build = (opts: AutoOptions) => {
    const choice = chooseAutoPlan(modelBytes, inputShape, opts);
    const planned = planModel(modelBytes, { inputShape, grid: choice.grids, cuts: { tensors: choice.cuts }, name });
    const p = predictPlan(planned.plan, { profile: o.profile, vcpu: o.vcpu, memoryMb: o.workerMemoryMb, batch: o.batch, concurrency: o.concurrency });
    return { choice, planned, p };
  };
  let r = build(o);
  // The search prices the tiled groups only; the SLO covers the whole request, so the fixed
  // part (master segments, input and output, request overhead) comes off the search's budget.
  for (let k = 0; k < 3 && o.objective === 'cost' && o.sloMs && r.p.latencyMs > o.sloMs; k++) {
    const fixed = r.p.latencyMs - r.choice.searchLatencyMs;
    const budget = o.sloMs - fixed - k * 0.02 * o.sloMs;
    if (budget <= 0) throw new PlanSpecError(`no plan meets --slo-ms ${o.sloMs}: the request's fixed part alone is predicted at ${fixed.toFixed(0)} ms`);
    r = build({ ...o, sloMs: budget });
  }
  const { choice, planned, p } = r;
  const plan = planSchema.parse({
    ...planned.plan,
    prediction: {
      profile: o.profile.name, objective: o.objective, vcpu: o.vcpu, workerMemoryMb: o.workerMemoryMb, concurrency: o.concurrency, batch: o.batch,
      ...(o.sloMs ? { sloMs: o.sloMs } : {}),
      latencyMs: +p.latencyMs.toFixed(2), workerPeakMb: +p.workerPeakMb.toFixed(1), invocations: p.invocations, storeRequests: p.storeRequests,
      storeBytes: Math.round(p.storeBytes), computeUnits: +p.billed.computeUnits.toFixed(4), usdPer1000: +(p.billed.usd * 1000).toFixed(6),
    },
  });
  return { ...planned, plan, choice };
}
