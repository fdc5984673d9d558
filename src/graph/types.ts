import { DataType } from '../onnx/model-io.ts';
import type { IrGraph, IrNode } from './ir.ts';
import type { DType } from '../tensor/dtype.ts';

/**
 * Element types of every tensor, so that a tensor cut at a stage or tile boundary is declared
 * with its real type in the sub-models (a float16 map declared float makes ORT refuse the model).
 * The model's own value_info wins where it exists; otherwise the type follows from the op.
 */
export function inferTypes(g: IrGraph): Map<string, number> {
  const types = new Map<string, number>();
  for (const [name, t] of g.constants) types.set(name, t.dataType ?? DataType.FLOAT);
  for (const i of g.inputs) types.set(i.name, i.elemType || DataType.FLOAT);
  const declared = new Map<string, number>();
  const gr = g.model.graph!;
  for (const vi of [...(gr.valueInfo ?? []), ...(gr.output ?? [])]) {
    const t = vi.type?.tensorType?.elemType;
    if (vi.name && t) declared.set(vi.name, t);
  }
  for (const n of g.nodes) {
    const out = nodeTypes(n, types);
    n.outputs.forEach((o, k) => {
      if (!o) return;
      const t = declared.get(o) ?? out[k] ?? out[0];
      if (t) types.set(o, t);
    });
  }
  return types;
}

function nodeTypes(n: IrNode, types: Map<string, number>): (number | undefined)[] {
  const t = (i: number) => (n.inputs[i] ? types.get(n.inputs[i]) : undefined);
  const attr = (name: string) => (typeof n.attrs[name] === 'number' ? (n.attrs[name] as number) : undefined);
  switch (n.op) {
    case 'Cast': return [attr('to')];
    case 'CastLike': return [t(1)];
    case 'Shape': case 'Size': case 'NonZero': case 'ArgMax': case 'ArgMin': return [DataType.INT64];
    case 'Equal': case 'Less': case 'LessOrEqual': case 'Greater': case 'GreaterOrEqual': case 'Not': case 'And': case 'Or': case 'Xor': case 'IsNaN': case 'IsInf':
      return [DataType.BOOL];
    case 'Where': return [t(1)];
    case 'QuantizeLinear': return [attr('output_dtype') || t(2) || DataType.UINT8];
    case 'DequantizeLinear': return [t(1)];
    case 'DynamicQuantizeLinear': return [DataType.UINT8, DataType.FLOAT, DataType.UINT8];
    case 'QLinearConv': case 'QLinearMatMul': return [t(7) ?? t(0)];
    case 'QLinearAdd': case 'QLinearMul': return [t(7) ?? t(0)];
    case 'ConvInteger': case 'MatMulInteger': return [DataType.INT32];
    case 'ConstantOfShape': {
      const v = n.attrs.value;
      return [v && typeof v === 'object' && !Array.isArray(v) ? v.dataType ?? DataType.FLOAT : DataType.FLOAT];
    }
    case 'Range': return [t(0)];
    case 'MaxPool': return [t(0), DataType.INT64];
    case 'TopK': return [t(0), DataType.INT64];
    case 'EyeLike': case 'RandomNormalLike': case 'RandomUniformLike': return [attr('dtype') ?? t(0)];
    default: return [t(0)];
  }
}

/** The boundary dtype (src/tensor/dtype.ts) of an ONNX element type, undefined where the runtime has none. */
export function boundaryDtype(elemType: number): DType | undefined {
  switch (elemType) {
    case DataType.FLOAT: return 'float32';
    case DataType.FLOAT16: return 'float16';
    case DataType.BFLOAT16: return 'bfloat16';
    case DataType.INT8: return 'int8';
    case DataType.UINT8: return 'uint8';
    case DataType.INT32: return 'int32';
    case DataType.INT64: return 'int64';
    case DataType.BOOL: return 'bool';
    default: return undefined;
  }
}

/** Bytes per element (what a boundary tensor costs to move). */
export function dtypeBytes(elemType: number): number {
  switch (elemType) {
    case DataType.DOUBLE: case DataType.INT64: case DataType.UINT64: return 8;
    case DataType.FLOAT16: case DataType.BFLOAT16: case DataType.INT16: case DataType.UINT16: return 2;
    case DataType.INT8: case DataType.UINT8: case DataType.BOOL: return 1;
    default: return 4;
  }
}


/**
 * Ops whose CPU kernels take float16 as it is, measured on onnxruntime-node 1.30 (x86): a
 * float16 Cast -> op -> Cast keeps the op in float16. Every op in FLOAT16_VIA_FLOAT32 has no such
 * kernel: ORT's InsertCastTransformer runs it in float32 between inserted Casts.
 */
