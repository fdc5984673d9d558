import { z } from 'zod';

/**
 * Element types a tensor may have when it crosses a tile or stage boundary, and the typed
 * arrays that hold them. float16 and bfloat16 are kept as their raw bits (Uint16Array): that is
 * what onnxruntime-node feeds and returns on runtimes without Float16Array, and bits cross the
 * store unchanged. bool is one byte per element (0 or 1), as ONNX and ORT store it.
 */
export const DTYPES = ['float32', 'float16', 'bfloat16', 'int8', 'uint8', 'int32', 'int64', 'bool'] as const;
export const dtypeSchema = z.enum(DTYPES);
export type DType = z.infer<typeof dtypeSchema>;

export interface DataOf {
  float32: Float32Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  int32: Int32Array;
  int64: BigInt64Array;
  bool: Uint8Array;
}
export type TensorData = DataOf[DType];

export const ELEMENT_BYTES: Readonly<Record<DType, number>> = {
  float32: 4, float16: 2, bfloat16: 2, int8: 1, uint8: 1, int32: 4, int64: 8, bool: 1,
};

/** float32 tensors may leave out their dtype: every tensor was float32 before dtypes were carried. */
export interface FloatTensor { dtype?: 'float32'; dims: number[]; data: Float32Array }
/** int64 tensors may too (runtime pads): BigInt64Array says what they are. */
export interface Int64Tensor { dtype?: 'int64'; dims: number[]; data: BigInt64Array }
export type TensorOf<K extends DType> = K extends 'float32' ? FloatTensor : K extends 'int64' ? Int64Tensor : { dtype: K; dims: number[]; data: DataOf[K] };
/** A tensor of any boundary dtype; `dtypeOf` reads its dtype. */
export type Tensor = { [K in DType]: TensorOf<K> }[DType];

export function dtypeOf(t: Tensor): DType {
  return t.dtype ?? (t.data instanceof BigInt64Array ? 'int64' : 'float32');
}

const CTOR = {
  float32: Float32Array, float16: Uint16Array, bfloat16: Uint16Array, int8: Int8Array,
  uint8: Uint8Array, int32: Int32Array, int64: BigInt64Array, bool: Uint8Array,
} as const;

/** A zero-filled array of `n` elements of `dtype`. */
export function allocate<K extends DType>(dtype: K, n: number): DataOf[K] {
  return new CTOR[dtype](n) as DataOf[K];
}

/** Builds a tensor, checking that the array is the one `dtype` uses and fits `dims`. */
export function makeTensor(dtype: DType, dims: number[], data: TensorData): Tensor {
  if (!(data instanceof CTOR[dtype])) throw new TypeError(`${dtype} data must be a ${CTOR[dtype].name}, got ${data.constructor.name}`);
  const n = dims.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new RangeError(`dims [${dims}] need ${n} elements, data has ${data.length}`);
  return { dtype, dims, data } as Tensor;
}

export const zerosOf = (dtype: DType, dims: number[]): Tensor => makeTensor(dtype, dims, allocate(dtype, dims.reduce((a, b) => a * b, 1)));

/** The little-endian bytes of a typed array (a view; the machines this runs on are little-endian). */
export function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * `n` elements of `dtype` from `bytes`: a view when the bytes are aligned for the element size,
 * a copy otherwise (items of a bundle follow each other with no padding).
 */
export function fromBytes<K extends DType>(dtype: K, bytes: Uint8Array, n: number): DataOf[K] {
  const size = ELEMENT_BYTES[dtype];
  if (bytes.length < n * size) throw new RangeError(`${n} ${dtype} elements need ${n * size} bytes, got ${bytes.length}`);
  if (bytes.byteOffset % size === 0) return new CTOR[dtype](bytes.buffer as ArrayBuffer, bytes.byteOffset, n) as DataOf[K];
  const copy = new Uint8Array(n * size);
  copy.set(bytes.subarray(0, n * size));
  return new CTOR[dtype](copy.buffer, 0, n) as DataOf[K];
}

// ---------------------------------------------------------------------------
// Half precision

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits to a number (exact: every half is a float32). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A number to IEEE half bits, rounding to nearest even as ORT's Cast does (overflow gives ±inf). */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  let m = x & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  const he = e - 127 + 15;
  if (he >= 31) return sign | 0x7c00;
  if (he <= 0) {
    // Subnormal half (or zero): shift the full mantissa down, rounding to nearest even.
    if (he < -10) return sign;
    m |= 0x800000;
    const shift = 14 - he;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (he << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++;
  return sign | r;
}

/** bfloat16 bits to a number (exact). */
export function bfloat16ToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** A number to bfloat16 bits, rounding to nearest even (NaN stays NaN). */
export function floatToBfloat16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Any tensor's values as float32 (reductions, comparisons; int64 beyond 2^24 rounds). */
export function toFloat32(t: Tensor): Float32Array {
  const d = dtypeOf(t);
  if (d === 'float32') return t.data as Float32Array;
  const out = new Float32Array(t.data.length);
  if (d === 'float16') { const a = t.data as Uint16Array; for (let i = 0; i < a.length; i++) out[i] = halfToFloat(a[i]); }
  else if (d === 'bfloat16') { const a = t.data as Uint16Array; for (let i = 0; i < a.length; i++) out[i] = bfloat16ToFloat(a[i]); }
  else if (d === 'int64') { const a = t.data as BigInt64Array; for (let i = 0; i < a.length; i++) out[i] = Number(a[i]); }
  else out.set(t.data as Int8Array | Uint8Array | Int32Array);
  return out;
}

/**
 * float32 values as a tensor of a float dtype (rounded to nearest even): a reduction's combined
 * float32 result becomes the dtype its consumer expects.
 */
export function fromFloat32(dtype: 'float32' | 'float16' | 'bfloat16', dims: number[], v: Float32Array): Tensor {
  if (dtype === 'float32') return { dtype, dims, data: v };
  const out = new Uint16Array(v.length);
  const conv = dtype === 'float16' ? floatToHalf : floatToBfloat16;
  for (let i = 0; i < v.length; i++) out[i] = conv(v[i]);
  return { dtype, dims, data: out };
}

export const isFloatDtype = (d: DType): d is 'float32' | 'float16' | 'bfloat16' => d === 'float32' || d === 'float16' || d === 'bfloat16';
