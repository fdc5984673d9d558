import { attrInt, attrInts, attrStr, type IrGraph, type IrNode } from './ir.ts';
import { tensorDims, tensorValues, DataType } from '../onnx/model-io.ts';
import { samePads, windowOutSize, type AxisWindow } from '../tiling/geometry.ts';
import { UnsupportedModelError } from '../onnx/errors.ts';
import { inferTypes } from './types.ts';

/** Static shapes for one concrete input shape; undefined where an op's shape cannot be inferred. */
export interface ShapeInfo {
  shapes: Map<string, number[] | undefined>;
  /** Small integer tensors whose values are known statically (shape arithmetic in exported graphs). */
  values: Map<string, number[]>;
  /** ONNX element type of every tensor whose type is known (graph/types.ts). */
  types: Map<string, number>;
}

export const numel = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

export function broadcastShapes(shapes: number[][]): number[] | undefined {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) return undefined;
      d = v;
    }
    out.push(d);
  }
  return out;
}

export interface WindowParams { axes: [AxisWindow, AxisWindow]; ceil: boolean; outH: number; outW: number }

/**
 * Resolves a 2-D sliding-window op (Conv, ConvTranspose-less pools) to explicit per-axis
 * parameters from the input's spatial size. auto_pad is turned into explicit pads here, before
 * any tiling, because SAME padding depends on the full input size.
 */
export function resolveWindow(node: IrNode, inShape: number[], kernel: number[]): WindowParams {
  if (inShape.length !== 4 || kernel.length !== 2) {
    throw new UnsupportedModelError(`only 2-D spatial ops are supported (input rank ${inShape.length})`, { node: node.label, op: node.op });
  }
  const strides = attrInts(node, 'strides') ?? [1, 1];
  const dil = attrInts(node, 'dilations') ?? [1, 1];
  const autoPad = attrStr(node, 'auto_pad', 'NOTSET');
  let pads = attrInts(node, 'pads') ?? [0, 0, 0, 0];
  const ceil = attrInt(node, 'ceil_mode', 0) === 1;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const up = autoPad === 'SAME_UPPER';
    const [t, b] = samePads(inShape[2], kernel[0], strides[0], dil[0], up);
    const [l, r] = samePads(inShape[3], kernel[1], strides[1], dil[1], up);
    pads = [t, l, b, r];
  } else if (autoPad === 'VALID') {
    pads = [0, 0, 0, 0];
  }
  const axes: [AxisWindow, AxisWindow] = [
    { k: kernel[0], s: strides[0], d: dil[0], p0: pads[0], p1: pads[2] },
    { k: kernel[1], s: strides[1], d: dil[1], p0: pads[1], p1: pads[3] },
  ];
  // SAME output size is ceil(in / s) regardless of ceil_mode.
  const same = autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER';
  const outH = same ? Math.ceil(inShape[2] / axes[0].s) : windowOutSize(inShape[2], axes[0], ceil);
  const outW = same ? Math.ceil(inShape[3] / axes[1].s) : windowOutSize(inShape[3], axes[1], ceil);
  return { axes, ceil, outH, outW };
}

/** Input index of a convolution's weight (QLinearConv puts the input's scale and zero point first). */
export function weightInput(node: IrNode): number | undefined {
  switch (node.op) {
    case 'Conv': case 'ConvTranspose': case 'ConvInteger': return 1;
    case 'QLinearConv': return 3;
    default: return undefined;
  }
}

export function kernelOf(g: IrGraph, node: IrNode, shapes: Map<string, number[] | undefined>): number[] | undefined {
  const ks = attrInts(node, 'kernel_shape');
  if (ks) return ks;
  const wi = weightInput(node);
  if (wi !== undefined) {
    const w = shapes.get(node.inputs[wi]) ?? (g.constants.get(node.inputs[wi]) ? tensorDims(g.constants.get(node.inputs[wi])!) : undefined);
    return w?.slice(2);
  }
  return undefined;
}

