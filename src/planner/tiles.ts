import type { IrNode } from '../graph/ir.ts';
import type { ShapeInfo } from '../graph/shapes.ts';
import type { LocalOp } from '../tiling/ops.ts';
import { clip, colsOf, hull, len, regionArea, regionOf, rowsOf, splitAxis, type Interval } from '../tiling/geometry.ts';
import type { Region, RuntimePad, Tile } from '../plan/schema.ts';
import { PlanError } from './errors.ts';

type Sides = [number, number, number, number]; // top, left, bottom, right

export interface GroupGeometry {
  nodes: IrNode[];
  ops: Map<IrNode, LocalOp>;
  /** Spatial tensors read by the group but produced outside it. */
  spatialInputs: string[];
  outputs: string[];
}

const hullRegion = (a: Region | undefined, b: Region): Region => (a ? regionOf(hull(rowsOf(a), rowsOf(b)), hull(colsOf(a), colsOf(b))) : b);
const edgeKey = (n: IrNode, input: number) => `p${n.index}_${input}`;

interface EdgeFacts { tensor: string; need: Region; pads: Sides; node: IrNode; input: number }

/**
 * Walks a group bottom-up for one output tile: each tensor is computed over the hull of what
 * its consumers need, each consumer then crops its own part (negative runtime pads), and the
 * part of a window's input that falls outside the image becomes a positive runtime pad.
 */
function tileFacts(geo: GroupGeometry, info: ShapeInfo, cells: Map<string, Region>, groupOrdinal: number) {
  const edges = new Map<string, EdgeFacts>();
  const computed = new Map<string, Region>();
  const needsOf = new Map<string, Region>();
  const crops = new Map<IrNode, Sides>();
  for (const [t, cell] of cells) needsOf.set(t, cell);
  let flops = 0;
  let peakBytes = 0;
  for (let i = geo.nodes.length - 1; i >= 0; i--) {
    const n = geo.nodes[i];
    const op = geo.ops.get(n)!;
    const out = n.outputs[0];
    const req = needsOf.get(out);
    if (!req) throw new PlanError(`node ${n.label} produces nothing the group uses`, { group: groupOrdinal });
    const rows = op.backward(0, rowsOf(req));
    const cols = op.backward(1, colsOf(req));
    const produced = regionOf(rows.produced, cols.produced);
    // Positions outside the map (a ConvTranspose's cropped border) are not data: cut them off
    // right away so a consumer's border padding can never see them.
    const outShape = info.shapes.get(out)!;
    const inside = regionOf(clip(rows.produced, outShape[2]), clip(cols.produced, outShape[3]));
    if (op.kind === 'convTranspose') crops.set(n, padsFor(inside, produced, [0, 0, 0, 0]));
    computed.set(out, inside);
    let inArea = 0;
    const outShape4 = info.shapes.get(out)!;
    let liveBytes = regionArea(produced) * outShape4[0] * outShape4[1] * 4;
    for (const si of op.spatialInputs) {
      const x = n.inputs[si];
      const shape = info.shapes.get(x)!;
      const [ry, py0, py1] = clipNonEmpty(rows.need, shape[2]);
      const [rx, px0, px1] = clipNonEmpty(cols.need, shape[3]);
      const need = regionOf(ry, rx);
      const pads: Sides = [py0, px0, py1, px1];
      edges.set(edgeKey(n, si), { tensor: x, need, pads, node: n, input: si });
      needsOf.set(x, hullRegion(needsOf.get(x), need));
      inArea = Math.max(inArea, regionArea(need));
      liveBytes += regionArea(need) * shape[0] * shape[1] * 4;
    }
    peakBytes = Math.max(peakBytes, liveBytes);
    flops += op.flops(regionArea(produced), inArea);
  }
  for (const x of geo.spatialInputs) computed.set(x, needsOf.get(x)!);
  // The rest of what was needed and nobody in the group computes is a map-sized constant (a
  // learned positional bias): the sub-model holds it whole and each tile crops its part.
  for (const x of needsOf.keys()) {
    if (computed.has(x)) continue;
    const s = info.shapes.get(x)!;
    computed.set(x, { y0: 0, y1: s[2], x0: 0, x1: s[3] });
  }
  return { edges, computed, flops, crops, peakBytes };
}

/**
 * Clips an unclipped need to [0, size) and returns the border pads that make up the rest. A
 * need lying wholly in the padding (a tile inside a Pad op's border) keeps one real row and
 * crops it again with a negative pad, since a tensor cannot have an empty extent.
 */
