import { float16Boundaries } from '../graph/types.ts';
import type { IrGraph, IrNode } from '../graph/ir.ts';
import type { ShapeInfo } from '../graph/shapes.ts';
import { classifyNode, type LocalOp } from '../tiling/ops.ts';

export interface RawStage {
  kind: 'group' | 'master';
  nodes: IrNode[];
}

export interface Classified {
  local: Map<IrNode, LocalOp>;
  reasons: Map<IrNode, string>;
  /** Constants read as maps (cropped per tile, never live between groups). */
  constants?: ReadonlySet<string>;
  /**
   * Tensors no cut may cross: float16 values whose rounding in the whole model a boundary
   * cannot reproduce (graph/types.ts `float16Boundaries`), bfloat16 maps, DQ outputs and Q
   * inputs (see splitsQdq).
   */
  noCut?: ReadonlySet<string>;
  /** float16 tensors the whole model holds in float32: they cross boundaries as float32. */
  widen?: ReadonlySet<string>;
}

export function classifyAll(g: IrGraph, info: ShapeInfo): Classified {
  const local = new Map<IrNode, LocalOp>();
  const reasons = new Map<IrNode, string>();
  for (const n of g.nodes) {
    const c = classifyNode(g, n, info);
    if (c.local) local.set(n, c.op);
    else reasons.set(n, c.reason);
  }
  // ORT fuses DequantizeLinear -> op -> QuantizeLinear into integer kernels. An op the tiles
  // cannot reproduce that way (one on the master, or one whose tiles add a crop after it) takes
  // its DQ inputs and Q consumers along, so both sides compute the same fused or unfused thing.
  const demote = (n: IrNode, reason: string) => { const op = local.get(n); if (!op) return false; local.delete(n); reasons.set(n, reason); return true; };
  for (let changed = true; changed;) {
    changed = false;
    for (const n of g.nodes) {
      const op = local.get(n);
      const unfusable = !op || (op.kind === 'convTranspose' && (g.consumers.get(n.outputs[0]) ?? []).some((c) => c.op === 'QuantizeLinear'));
      if (!unfusable) continue;
      if (op) { demote(n, 'feeds a QuantizeLinear (ORT fuses DQ -> ConvTranspose -> Q; tiles crop in between)'); changed = true; }
      for (const x of n.inputs) {
        const p = x ? g.producer.get(x) : undefined;
        if (p?.op === 'DequantizeLinear' && demote(p, `dequantizes for ${n.label}, which runs on the master (ORT fuses DQ -> op -> Q)`)) changed = true;
      }
      for (const c of g.consumers.get(n.outputs[0]) ?? []) {
        if (c.op === 'QuantizeLinear' && demote(c, `quantizes the output of ${n.label}, which runs on the master (ORT fuses DQ -> op -> Q)`)) changed = true;
      }
    }
  }
  const half = float16Boundaries(g, info.types);
  // A group -> master boundary is a cut too: a float16 value no boundary can carry exactly keeps
  // its producer and readers on the same side, the master's.
  for (let changed = true; changed;) {
    changed = false;
    for (const t of half.noCut) {
      const p = g.producer.get(t);
      if (!p) continue;
      const readers = g.consumers.get(t) ?? [];
      if (local.has(p) && readers.some((c) => !local.has(c))) {
        changed = demote(p, `its float16 output ${t} is read on the master, and no boundary reproduces ORT's rounding of it`) || changed;
      }
      if (!local.has(p)) {
        for (const c of readers) changed = demote(c, `reads ${t}, a float16 value made on the master that no boundary reproduces exactly`) || changed;
      }
    }
  }
  const noCut = new Set(half.noCut);
  for (const n of g.nodes) {
    if (n.op === 'DequantizeLinear') noCut.add(n.outputs[0]);
    if (n.op === 'QuantizeLinear') noCut.add(n.inputs[0]);
  }
  return { local, reasons, constants: new Set([...g.constants.keys(), ...(g.derived?.keys() ?? [])]), noCut, widen: half.widen };
}

/**
 * Orders nodes into alternating spans of local (tiled) and non-local (master) nodes. Kahn's
 * algorithm that keeps extending the current span while it can, so an SE block's
 * GlobalAveragePool branch becomes one master stage between two groups instead of many.
 */
