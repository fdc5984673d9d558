import type { IrNode } from '../graph/ir.ts';
import type { ShapeInfo } from '../graph/shapes.ts';
import { splitAxis } from '../tiling/geometry.ts';
import type { Classified, RawStage } from './stages.ts';
import { articulationPoints, downsamplingCuts } from './stages.ts';
import { tileGroup } from './tiles.ts';

/** What an exchange round and a FLOP cost, for choosing where a chain exchanges halos. */
export interface CutCosts {
  /** Worker throughput, GFLOP/s. */
  gflops: number;
  /** One round: a bundle written, then read by its neighbours (first bytes, ms). */
  roundMs: number;
  /** Store throughput per instance, MB/s. */
  mbps: number;
  /** Running one more sub-model per tile (session call, bookkeeping), ms. */
  groupMs: number;
}

/**
 * Function Compute's figures from profiles/fc.json (one vCPU, an OSS put and a ranged get,
 * per-instance bandwidth): plans are made for FC unless told otherwise.
 */
export const FC_CUT_COSTS: CutCosts = { gflops: 20, roundMs: 30, mbps: 80, groupMs: 2 };

export interface CutContext {
  cls: Classified;
  info: ShapeInfo;
  /** Tensors read by a candidate group from outside, for a slice of the span (stageIO). */
  io: (nodes: IrNode[]) => { inputs: string[]; outputs: string[]; spatialInputs: string[] };
  modelInput: string;
}

/**
 * Where a chain of one grid should exchange halos: dynamic programming over the span's cut
 * candidates (single live maps, and downsampling steps with skips live). A group costs its
 * slowest tile's compute (halo recompute included) plus, when it reads maps computed by other
 * tiles, one exchange round and the strip bytes of its busiest tile. Deep groups recompute
 * wide halos; shallow ones pay rounds; this picks the cheaper mix.
 */
export function chooseCuts(span: RawStage, grid: { rows: number; cols: number }, ctx: CutContext, costs: CutCosts = FC_CUT_COSTS): number[] {
  const candidates = [...new Set([...articulationPoints(span, ctx.cls).map((p) => p.after), ...downsamplingCuts(span, ctx.cls, ctx.info).map((p) => p.after)])].sort((a, b) => a - b);
  const bounds = [-1, ...candidates, span.nodes.length - 1];
  const segCost = (i: number, j: number): number => {
    const nodes = span.nodes.slice(bounds[i] + 1, bounds[j] + 1);
    const { outputs, spatialInputs } = ctx.io(nodes);
    let tiles;
    try {
      tiles = tileGroup({ nodes, ops: ctx.cls.local, spatialInputs, outputs }, ctx.info, grid, 0).tiles;
    } catch {
      return Infinity;
    }
    let compute = 0;
    let strip = 0;
    let rounds = 0;
    // The handler writes every tile's input region from one instance, so the input's halos
    // add up there (and are then read by each tile).
    let inputHalo = 0;
    for (const t of tiles) {
      compute = Math.max(compute, t.flops);
      let bytes = 0;
      let halo = 0;
      for (const inp of t.inputs) {
        const s = ctx.info.shapes.get(inp.tensor)!;
        const ry = splitAxis(s[2], grid.rows, t.row);
        const rx = splitAxis(s[3], grid.cols, t.col);
        const own = Math.max(0, Math.min(inp.region.y1, ry.end) - Math.max(inp.region.y0, ry.start)) * Math.max(0, Math.min(inp.region.x1, rx.end) - Math.max(inp.region.x0, rx.start));
        const extra = ((inp.region.y1 - inp.region.y0) * (inp.region.x1 - inp.region.x0) - own) * s[0] * s[1] * 4;
        // The input is read anyway (no extra round), but its halo still costs bytes.
        if (inp.tensor === ctx.modelInput) halo += extra; else bytes += extra;
        if (inp.tensor === ctx.modelInput) inputHalo += extra;
      }
      strip = Math.max(strip, bytes + halo);
      if (bytes > 0) rounds = 1;
    }
    const transfer = ((strip + inputHalo) / 1e6 / costs.mbps) * 1000;
    return costs.groupMs + (compute / (costs.gflops * 1e9)) * 1000 + rounds * costs.roundMs + transfer;
  };
  const n = bounds.length;
  const best = Array.from({ length: n }, () => ({ cost: Infinity, from: -1 }));
  best[0].cost = 0;
  for (let j = 1; j < n; j++) {
    for (let i = 0; i < j; i++) {
      if (best[i].cost === Infinity) continue;
      const c = best[i].cost + segCost(i, j);
      if (c < best[j].cost) best[j] = { cost: c, from: i };
    }
  }
  const cuts: number[] = [];
  for (let j = best[n - 1].from; j > 0; j = best[j].from) cuts.unshift(bounds[j]);
  return cuts;
}