const SAME_SHAPE = new Set([
  'Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Clip', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign', 'Mish', 'Gelu',
  'Exp', 'Log', 'Abs', 'Neg', 'Sqrt', 'Reciprocal', 'Floor', 'Ceil', 'Round', 'Erf', 'Sin', 'Cos', 'Not', 'Sign',
  'QuantizeLinear', 'DequantizeLinear',
  'BatchNormalization', 'InstanceNormalization', 'LpNormalization', 'MeanVarianceNormalization', 'LRN', 'Dropout', 'Identity', 'Softmax', 'LogSoftmax', 'Hardmax', 'Cast', 'LayerNormalization', 'ThresholdedRelu', 'Shrink',
]);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Equal', 'Less', 'Greater', 'And', 'Or', 'Where', 'PRelu', 'Mod', 'BitShift']);

export function normAxes(axes: number[], rank: number) {
  return axes.map((a) => (a < 0 ? a + rank : a));
}

/** Axes given as attribute (older opsets) or as a constant second input (newer opsets). */
export function axesOf(node: IrNode, values: Map<string, number[]>, inputIndex: number): number[] | undefined {
  return attrInts(node, 'axes') ?? (node.inputs[inputIndex] ? values.get(node.inputs[inputIndex]) : undefined);
}

export function inferShapes(g: IrGraph, inputShapes: Record<string, number[]>): ShapeInfo {
  const shapes = new Map<string, number[] | undefined>();
  const values = new Map<string, number[]>();
  for (const [name, t] of g.constants) {
    shapes.set(name, tensorDims(t));
    const dt = t.dataType ?? 0;
    const n = numel(tensorDims(t));
    if (n <= 64 && [DataType.INT64, DataType.INT32, DataType.FLOAT, DataType.FLOAT16, DataType.INT8, DataType.UINT8, DataType.DOUBLE].includes(dt)) {
      try { values.set(name, tensorValues(t)); } catch { /* non-numeric constants are fine to skip */ }
    }
  }
  for (const i of g.inputs) shapes.set(i.name, inputShapes[i.name]);

  for (const node of g.nodes) {
    let out: number[] | undefined;
    try {
      out = inferNode(g, node, shapes, values);
    } catch (e) {
      if (e instanceof UnsupportedModelError) throw e;
      out = undefined;
    }
    if (out && out.some((d) => !Number.isInteger(d) || d < 0)) out = undefined;
    shapes.set(node.outputs[0], out);
    // Secondary outputs (e.g. MaxPool indices, BN running stats) are left unknown unless same-shaped.
    for (const o of node.outputs.slice(1)) if (o && !shapes.has(o)) shapes.set(o, node.op === 'MaxPool' ? out : node.op === 'DynamicQuantizeLinear' ? [] : undefined);
  }
  return { shapes, values, types: inferTypes(g) };
}

