import { attrFloat, attrInt, attrInts, attrStr, type IrGraph, type IrNode } from '../graph/ir.ts';
import { kernelOf, resolveWindow, type ShapeInfo } from '../graph/shapes.ts';
import { windowBackward, type AxisWindow, type Interval } from './geometry.ts';

/**
 * How one spatially-local op maps a needed output interval back to its input, one axis at a
 * time (0 = rows, 1 = columns).
 * - `need` is the input interval read. For `window` and `pad` ops it is unclipped: the part
 *   outside [0, inSize) is the model's padding, supplied at run time by a Pad node filled with
 *   `fill`. For the other kinds it is already inside the input.
 * - `produced` is what the op computes when fed exactly the (clipped) need: equal to the
 *   request for window/pointwise/pad ops, a superset for upsampling ops, which then get cropped.
 */
export interface LocalOp {
  node: IrNode;
  kind: 'window' | 'pointwise' | 'pad' | 'resize' | 'convTranspose';
  /** Node input indices that carry tiled feature maps; other inputs are passed whole. */
  spatialInputs: number[];
  backward(axis: 0 | 1, out: Interval): { need: Interval; produced: Interval };
  /** Value of out-of-image padding for window/pad ops (0 for Conv, -inf for MaxPool). */
  fill: number;
  /** AveragePool that must divide by a per-position count (count_include_pad=0, or ceil-mode overhang). */
  avgPool?: { countIncludePad: boolean; axes: [AxisWindow, AxisWindow] };
  /** FLOPs for an output tile of `outArea` positions whose spatial input covers `inArea` positions. */
  flops(outArea: number, inArea: number): number;
}

export type Locality = { local: true; op: LocalOp } | { local: false; reason: string };

const POINTWISE_UNARY = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Clip', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign', 'Mish',
  'Exp', 'Abs', 'Neg', 'Sqrt', 'Reciprocal', 'Erf', 'Gelu', 'Identity', 'Dropout', 'BatchNormalization', 'ThresholdedRelu',
]);
const POINTWISE_NARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min', 'Sum', 'Mean', 'Pow', 'PRelu', 'Where']);

const identityMap = (_axis: 0 | 1, out: Interval) => ({ need: out, produced: out });

/** Right-aligned broadcast of `s` against a rank-4 map: does it vary along H or W? */
function spatiallyConstant(s: number[]): boolean {
  const h = s.length >= 2 ? s[s.length - 2] : 1;
  const w = s.length >= 1 ? s[s.length - 1] : 1;
  return h === 1 && w === 1;
}

const nonLocal = (reason: string): Locality => ({ local: false, reason });

/**
 * Decides whether a node can run tile by tile, and if so how its tiles map back to its input.
 * Anything not recognised (or recognised with parameters we cannot tile exactly) runs on the
 * master instead: that is always correct, only slower.
 */
