import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';
import { ModelDecodeError } from './errors.ts';
import { bfloat16ToFloat, floatToBfloat16, floatToHalf, halfToFloat } from '../tensor/dtype.ts';

export const { onnx } = onnxProto;
export type ModelProto = onnxProto.onnx.ModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

export const DataType = onnx.TensorProto.DataType;
export const AttrType = onnx.AttributeProto.AttributeType;

/** protobufjs decodes int64 as Long objects (the `long` package is installed); normalise to number. */
export function toNum(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v && typeof v === 'object' && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  if (v && typeof v === 'object' && 'low' in v && 'high' in v) {
    const l = v as { low: number; high: number };
    return l.high * 4294967296 + (l.low >>> 0);
  }
  return Number(v);
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Decodes ONNX bytes. protobuf decoding of random bytes often "succeeds" with garbage, so a
 * model without a graph or opset is rejected too.
 */
export function decodeModel(bytes: Uint8Array, label = 'model'): ModelProto {
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (cause) {
    throw new ModelDecodeError(`not a valid ONNX model (${(cause as Error).message})`, { model: label, cause });
  }
  if (!model.graph || !model.graph.node?.length) {
    throw new ModelDecodeError('not a valid ONNX model: no graph or no nodes', { model: label });
  }
  if (!model.opsetImport?.length) {
    throw new ModelDecodeError('not a valid ONNX model: no opset_import', { model: label });
  }
  return model;
}

export function encodeModel(model: onnxProto.onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Reads a tensor's values as numbers (float/int types used by shapes, pads, scales, weights). */
export function tensorValues(t: TensorProto): number[] {
  const dt = t.dataType ?? 0;
  const raw = t.rawData && t.rawData.length ? t.rawData : undefined;
  if (raw) {
    const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const out: number[] = [];
    switch (dt) {
      case DataType.FLOAT: for (let i = 0; i < buf.length; i += 4) out.push(buf.readFloatLE(i)); break;
      case DataType.DOUBLE: for (let i = 0; i < buf.length; i += 8) out.push(buf.readDoubleLE(i)); break;
      case DataType.INT64: for (let i = 0; i < buf.length; i += 8) out.push(Number(buf.readBigInt64LE(i))); break;
      case DataType.INT32: for (let i = 0; i < buf.length; i += 4) out.push(buf.readInt32LE(i)); break;
      case DataType.INT8: for (let i = 0; i < buf.length; i++) out.push(buf.readInt8(i)); break;
      case DataType.UINT8: case DataType.BOOL: for (let i = 0; i < buf.length; i++) out.push(buf[i]); break;
      case DataType.FLOAT16: for (let i = 0; i < buf.length; i += 2) out.push(halfToFloat(buf.readUInt16LE(i))); break;
      case DataType.BFLOAT16: for (let i = 0; i < buf.length; i += 2) out.push(bfloat16ToFloat(buf.readUInt16LE(i))); break;
      default: throw new Error(`unsupported tensor data type ${dt} for ${t.name}`);
    }
    return out;
  }
  if (t.floatData?.length) return Array.from(t.floatData);
  if (t.doubleData?.length) return Array.from(t.doubleData);
  if (t.int64Data?.length) return t.int64Data.map(toNum);
  if (t.int32Data?.length) {
    // float16 and bfloat16 keep their bit patterns in int32_data.
    if (dt === DataType.FLOAT16) return Array.from(t.int32Data, halfToFloat);
    if (dt === DataType.BFLOAT16) return Array.from(t.int32Data, bfloat16ToFloat);
    return Array.from(t.int32Data);
  }
  return [];
}

/** Smallest value of an element type: what a MaxPool's -inf border becomes in an integer map. */
export function lowestOf(dataType: number): number {
  switch (dataType) {
    case DataType.INT8: return -128;
    case DataType.UINT8: case DataType.UINT16: case DataType.UINT32: case DataType.UINT64: case DataType.BOOL: return 0;
    case DataType.INT16: return -32768;
    case DataType.INT32: return -2147483648;
    case DataType.INT64: return Number.MIN_SAFE_INTEGER;
    default: return -Infinity;
  }
}

/** A one-element tensor of any numeric element type (fill values of runtime Pads). */
export function scalarTensor(name: string, dataType: number, value: number, dims: number[] = []): TensorProto {
  const b = Buffer.alloc(8);
  let width: number;
  switch (dataType) {
    case DataType.FLOAT16: b.writeUInt16LE(floatToHalf(value)); width = 2; break;
    case DataType.BFLOAT16: b.writeUInt16LE(floatToBfloat16(value)); width = 2; break;
    case DataType.DOUBLE: b.writeDoubleLE(value); width = 8; break;
    case DataType.INT8: b.writeInt8(value); width = 1; break;
    case DataType.UINT8: case DataType.BOOL: b.writeUInt8(value); width = 1; break;
    case DataType.INT16: b.writeInt16LE(value); width = 2; break;
    case DataType.UINT16: b.writeUInt16LE(value); width = 2; break;
    case DataType.INT32: b.writeInt32LE(value); width = 4; break;
    case DataType.UINT32: b.writeUInt32LE(value); width = 4; break;
    case DataType.INT64: b.writeBigInt64LE(BigInt(value)); width = 8; break;
    case DataType.UINT64: b.writeBigUInt64LE(BigInt(value)); width = 8; break;
    default: b.writeFloatLE(value); width = 4;
  }
  return { name, dims, dataType, rawData: new Uint8Array(b.subarray(0, width)) };
}

export function tensorDims(t: TensorProto): number[] {
  return (t.dims ?? []).map(toNum);
}

/** Bytes a tensor's payload takes (raw or typed fields). */
export function tensorByteSize(t: TensorProto): number {
  if (t.rawData?.length) return t.rawData.length;
  const n = tensorDims(t).reduce((a, b) => a * b, 1);
  const dt = t.dataType ?? 0;
  const width = dt === DataType.DOUBLE || dt === DataType.INT64 ? 8 : dt === DataType.INT8 || dt === DataType.UINT8 || dt === DataType.BOOL ? 1 : dt === DataType.FLOAT16 ? 2 : 4;
  return n * width;
}
