import { attrFloat, attrInt, attrInts, attrStr, isConstant, type IrGraph, type IrNode } from '../graph/ir.ts';
import { kernelOf, resolveWindow, weightInput, type ShapeInfo } from '../graph/shapes.ts';
import { depthToSpaceBackward, padBackward, resizeBackward, resizePlan, spaceToDepthBackward } from './maps.ts';
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
  kind: 'window' | 'pointwise' | 'pad' | 'resize' | 'convTranspose' | 'depthToSpace' | 'spaceToDepth';
  /** Node input indices that carry tiled feature maps; other inputs are passed whole. */
  spatialInputs: number[];
  backward(axis: 0 | 1, out: Interval): { need: Interval; produced: Interval };
  /** Value of out-of-image padding for window/pad ops (0 for Conv, -inf for MaxPool, the input zero point for QLinearConv). */
  fill: number;
  /** A model Pad's reflect/edge mode: its runtime Pad reflects or repeats the tile's own border rows. */
  padMode?: 'reflect' | 'edge';
  /** AveragePool that must divide by a per-position count (count_include_pad=0, or ceil-mode overhang). */
  avgPool?: { countIncludePad: boolean; axes: [AxisWindow, AxisWindow] };
  /** FLOPs for an output tile of `outArea` positions whose spatial input covers `inArea` positions. */
  flops(outArea: number, inArea: number): number;
}

export type Locality = { local: true; op: LocalOp } | { local: false; reason: string };