const FLOAT16_KERNELS = new Set([
  'Cast', 'Concat', 'Transpose', 'Slice', 'Reshape', 'Clip', 'Max', 'Min', 'Split', 'Squeeze', 'Unsqueeze', 'Flatten',
  'Gather', 'Round', 'Sign', 'Shrink', 'IsNaN', 'QuantizeLinear', 'DequantizeLinear',
]);
const FLOAT16_VIA_FLOAT32 = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'HardSigmoid', 'HardSwish', 'Add', 'Mul', 'Sub', 'Div', 'Sum', 'Mean', 'Abs', 'Neg',
  'Exp', 'Log', 'Sqrt', 'Erf', 'Sin', 'Pow', 'Reciprocal', 'Floor', 'Ceil', 'Conv', 'ConvTranspose', 'MaxPool', 'AveragePool',
  'LpPool', 'GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool', 'ReduceMax', 'ReduceMean', 'ReduceSum', 'ArgMax',
  'Softmax', 'LogSoftmax', 'Hardmax', 'Resize', 'Upsample', 'Pad', 'BatchNormalization', 'InstanceNormalization',
  'LpNormalization', 'LRN', 'DepthToSpace', 'SpaceToDepth', 'Where', 'Greater', 'Equal', 'PRelu', 'Elu', 'Selu', 'Softplus',
  'ThresholdedRelu', 'Mish', 'Gelu', 'MatMul', 'Gemm', 'Tile', 'Einsum', 'Trilu',
]);

export interface Float16Boundaries {
  /**
   * float16 tensors that the whole model holds in float32, never rounded, for the ops that read
   * them: they cross a stage boundary as float32 (submodel.ts rebuilds ORT's cast structure).
   */
  widen: ReadonlySet<string>;
  /** Tensors whose rounding a stage boundary could not reproduce: no cut may cross them. */
  noCut: ReadonlySet<string>;
}

/**
 * Where monolithic ORT keeps a float16 model's values in float32, and so where a sub-model
 * boundary must carry float32 to equal it exactly.
 *
 * ORT on CPU runs an op without a float16 kernel in float32: InsertCastTransformer wraps it in
 * Cast(float16 -> float) and Cast(float -> float16), and RemoveDuplicateCastTransformer then
 * drops every float -> float16 -> float pair, the model's own Cast to float16 included. So the
 * float16 output of such an op (or of the model's Cast from float) is never rounded for a reader
 * that also runs in float32 (or Casts it back to float), and rounded only for readers with a
 * float16 kernel. A float16-kernel op is "isolated" and runs in float32 too when its first
 * non-constant float16 input comes from, and all its float16 outputs go to, ops that need Casts
 * (`ortFloat16`, measured on onnxruntime-node 1.30). Ops outside both measured lists, Casts to
 * other types, and a Conv's output that ORT folds a BatchNormalization/Add/Mul into, are never
 * cut (noCut): a stage boundary there would not reproduce what the whole model computes.
 *
 * A widened tensor is produced in its stage as [op -> Neg -> Neg -> Cast(float)] and read in
 * the next as [Cast(float16) -> Neg -> Neg -> readers]: the Negs (float32-run, an exact
 * identity) stand for the readers and the producer on the other side, so ORT's transformer sees
 * the same neighbours and removes the same Cast pairs in each sub-model as in the whole model.
 */