export function formSpans(g: IrGraph, cls: Classified): RawStage[] {
  const indeg = new Map<IrNode, number>();
  const available = new Set<string>([...g.constants.keys(), ...g.inputs.map((i) => i.name), '']);
  for (const n of g.nodes) indeg.set(n, n.inputs.filter((x) => !available.has(x) && g.producer.has(x)).length);
  const ready: IrNode[] = g.nodes.filter((n) => indeg.get(n) === 0);
  const spans: RawStage[] = [];
  let current: RawStage | undefined;
  while (ready.length) {
    ready.sort((a, b) => a.index - b.index);
    const want = current?.kind;
    let i = want ? ready.findIndex((n) => (cls.local.has(n) ? 'group' : 'master') === want) : -1;
    if (i < 0) {
      // Prefer starting a master span only when no local node is ready: keeps groups long.
      i = ready.findIndex((n) => cls.local.has(n));
      if (i < 0) i = 0;
    }
    const [n] = ready.splice(i, 1);
    const kind = cls.local.has(n) ? 'group' : 'master';
    if (!current || current.kind !== kind) {
      current = { kind, nodes: [] };
      spans.push(current);
    }
    current.nodes.push(n);
    for (const o of n.outputs) {
      for (const c of g.consumers.get(o) ?? []) {
        const d = indeg.get(c)! - c.inputs.filter((x) => x === o).length;
        indeg.set(c, d);
        if (d === 0) ready.push(c);
      }
    }
  }
  return spans;
}

/**
 * Would a cut at tensor `t` split what ORT computes as one (Classified.noCut), such as a
 * DequantizeLinear -> op -> QuantizeLinear pattern? ORT fuses
 * those into integer kernels in the whole model; split across groups, the tiles would compute in
 * float and differ by a quantization step. Between Q and DQ is the place to cut (and the
 * smallest tensor to move).
 */
function splitsQdq(span: RawStage, t: string, cls: Classified): boolean {
  if (cls.noCut?.has(t)) return true;
  const producer = span.nodes.find((n) => n.outputs.includes(t));
  if (producer?.op === 'DequantizeLinear') return true;
  return span.nodes.some((n) => n.op === 'QuantizeLinear' && n.inputs[0] === t);
}

/**
 * Positions in a local span after which exactly one tiled tensor is live: cutting there splits
 * the span into two groups joined by that tensor alone (a residual block's output, say).
 * Returns the index of the last node before each cut and the tensor crossing it.
 */
export function articulationPoints(span: RawStage, cls: Classified): { after: number; tensor: string; fanOut: number }[] {
  const lastUse = new Map<string, number>();
  const firstDef = new Map<string, number>();
  span.nodes.forEach((n, i) => {
    const op = cls.local.get(n)!;
    for (const s of op.spatialInputs) if (!cls.constants?.has(n.inputs[s])) lastUse.set(n.inputs[s], i);
    for (const o of n.outputs) if (o) firstDef.set(o, i);
  });
  const points: { after: number; tensor: string; fanOut: number }[] = [];
  const fanOut = (t: string) => span.nodes.filter((n) => cls.local.get(n)!.spatialInputs.some((i) => n.inputs[i] === t)).length;
  for (let i = 0; i < span.nodes.length - 1; i++) {
    const live = [...lastUse.entries()].filter(([t, last]) => last > i && (firstDef.get(t) ?? -1) <= i);
    const produced = span.nodes[i].outputs[0];
    if (splitsQdq(span, produced, cls)) continue;
    if (live.length === 1 && live[0][0] === produced) points.push({ after: i, tensor: produced, fanOut: fanOut(produced) });
  }
  return points;
}

/**
 * Positions before a downsampling window op (stride > 1) in a local span, whatever else is
 * live there: inside a chain a cut moves only the halo strips of the live maps, so a deep span
 * with skip connections (an FPN backbone) can be cut at each resolution step. A position where
 * a lower-resolution map is already live (a residual branch beside its downsample conv) is not
 * a step.
 */
export function downsamplingCuts(span: RawStage, cls: Classified, info: ShapeInfo): { after: number; live: string[] }[] {
  const lastUse = new Map<string, number>();
  const firstDef = new Map<string, number>();
  span.nodes.forEach((n, i) => {
    const op = cls.local.get(n)!;
    for (const s of op.spatialInputs) if (!cls.constants?.has(n.inputs[s])) lastUse.set(n.inputs[s], Math.max(lastUse.get(n.inputs[s]) ?? -1, i));
    for (const o of n.outputs) if (o && !firstDef.has(o)) firstDef.set(o, i);
  });
  const hw = (t: string) => { const s = info.shapes.get(t)!; return s[2] * s[3]; };
  const out: { after: number; live: string[] }[] = [];
  for (let i = 0; i < span.nodes.length - 1; i++) {
    const next = span.nodes[i + 1];
    const op = cls.local.get(next)!;
    if (op.kind !== 'window' || hw(next.outputs[0]) >= hw(next.inputs[0])) continue;
    const live = [...lastUse.entries()].filter(([t, last]) => last > i && (firstDef.get(t) ?? -1) <= i).map(([t]) => t);
    if (live.some((t) => hw(t) < hw(next.inputs[0]) || splitsQdq(span, t, cls))) continue;
    out.push({ after: i, live });
  }
  return out;
}