const POINTWISE_UNARY = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Clip', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign', 'Mish',
  'Exp', 'Abs', 'Neg', 'Sqrt', 'Reciprocal', 'Erf', 'Gelu', 'Identity', 'Dropout', 'BatchNormalization', 'ThresholdedRelu',
  'Cast', 'Log', 'Floor', 'Ceil', 'Round', 'Sign', 'Not', 'Sin', 'Cos', 'Shrink',
]);
const POINTWISE_COMPARE = new Set(['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'And', 'Or', 'Xor']);
const POINTWISE_NARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min', 'Sum', 'Mean', 'Pow', 'PRelu', 'Where', ...POINTWISE_COMPARE]);

const WINDOW_OPS = new Set(['Conv', 'ConvInteger', 'QLinearConv', 'MaxPool', 'AveragePool', 'LpPool']);

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

  if (WINDOW_OPS.has(node.op)) {
    if (!x || x.length !== 4) return nonLocal('input is not a known 4-D map');
    const k = kernelOf(g, node, shapes);
    if (!k || k.length !== 2) return nonLocal('kernel shape unknown or not 2-D');
    const w = resolveWindow(node, x, k);
    const kk = k[0] * k[1];
    const cin = x[1];
    const group = attrInt(node, 'group', 1);
    let fill = node.op === 'MaxPool' ? -Infinity : 0;
    if (node.op === 'QLinearConv' || node.op === 'ConvInteger') {
      // Integer convolutions pad with the input's zero point (the quantized 0.0): it must be a
      // constant scalar to become the border fill.
      const zpName = node.inputs[2];
      if (zpName) {
        const zp = g.constants.has(zpName) ? info.values.get(zpName) : undefined;
        if (!zp || zp.length !== 1) return nonLocal('input zero point is not a constant scalar');
        fill = zp[0];
      }
      const fixed = node.op === 'QLinearConv' ? [1, 4, 5, 6, 7] : [3];
      for (const i of fixed) if (node.inputs[i] && !isConstant(g, node.inputs[i])) return nonLocal(`input ${i} (scale or zero point) is not a constant`);
    }
    const conv = weightInput(node) !== undefined;
    const bias = node.op === 'QLinearConv' ? 8 : node.op === 'Conv' ? 2 : -1;
    const spec: LocalOp = {
      node,
      kind: 'window',
      spatialInputs: [0],
      backward: (axis, o) => ({ need: windowBackward(o, w.axes[axis]), produced: o }),
      fill,
      flops: conv ? (a) => a * N * C * (2 * (cin / group) * kk + (node.inputs[bias] ? 1 : 0)) : (a) => a * N * C * kk,
    };
    if (node.op === 'AveragePool') {
      spec.avgPool = { countIncludePad: attrInt(node, 'count_include_pad', 0) === 1, axes: w.axes };
      // DQ -> AveragePool -> Q is one integer kernel in ORT; the tiles' border divisor cannot be.
      const dq = g.producer.get(node.inputs[0])?.op === 'DequantizeLinear';
      const qOut = (g.consumers.get(node.outputs[0]) ?? []).some((c) => c.op === 'QuantizeLinear');
      const divisor = !spec.avgPool.countIncludePad && w.axes.some((a) => a.p0 || a.p1) || w.ceil;
      if (dq && qOut && divisor) return nonLocal('quantized AveragePool with a per-position divisor (ORT fuses DQ -> AveragePool -> Q)');
    }
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
    if (mode !== 'constant' && mode !== 'reflect' && mode !== 'edge') return nonLocal(`pad mode ${mode}`);
    if (node.inputs[3]) return nonLocal('Pad with axes input');
    const pads = attrInts(node, 'pads') ?? info.values.get(node.inputs[1]);
    if (!pads || pads.length !== 8) return nonLocal('pads are not a constant of length 8');
    if (pads.some((v) => v < 0)) return nonLocal('negative pads');
    if (pads[0] || pads[1] || pads[4] || pads[5]) return nonLocal('pads on batch or channel axes');
    const value = mode !== 'constant' ? 0 : node.inputs[2] ? info.values.get(node.inputs[2])?.[0] : attrFloat(node, 'value', 0);
    if (value === undefined) return nonLocal('pad value is not a constant');
    const begin = [pads[2], pads[3]];
    const end = [pads[6], pads[7]];
    const inSize = [x[2], x[3]];
    // ORT refuses reflect pads as wide as the map; those models never run, tiled or not.
    if (mode === 'reflect' && [0, 1].some((a) => begin[a] >= inSize[a] || end[a] >= inSize[a])) return nonLocal('reflect pads not smaller than the map');
    return {
      local: true,
      op: {
        node, kind: 'pad', spatialInputs: [0], fill: value, padMode: mode === 'constant' ? undefined : mode,
        backward: (axis, o) => padBackward(o, begin[axis], inSize[axis], mode),
        flops: () => 0,
      },
    };
  }

  if (node.op === 'DepthToSpace' || node.op === 'SpaceToDepth') {
    if (!x || x.length !== 4) return nonLocal('input is not a known 4-D map');
    const b = attrInt(node, 'blocksize', 0);
    if (b < 1) return nonLocal('blocksize missing');
    const d2s = node.op === 'DepthToSpace';
    return {
      local: true,
      op: {
        node, kind: d2s ? 'depthToSpace' : 'spaceToDepth', spatialInputs: [0], fill: 0,
        backward: (_axis, o) => (d2s ? depthToSpaceBackward(o, b) : spaceToDepthBackward(o, b)),
        flops: () => 0,
      },
    };
  }

  if (node.op === 'QuantizeLinear' || node.op === 'DequantizeLinear') {
    // y = saturate(round(x / scale) + zp) and (x - zp) * scale, per tensor or per channel.
    if (attrInt(node, 'block_size', 0)) return nonLocal('blocked quantization');
    if (isConstant(g, node.inputs[0])) return nonLocal('quantizes a constant');
    let axis = attrInt(node, 'axis', 1);
    if (axis < 0) axis += 4;
    for (const i of [1, 2]) {
      const t = node.inputs[i];
      if (!t) continue;
      if (!isConstant(g, t)) return nonLocal(`${i === 1 ? 'scale' : 'zero point'} is not a constant`);
      const s = shapes.get(t)!;
      const n = s.reduce((a, v) => a * v, 1);
      if (n !== 1 && (s.length !== 1 || axis !== 1)) return nonLocal('quantization parameters are neither per tensor nor per channel');
    }
    return { local: true, op: { node, kind: 'pointwise', spatialInputs: [0], fill: 0, backward: identityMap, flops: (a) => a * N * C * 2 } };
  }

  if (node.op === 'Resize') {
    if (!x || x.length !== 4) return nonLocal('input is not a known 4-D map');
    const plan = resizePlan(g, node, x, out, info);
    if (typeof plan === 'string') return nonLocal(plan);
    const { r, taps } = plan;
    const inSize = [x[2], x[3]];
    const mode = attrStr(node, 'mode', 'nearest');
    return {
      local: true,
      op: {
        node, kind: 'resize', spatialInputs: [0], fill: 0,
        backward: (axis, o) => resizeBackward(o, r[axis], inSize[axis], (xo) => taps(axis, xo)),
        flops: (a) => a * N * C * (mode === 'linear' ? 8 : mode === 'cubic' ? 32 : 1),
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
    // A map-sized constant (a learned positional bias) is cropped per tile like an input map.
    if (spatial.every((i) => isConstant(g, node.inputs[i]))) return nonLocal('only constant maps as inputs');
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