export function float16Boundaries(g: IrGraph, types: Map<string, number>): Float16Boundaries {
  const ort = ortFloat16(g, types);
  const { isHalf, needsCast, castFromFloat, firstHalfInput } = ort;
  const halfIn = (n: IrNode) => n.inputs.some(isHalf);
  const known = (n: IrNode) => FLOAT16_KERNELS.has(n.op) || FLOAT16_VIA_FLOAT32.has(n.op);
  const graphOutputs = new Set(g.outputs);
  const consumers = (t: string) => g.consumers.get(t) ?? [];
  const isolated = ort.isolated;
  const runsFloat = (n: IrNode) => needsCast(n) || (halfIn(n) && isolated(n));
  const castTo = (n: IrNode) => (n.op === 'Cast' && typeof n.attrs.to === 'number' ? n.attrs.to : undefined);
  const isConst = (x: string) => g.constants.has(x) || !!g.derived?.has(x);
  // ORT folds a BatchNormalization, or an Add or Mul of a constant, into the Conv before it
  // (ConvBNFusion, ConvAddFusion, ConvMulFusion), and with float16 weights the folded weights are
  // rounded to float16: a cut between them would compute something else.
  const folds = (n: IrNode, r: IrNode) => n.op === 'Conv' && (r.op === 'BatchNormalization' || ((r.op === 'Add' || r.op === 'Mul') && r.inputs.some(isConst)));
  const widen = new Set<string>();
  const noCut = new Set<string>();
  for (const n of g.nodes) {
    for (const t of n.outputs) {
      if (types.get(t) === DataType.BFLOAT16) { noCut.add(t); continue; }
      if (!isHalf(t)) continue;
      const fromFloat = castFromFloat(n);
      const held = runsFloat(n) || fromFloat;
      const readers = consumers(t);
      if (!known(n) || readers.some((c) => !known(c))) { noCut.add(t); continue; }
      if (readers.length === 1 && folds(n, readers[0])) { noCut.add(t); continue; }
      if (!held) continue;
      // A model output is the rounded float16 value: one boundary cannot carry both.
      if (graphOutputs.has(t)) { noCut.add(t); continue; }
      // A float16-kernel reader on the far side would make a float16-kernel producer look isolated here.
      if (FLOAT16_KERNELS.has(n.op) && !fromFloat && readers.some((c) => FLOAT16_KERNELS.has(c.op))) { noCut.add(t); continue; }
      // A float16-kernel reader whose first input this is: across a boundary it reads a Neg (see
      // above), which makes it isolated; in the whole model it is isolated only if the producer
      // itself needs casts.
      if (!needsCast(n) && readers.some((c) => FLOAT16_KERNELS.has(c.op) && firstHalfInput(c) === t)) { noCut.add(t); continue; }
      // Casts to other than float and float16 keep what they read; not reproduced here.
      if (readers.some((c) => castTo(c) !== undefined && castTo(c) !== DataType.FLOAT && castTo(c) !== DataType.FLOAT16)) { noCut.add(t); continue; }
      widen.add(t);
      // The model's Cast back to float returns the unrounded value in the whole model; as a stage
      // output it does too, unless a float16-kernel reader there keeps the rounding Cast alive.
      if (readers.some((c) => FLOAT16_KERNELS.has(c.op) && c.op !== 'Cast')) {
        for (const c of readers) if (castTo(c) === DataType.FLOAT) noCut.add(c.outputs[0]);
      }
    }
  }
  return { widen, noCut };
}

/** What ORT's InsertCastTransformer decides for a float16 graph, as measured (see float16Boundaries). */
export interface OrtFloat16 {
  isHalf(t: string): boolean;
  /** Has a float16 input and no float16 kernel: runs in float32 between inserted Casts. */
  needsCast(n: IrNode): boolean;
  /** Has a float16 kernel. */
  halfKernel(n: IrNode): boolean;
  castFromFloat(n: IrNode): boolean;
  /** The first float16 input that is not a constant: the one ORT 1.30 judges isolation by. */
  firstHalfInput(n: IrNode): string | undefined;
  /**
   * A float16-kernel op ORT runs in float32 anyway: its first non-constant float16 input comes
   * from an op that needs Casts, and every reader of its float16 outputs needs Casts.
   */
  isolated(n: IrNode): boolean;
}

export function ortFloat16(g: IrGraph, types: Map<string, number>): OrtFloat16 {
  const isHalf = (t: string) => !!t && types.get(t) === DataType.FLOAT16;
  const isConst = (x: string) => g.constants.has(x) || !!g.derived?.has(x);
  const needsCast = (n: IrNode) => n.inputs.some(isHalf) && FLOAT16_VIA_FLOAT32.has(n.op);
  const halfKernel = (n: IrNode) => FLOAT16_KERNELS.has(n.op);
  const castFromFloat = (n: IrNode) => n.op === 'Cast' && !!n.inputs[0] && types.get(n.inputs[0]) === DataType.FLOAT && isHalf(n.outputs[0]);
  // Measured on 1.30: Max(a, x) with a from a Relu and x from the model's Cast to float16 runs
  // in float32, Max(x, a) in float16. Constant inputs are cast once ("precision-free") and do not count.
  const firstHalfInput = (n: IrNode) => n.inputs.find((x) => isHalf(x) && !isConst(x));
  const graphOutputs = new Set(g.outputs);
  const isolated = (n: IrNode) => {
    if (!halfKernel(n) || n.op === 'Cast' || n.outputs.some((o) => graphOutputs.has(o))) return false;
    const first = firstHalfInput(n);
    const p = first ? g.producer.get(first) : undefined;
    if (!p || !needsCast(p)) return false;
    const outs = n.outputs.filter(isHalf).map((o) => g.consumers.get(o) ?? []);
    return outs.some((c) => c.length) && outs.every((c) => c.every(needsCast));
  };
  return { isHalf, needsCast, halfKernel, castFromFloat, firstHalfInput, isolated };
}