function inferNode(g: IrGraph, node: IrNode, shapes: Map<string, number[] | undefined>, values: Map<string, number[]>): number[] | undefined {
  const ins = node.inputs.map((x) => (x ? shapes.get(x) : undefined));
  const x = ins[0];
  const setVal = (v: number[] | undefined) => { if (v) values.set(node.outputs[0], v); };
  const op = node.op;
  if (SAME_SHAPE.has(op) && op !== 'PRelu') {
    if (op === 'Cast' || op === 'Identity') setVal(values.get(node.inputs[0]));
    return x;
  }
  if (BROADCAST.has(op)) {
    if (ins.some((s) => !s)) return undefined;
    const vs = node.inputs.map((i) => values.get(i));
    if (vs.every((v) => v) && node.inputs.length === 2) {
      const [a, b] = vs as number[][];
      const n = Math.max(a.length, b.length);
      const f: Record<string, (p: number, q: number) => number> = { Add: (p, q) => p + q, Sub: (p, q) => p - q, Mul: (p, q) => p * q, Div: (p, q) => Math.trunc(p / q) };
      if (f[op] && (a.length === n || a.length === 1) && (b.length === n || b.length === 1)) {
        setVal(Array.from({ length: n }, (_, i) => f[op](a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i])));
      }
    }
    return broadcastShapes(ins as number[][]);
  }
  switch (op) {
    case 'DynamicQuantizeLinear': return x;
    case 'DepthToSpace': case 'SpaceToDepth': {
      const b = attrInt(node, 'blocksize', 0);
      if (!x || x.length !== 4 || b < 1) return undefined;
      return op === 'DepthToSpace' ? [x[0], x[1] / (b * b), x[2] * b, x[3] * b] : [x[0], x[1] * b * b, x[2] / b, x[3] / b];
    }
    case 'Conv': case 'ConvInteger': case 'QLinearConv': case 'MaxPool': case 'AveragePool': case 'LpPool': {
      if (!x) return undefined;
      const k = kernelOf(g, node, shapes);
      if (!k) return undefined;
      const w = resolveWindow(node, x, k);
      const wi = weightInput(node);
      const c = wi !== undefined ? (ins[wi] ?? [])[0] : x[1];
      return [x[0], c, w.outH, w.outW];
    }
    case 'ConvTranspose': {
      if (!x || !ins[1]) return undefined;
      const k = kernelOf(g, node, shapes)!;
      const s = attrInts(node, 'strides') ?? [1, 1];
      const d = attrInts(node, 'dilations') ?? [1, 1];
      const op_ = attrInts(node, 'output_padding') ?? [0, 0];
      const group = attrInt(node, 'group', 1);
      const outShape = attrInts(node, 'output_shape');
      const c = ins[1][1] * group;
      if (outShape) return [x[0], c, ...outShape.slice(-2)];
      const autoPad = attrStr(node, 'auto_pad', 'NOTSET');
      if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return [x[0], c, x[2] * s[0], x[3] * s[1]];
      const p = autoPad === 'VALID' ? [0, 0, 0, 0] : attrInts(node, 'pads') ?? [0, 0, 0, 0];
      return [x[0], c, s[0] * (x[2] - 1) + op_[0] + (k[0] - 1) * d[0] + 1 - p[0] - p[2], s[1] * (x[3] - 1) + op_[1] + (k[1] - 1) * d[1] + 1 - p[1] - p[3]];
    }
    case 'GlobalAveragePool': case 'GlobalMaxPool': case 'GlobalLpPool':
      return x ? [x[0], x[1], ...x.slice(2).map(() => 1)] : undefined;
    case 'Flatten': {
      if (!x) return undefined;
      let axis = attrInt(node, 'axis', 1);
      if (axis < 0) axis += x.length;
      return [numel(x.slice(0, axis)), numel(x.slice(axis))];
    }
    case 'Gemm': {
      const [a, b] = ins;
      if (!a || !b) return undefined;
      const m = attrInt(node, 'transA', 0) ? a[1] : a[0];
      const n = attrInt(node, 'transB', 0) ? b[0] : b[1];
      return [m, n];
    }
    case 'MatMul': {
      const [a, b] = ins;
      if (!a || !b || a.length < 2 || b.length < 1) return undefined;
      if (b.length === 1) return a.slice(0, -1);
      const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)]);
      return batch ? [...batch, a[a.length - 2], b[b.length - 1]] : undefined;
    }
    case 'Reshape': {
      const target = values.get(node.inputs[1]) ?? attrInts(node, 'shape');
      if (!x || !target) return undefined;
      const allowZero = attrInt(node, 'allowzero', 0) === 1;
      const out = target.map((d, i) => (d === 0 && !allowZero ? x[i] : d));
      const neg = out.indexOf(-1);
      if (neg >= 0) out[neg] = numel(x) / numel(out.filter((_, i) => i !== neg));
      return out;
    }
    case 'Transpose': {
      if (!x) return undefined;
      const perm = attrInts(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      return perm.map((p) => x[p]);
    }
    case 'Squeeze': {
      if (!x) return undefined;
      const axes = axesOf(node, values, 1);
      const ax = axes ? normAxes(axes, x.length) : x.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
      const v = values.get(node.inputs[0]);
      setVal(v);
      return x.filter((_, i) => !ax.includes(i));
    }
    case 'Unsqueeze': {
      if (!x) return undefined;
      const axes = axesOf(node, values, 1);
      if (!axes) return undefined;
      const rank = x.length + axes.length;
      const ax = normAxes(axes, rank);
      const out: number[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) out.push(ax.includes(i) ? 1 : x[j++]);
      setVal(values.get(node.inputs[0]));
      return out;
    }
    case 'Concat': {
      if (ins.some((s) => !s)) return undefined;
      const s0 = ins[0]!;
      let axis = attrInt(node, 'axis', 0);
      if (axis < 0) axis += s0.length;
      const vs = node.inputs.map((i) => values.get(i));
      if (vs.every((v) => v)) setVal(vs.flat() as number[]);
      return s0.map((d, i) => (i === axis ? ins.reduce((a, s) => a + s![i], 0) : d));
    }
    case 'Shape': {
      if (!x) return undefined;
      const start = attrInt(node, 'start', 0);
      const end = node.attrs.end === undefined ? x.length : attrInt(node, 'end', x.length);
      setVal(x.slice(start, end));
      return [x.slice(start, end).length];
    }
    case 'Gather': {
      const idx = values.get(node.inputs[1]);
      const idxShape = ins[1];
      const data = values.get(node.inputs[0]);
      if (!x || !idxShape || !idx) return undefined;
      let axis = attrInt(node, 'axis', 0);
      if (axis < 0) axis += x.length;
      if (data && x.length === 1) setVal(idx.map((i) => data[i < 0 ? i + data.length : i]));
      return [...x.slice(0, axis), ...idxShape, ...x.slice(axis + 1)];
    }
    case 'Slice': {
      if (!x) return undefined;
      const starts = attrInts(node, 'starts') ?? values.get(node.inputs[1]);
      const ends = attrInts(node, 'ends') ?? values.get(node.inputs[2]);
      if (!starts || !ends) return undefined;
      const axes = normAxes(attrInts(node, 'axes') ?? (node.inputs[3] ? values.get(node.inputs[3]) : undefined) ?? starts.map((_, i) => i), x.length);
      const steps = node.inputs[4] ? values.get(node.inputs[4]) : undefined;
      const out = x.slice();
      const v = values.get(node.inputs[0]);
      axes.forEach((a, i) => {
        const step = steps?.[i] ?? 1;
        if (step !== 1) throw new Error('strided slice');
        const clampI = (t: number) => Math.min(Math.max(t < 0 ? t + x[a] : t, 0), x[a]);
        const s = clampI(starts[i]);
        const e = clampI(ends[i]);
        out[a] = Math.max(0, e - s);
        if (v && x.length === 1) setVal(v.slice(s, e));
      });
      return out;
    }
    case 'ReduceMean': case 'ReduceSum': case 'ReduceMax': case 'ReduceMin': case 'ReduceProd': case 'ReduceL2': {
      if (!x) return undefined;
      const axes = axesOf(node, values, 1);
      const keep = attrInt(node, 'keepdims', 1) === 1;
      const ax = axes ? normAxes(axes, x.length) : x.map((_, i) => i);
      return keep ? x.map((d, i) => (ax.includes(i) ? 1 : d)) : x.filter((_, i) => !ax.includes(i));
    }
    case 'Pad': {
      if (!x) return undefined;
      const pads = attrInts(node, 'pads') ?? values.get(node.inputs[1]);
      if (!pads) return undefined;
      const axes = node.inputs[3] ? values.get(node.inputs[3]) : undefined;
      const out = x.slice();
      const ax = axes ? normAxes(axes, x.length) : x.map((_, i) => i);
      ax.forEach((a, i) => { out[a] = x[a] + pads[i] + pads[i + ax.length]; });
      return out;
    }
    case 'Resize': case 'Upsample': {
      if (!x) return undefined;
      const scalesIn = op === 'Upsample' ? (attrInts(node, 'scales') ?? (node.attrs.scales as number[] | undefined) ?? values.get(node.inputs[1])) : values.get(node.inputs[g.opset >= 11 ? 2 : 1]);
      const sizes = op === 'Resize' && g.opset >= 11 && node.inputs[3] ? values.get(node.inputs[3]) : undefined;
      if (sizes && sizes.length === x.length) return sizes;
      // ORT multiplies in float32: 20 x 2.1f is 42 there, 41.99999 in double.
      if (scalesIn && scalesIn.length === x.length) return x.map((d, i) => Math.floor(Math.fround(d * Math.fround(scalesIn[i]))));
      return undefined;
    }
    default:
      return undefined;
  }
}