function clipNonEmpty(i: Interval, size: number): [Interval, number, number] {
  let c = clip(i, size);
  if (len(c) <= 0) {
    const k = Math.min(Math.max(i.start, 0), size - 1);
    c = { start: k, end: k + 1 };
  }
  return [c, c.start - i.start, i.end - c.end];
}

/** Per-side runtime pad: positive = pad from the image border, negative = crop to the need. */
function padsFor(need: Region, have: Region, border: Sides): Sides {
  return [
    border[0] - (need.y0 - have.y0),
    border[1] - (need.x0 - have.x0),
    border[2] - (have.y1 - need.y1),
    border[3] - (have.x1 - need.x1),
  ];
}

export function tileGroup(geo: GroupGeometry, info: ShapeInfo, grid: { rows: number; cols: number }, groupOrdinal: number) {
  const tiles: Tile[] = [];
  const allPads: Record<string, Sides>[] = [];
  const padEdges = new Map<string, EdgeFacts>();
  const maskNodes = new Map<IrNode, EdgeFacts>();
  const cropNodes = new Set<IrNode>();
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0; c < grid.cols; c++) {
      const cells = new Map<string, Region>();
      for (const t of geo.outputs) {
        const s = info.shapes.get(t)!;
        cells.set(t, regionOf(splitAxis(s[2], grid.rows, r), splitAxis(s[3], grid.cols, c)));
      }
      const { edges, computed, flops, crops, peakBytes } = tileFacts(geo, info, cells, groupOrdinal);
      const tilePads: Record<string, Sides> = {};
      for (const [key, e] of edges) {
        tilePads[key] = padsFor(e.need, computed.get(e.tensor)!, e.pads);
        if (!padEdges.has(key)) padEdges.set(key, e);
        const ap = geo.ops.get(e.node)!.avgPool;
        if (ap) {
          const crop = padsFor(e.need, computed.get(e.tensor)!, [0, 0, 0, 0]);
          // The model's own end pads count toward the divisor with count_include_pad=1; only a
          // ceil-mode overhang beyond them does not.
          const model: Sides = ap.countIncludePad
            ? [e.pads[0], e.pads[1], Math.min(e.pads[2], ap.axes[0].p1), Math.min(e.pads[3], ap.axes[1].p1)]
            : [0, 0, 0, 0];
          tilePads[`m${e.node.index}a`] = crop.map((v, i) => v + model[i]) as Sides;
          tilePads[`m${e.node.index}b`] = e.pads.map((v, i) => v - model[i]) as Sides;
          maskNodes.set(e.node, e);
        }
      }
      for (const [n, sides] of crops) { tilePads[`c${n.index}`] = sides; cropNodes.add(n); }
      geo.outputs.forEach((t, k) => {
        tilePads[`o${k}`] = padsFor(cells.get(t)!, computed.get(t)!, [0, 0, 0, 0]);
      });
      allPads.push(tilePads);
      tiles.push({
        index: tiles.length, row: r, col: c,
        inputs: geo.spatialInputs.map((t) => ({ tensor: t, region: computed.get(t)! })),
        outputs: geo.outputs.map((t) => ({ tensor: t, region: cells.get(t)! })),
        pads: tilePads,
        flops,
        peakBytes,
      });
    }
  }
  // A runtime Pad goes into the shared sub-model only where some tile needs a non-zero one.
  const used = (name: string) => allPads.some((p) => p[name].some((v) => v !== 0));
  const runtimePads: RuntimePad[] = [];
  for (const [name, e] of [...padEdges].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
    if (!used(name)) continue;
    const fill = geo.ops.get(e.node)!.fill;
    const mode = geo.ops.get(e.node)!.padMode;
    runtimePads.push({ use: 'input', name, node: e.node.index, input: e.input, tensor: e.tensor, fill: fill === -Infinity ? '-inf' : fill, ...(mode ? { mode } : {}) });
  }
  for (const [n, e] of maskNodes) {
    if (!used(`m${n.index}b`)) continue;
    runtimePads.push({ use: 'mask1', name: `m${n.index}a`, node: n.index, tensor: e.tensor });
    runtimePads.push({ use: 'mask2', name: `m${n.index}b`, node: n.index, tensor: e.tensor });
  }
  for (const n of cropNodes) if (used(`c${n.index}`)) runtimePads.push({ use: 'crop', name: `c${n.index}`, node: n.index, tensor: n.outputs[0] });
  geo.outputs.forEach((t, k) => { if (used(`o${k}`)) runtimePads.push({ use: 'output', name: `o${k}`, tensor: t }); });
  const keep = new Set(runtimePads.map((p) => p.name));
  for (const t of tiles) for (const k of Object.keys(t.pads)) if (!keep.has(k)) delete t.pads[k];
  return { tiles, runtimePads };
}