export function classifyNode(g: IrGraph, node: IrNode, info: ShapeInfo): Locality {
  const { shapes } = info;
  if (node.domain && node.domain !== 'ai.onnx') return nonLocal(`custom domain ${node.domain}`);
  const out = shapes.get(node.outputs[0]);
  if (!out || out.length !== 4) return nonLocal('output is not a known 4-D NCHW map');
  if (out[2] * out[3] <= 1) return nonLocal('output has no spatial extent to tile');
  if (node.outputs.filter((o) => o).length > 1 && !(node.op === 'Dropout' || node.op === 'BatchNormalization')) return nonLocal('multiple outputs');
  if (node.op === 'BatchNormalization' && node.outputs.slice(1).some((o) => o && g.consumers.has(o))) return nonLocal('training-mode outputs are used');
  const x = shapes.get(node.inputs[0]);
  const N = out[0];
  const C = out[1];

  if (node.op === 'Conv' || node.op === 'MaxPool' || node.op === 'AveragePool' || node.op === 'LpPool') {
    if (!x || x.length !== 4) return nonLocal('input is not a known 4-D map');
    const k = kernelOf(g, node, shapes);
    if (!k || k.length !== 2) return nonLocal('kernel shape unknown or not 2-D');
    const w = resolveWindow(node, x, k);
    const kk = k[0] * k[1];
    const cin = x[1];
    const group = attrInt(node, 'group', 1);
    const spec: LocalOp = {
      node,
      kind: 'window',
      spatialInputs: [0],
      backward: (axis, o) => ({ need: windowBackward(o, w.axes[axis]), produced: o }),
      fill: node.op === 'MaxPool' ? -Infinity : 0,
      flops: node.op === 'Conv' ? (a) => a * N * C * (2 * (cin / group) * kk + (node.inputs[2] ? 1 : 0)) : (a) => a * N * C * kk,
    };
    if (node.op === 'AveragePool') spec.avgPool = { countIncludePad: attrInt(node, 'count_include_pad', 0) === 1, axes: w.axes };
    return { local: true, op: spec };
  }

  if (node.op === 'ConvTranspose') {
    if (!x || x.length !== 4) return nonLocal('input is not a known 4-D map');
    if (attrInts(node, 'output_shape')) return nonLocal('output_shape attribute (pads implied by a fixed output size)');
    const autoPad = attrStr(node, 'auto_pad', 'NOTSET');
    if (autoPad !== 'NOTSET' && autoPad !== 'VALID') return nonLocal(`auto_pad ${autoPad}`);
    const k = kernelOf(g, node, shapes)!;
    const s = attrInts(node, 'strides') ?? [1, 1];
    const d = attrInts(node, 'dilations') ?? [1, 1];
    const p = autoPad === 'VALID' ? [0, 0, 0, 0] : attrInts(node, 'pads') ?? [0, 0, 0, 0];
    const op = attrInts(node, 'output_padding') ?? [0, 0];
    const ext = [(k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1];
    // With gaps between kernel taps, some outputs have no contributing input and the local crop
    // would not cover them; such layers run on the master.
    if (ext[0] < s[0] || ext[1] < s[1]) return nonLocal('stride larger than the dilated kernel');
    const inSize = [x[2], x[3]];
    const cout = out[1];
    const group = attrInt(node, 'group', 1);
    const spec: LocalOp = {
      node,
      kind: 'convTranspose',
      spatialInputs: [0],
      fill: 0,
      backward: (axis, o) => {
        const p0 = p[axis];
        const lo = Math.max(0, Math.ceil((o.start + p0 - (ext[axis] - 1)) / s[axis]));
        const hi = Math.min(inSize[axis], Math.floor((o.end - 1 + p0) / s[axis]) + 1);
        return { need: { start: lo, end: hi }, produced: { start: lo * s[axis] - p0, end: (hi - 1) * s[axis] - p0 + ext[axis] + op[axis] } };
      },
      flops: (_a, inArea) => inArea * N * x[1] * 2 * (cout / group) * k[0] * k[1],
    };
    return { local: true, op: spec };
  }

  if (node.op === 'Pad') {
    if (!x || x.length !== 4) return nonLocal('input is not a known 4-D map');
    const mode = attrStr(node, 'mode', 'constant');
    if (mode !== 'constant') return nonLocal(`pad mode ${mode}`);
    if (node.inputs[3]) return nonLocal('Pad with axes input');
    const pads = attrInts(node, 'pads') ?? info.values.get(node.inputs[1]);
    if (!pads || pads.length !== 8) return nonLocal('pads are not a constant of length 8');
    if (pads.some((v) => v < 0)) return nonLocal('negative pads');
    if (pads[0] || pads[1] || pads[4] || pads[5]) return nonLocal('pads on batch or channel axes');
    const value = node.inputs[2] ? info.values.get(node.inputs[2])?.[0] : attrFloat(node, 'value', 0);
    if (value === undefined) return nonLocal('pad value is not a constant');
    const begin = [pads[2], pads[3]];
    return {
      local: true,
      op: { node, kind: 'pad', spatialInputs: [0], fill: value, backward: (axis, o) => ({ need: { start: o.start - begin[axis], end: o.end - begin[axis] }, produced: o }), flops: () => 0 },
    };
  }

  if (node.op === 'Resize') {
    if (!x || x.length !== 4) return nonLocal('input is not a known 4-D map');
    const mode = attrStr(node, 'mode', 'nearest');
    // Resize-10 had no such attributes: it was Upsample's asymmetric mapping with floor.
    const legacy = g.opset < 11;
    const ctm = legacy ? 'asymmetric' : attrStr(node, 'coordinate_transformation_mode', 'half_pixel');
    const nearestMode = legacy ? 'floor' : attrStr(node, 'nearest_mode', 'round_prefer_floor');
    if (mode !== 'nearest' && mode !== 'linear') return nonLocal(`resize mode ${mode}`);
    if (!['half_pixel', 'asymmetric', 'pytorch_half_pixel'].includes(ctm)) return nonLocal(`coordinate_transformation_mode ${ctm}`);
    if (attrInt(node, 'antialias', 0)) return nonLocal('antialias');
    if (node.inputs[3] && g.opset >= 13 && !info.values.get(node.inputs[3])) return nonLocal('sizes are not constant');
    if (out[0] !== x[0] || out[1] !== x[1]) return nonLocal('resizes batch or channel axes');
    const r = [out[2] / x[2], out[3] / x[3]];
    if (!r.every((v) => Number.isInteger(v) && v >= 1)) return nonLocal(`non-integer scale ${r.join('x')}`);
    const inSize = [x[2], x[3]];
    // Source taps of output index xo, in the model's coordinate mode; clamped like ORT does.
    const taps = (axis: 0 | 1, xo: number): [number, number] => {
      const orig = ctm === 'asymmetric' ? xo / r[axis] : (xo + 0.5) / r[axis] - 0.5;
      const last = inSize[axis] - 1;
      const clampI = (v: number) => Math.min(Math.max(v, 0), last);
      if (mode === 'linear') {
        const lo = Math.floor(Math.max(orig, 0));
        return [clampI(lo), clampI(lo + 1)];
      }
      let i: number;
      switch (nearestMode) {
        case 'floor': i = Math.floor(orig); break;
        case 'ceil': i = Math.ceil(orig); break;
        case 'round_prefer_ceil': i = Math.round(orig); break;
        default: i = orig - Math.floor(orig) === 0.5 ? Math.floor(orig) : Math.round(orig);
      }
      return [clampI(i), clampI(i)];
    };
    return {
      local: true,
      op: {
        node, kind: 'resize', spatialInputs: [0], fill: 0,
        backward: (axis, o) => {
          // The local resize of inputs [i0, i1) yields outputs [r*i0, r*i1): the need must cover
          // the taps and also start/end early/late enough for that range to contain the request.
          const need = {
            start: Math.min(taps(axis, o.start)[0], Math.floor(o.start / r[axis])),
            end: Math.min(inSize[axis], Math.max(taps(axis, o.end - 1)[1] + 1, Math.ceil(o.end / r[axis]))),
          };
          return { need, produced: { start: need.start * r[axis], end: need.end * r[axis] } };
        },
        flops: (a) => a * N * C * (mode === 'linear' ? 8 : 1),
      },
    };
  }

  if (node.op === 'BatchNormalization') {
    if (g.opset < 9 && attrInt(node, 'spatial', 1) !== 1) return nonLocal('BatchNormalization with spatial=0');
    if (attrInt(node, 'training_mode', 0)) return nonLocal('training mode');
  }

  if (node.op === 'Concat') {
    let axis = attrInt(node, 'axis', 0);
    if (axis < 0) axis += 4;
    if (axis >= 2) return nonLocal('concatenates along a spatial axis');
    const ins = node.inputs.map((i) => shapes.get(i));
    if (!ins.every((s) => s && s.length === 4 && s[2] === out[2] && s[3] === out[3])) return nonLocal('inputs differ in spatial size');
    return { local: true, op: { node, kind: 'pointwise', spatialInputs: ins.map((_, i) => i), fill: 0, backward: identityMap, flops: () => 0 } };
  }

  if (POINTWISE_UNARY.has(node.op) || POINTWISE_NARY.has(node.op)) {
    if (node.op === 'Dropout' && node.outputs[1] && g.consumers.has(node.outputs[1])) return nonLocal('dropout mask is used');
    const arity = POINTWISE_UNARY.has(node.op) ? 1 : node.inputs.length;
    const spatial: number[] = [];
    for (let i = 0; i < node.inputs.length; i++) {
      const name = node.inputs[i];
      if (!name) continue;
      const s = shapes.get(name);
      if (!s) return nonLocal(`input ${name} has unknown shape`);
      if (i >= arity || spatiallyConstant(s)) continue;
      if (s.length !== 4 || s[2] !== out[2] || s[3] !== out[3]) return nonLocal(`input ${name} broadcasts along one spatial axis only`);
      spatial.push(i);
    }
    if (!spatial.length) return nonLocal('no spatial input');
    const perPos = N * C * (node.op === 'BatchNormalization' ? 2 : 1);
    return { local: true, op: { node, kind: 'pointwise', spatialInputs: spatial, fill: 0, backward: identityMap, flops: (a) => a * perPos } };
  }

  return nonLocal(`${node.op} is not spatially local`);
}

/** FLOPs of a node over its whole output, for the monolithic baseline. */
export function fullFlops(op: LocalOp, info: ShapeInfo): number {
  const out = info.shapes.get(op.node.outputs[0])!;
  const x = info.shapes.get(op.node.inputs[op.spatialInputs[0]])!;
  return op.flops(out[2] * out[3], x[2] * x[3]);
}
