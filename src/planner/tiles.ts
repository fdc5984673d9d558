import type { IrNode } from '../graph/ir.ts';
import type { ShapeInfo } from '../graph/shapes.ts';
import type { LocalOp } from '../tiling/ops.ts';
import { clip, hull, len, regionOf, splitAxis, type Interval } from '../tiling/geometry.ts';
import type { RuntimePad, Tile } from '../plan/schema.ts';
import { PlanError } from './errors.ts';

type Box = [Interval, Interval];
type Sides = [number, number, number, number]; // top, left, bottom, right

export interface GroupGeometry {
  nodes: IrNode[];
  ops: Map<IrNode, LocalOp>;
  /** Spatial tensors read by the group but produced outside it. */
  spatialInputs: string[];
  outputs: string[];
}

const hullBox = (a: Box | undefined, b: Box): Box => (a ? [hull(a[0], b[0]), hull(a[1], b[1])] : b);
const area = (b: Box) => len(b[0]) * len(b[1]);
const edgeKey = (n: IrNode, input: number) => `p${n.index}_${input}`;

interface EdgeFacts { tensor: string; need: Box; pads: Sides; node: IrNode; input: number }

/**
 * Walks a group bottom-up for one output tile: each tensor is computed over the hull of what
 * its consumers need, each consumer then crops its own part (negative runtime pads), and the
 * part of a window's input that falls outside the image becomes a positive runtime pad.
 */
function tileFacts(geo: GroupGeometry, info: ShapeInfo, cells: Map<string, Box>, groupId: number) {
  const edges = new Map<string, EdgeFacts>();
  const computed = new Map<string, Box>();
  const needsOf = new Map<string, Box>();
  const crops = new Map<IrNode, Sides>();
  for (const [t, cell] of cells) needsOf.set(t, cell);
  let flops = 0;
  let peakBytes = 0;
  for (let i = geo.nodes.length - 1; i >= 0; i--) {
    const n = geo.nodes[i];
    const op = geo.ops.get(n)!;
    const out = n.outputs[0];
    const req = needsOf.get(out);
    if (!req) throw new PlanError(`node ${n.label} produces nothing the group uses`, { group: groupId });
    const rows = op.backward(0, req[0]);
    const cols = op.backward(1, req[1]);
    const produced: Box = [rows.produced, cols.produced];
    // Positions outside the map (a ConvTranspose's cropped border) are not data: cut them off
    // right away so a consumer's border padding can never see them.
    const outShape = info.shapes.get(out)!;
    const inside: Box = [clip(produced[0], outShape[2]), clip(produced[1], outShape[3])];
    if (op.kind === 'convTranspose') crops.set(n, padsFor(inside, produced, [0, 0, 0, 0]));
    computed.set(out, inside);
    let inArea = 0;
    const outShape4 = info.shapes.get(out)!;
    let liveBytes = area(produced) * outShape4[0] * outShape4[1] * 4;
    for (const si of op.spatialInputs) {
      const x = n.inputs[si];
      const shape = info.shapes.get(x)!;
      const [ry, py0, py1] = clipNonEmpty(rows.need, shape[2]);
      const [rx, px0, px1] = clipNonEmpty(cols.need, shape[3]);
      const need: Box = [ry, rx];
      const pads: Sides = [py0, px0, py1, px1];
      edges.set(edgeKey(n, si), { tensor: x, need, pads, node: n, input: si });
      needsOf.set(x, hullBox(needsOf.get(x), need));
      inArea = Math.max(inArea, area(need));
      liveBytes += area(need) * shape[0] * shape[1] * 4;
    }
    peakBytes = Math.max(peakBytes, liveBytes);
    flops += op.flops(area(produced), inArea);
  }
  for (const x of geo.spatialInputs) computed.set(x, needsOf.get(x)!);
  // The rest of what was needed and nobody in the group computes is a map-sized constant (a
  // learned positional bias): the sub-model holds it whole and each tile crops its part.
  for (const x of needsOf.keys()) {
    if (computed.has(x)) continue;
    const s = info.shapes.get(x)!;
    computed.set(x, [{ start: 0, end: s[2] }, { start: 0, end: s[3] }]);
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
function padsFor(need: Box, have: Box, border: Sides): Sides {
  return [
    border[0] - (need[0].start - have[0].start),
    border[1] - (need[1].start - have[1].start),
    border[2] - (have[0].end - need[0].end),
    border[3] - (have[1].end - need[1].end),
  ];
}

export function tileGroup(geo: GroupGeometry, info: ShapeInfo, grid: { rows: number; cols: number }, groupId: number) {
  const tiles: Tile[] = [];
  const allParams: Record<string, Sides>[] = [];
  const padEdges = new Map<string, EdgeFacts>();
  const maskNodes = new Map<IrNode, EdgeFacts>();
  const cropNodes = new Set<IrNode>();
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0; c < grid.cols; c++) {
      const cells = new Map<string, Box>();
      for (const t of geo.outputs) {
        const s = info.shapes.get(t)!;
        cells.set(t, [splitAxis(s[2], grid.rows, r), splitAxis(s[3], grid.cols, c)]);
      }
      const { edges, computed, flops, crops, peakBytes } = tileFacts(geo, info, cells, groupId);
      const params: Record<string, Sides> = {};
      for (const [key, e] of edges) {
        params[key] = padsFor(e.need, computed.get(e.tensor)!, e.pads);
        if (!padEdges.has(key)) padEdges.set(key, e);
        const ap = geo.ops.get(e.node)!.avgPool;
        if (ap) {
          const crop = padsFor(e.need, computed.get(e.tensor)!, [0, 0, 0, 0]);
          // The model's own end pads count toward the divisor with count_include_pad=1; only a
          // ceil-mode overhang beyond them does not.
          const model: Sides = ap.countIncludePad
            ? [e.pads[0], e.pads[1], Math.min(e.pads[2], ap.axes[0].p1), Math.min(e.pads[3], ap.axes[1].p1)]
            : [0, 0, 0, 0];
          params[`m${e.node.index}a`] = crop.map((v, i) => v + model[i]) as Sides;
          params[`m${e.node.index}b`] = e.pads.map((v, i) => v - model[i]) as Sides;
          maskNodes.set(e.node, e);
        }
      }
      for (const [n, sides] of crops) { params[`c${n.index}`] = sides; cropNodes.add(n); }
      geo.outputs.forEach((t, k) => {
        params[`o${k}`] = padsFor(cells.get(t)!, computed.get(t)!, [0, 0, 0, 0]);
      });
      allParams.push(params);
      tiles.push({
        index: tiles.length, row: r, col: c,
        inputs: geo.spatialInputs.map((t) => ({ tensor: t, region: regionOf(...computed.get(t)!) })),
        outputs: geo.outputs.map((t) => ({ tensor: t, region: regionOf(...cells.get(t)!) })),
        params,
        flops,
        peakBytes,
      });
    }
  }
  // A runtime Pad goes into the shared sub-model only where some tile needs a non-zero one.
  const used = (name: string) => allParams.some((p) => p[name].some((v) => v !== 0));
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
  for (const t of tiles) for (const k of Object.keys(t.params)) if (!keep.has(k)) delete t.params[k];
  return { tiles, runtimePads };
}
