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

