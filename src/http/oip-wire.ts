/**
 * Tensor data on the OIP wire, both directions: splitting a binary-extension body, JSON values
 * and binary bytes of each datatype. Shared by the server (oip-request.ts, oip-response.ts) and
 * the client (oip-client.ts), so both ends write and read the same bytes.
 */
import { badRequest } from './errors.ts';
import {
  allocate, bfloat16ToFloat, bytesOf, floatToBfloat16, floatToHalf, halfToFloat, type TensorData,
} from '../tensor/dtype.ts';
import type { OipDatatype } from '../serve/model-entry.ts';
import { ELEMENT_SIZE, INFERENCE_HEADER_CONTENT_LENGTH, runtimeDtype } from './oip.ts';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

/** Where converted JSON values go: the datatype's own array, or float32 for the others. */
export function jsonSink(datatype: OipDatatype, count: number): { data: TensorData; set: (i: number, x: number) => void } {
  const dtype = runtimeDtype(datatype);
  switch (dtype) {
    case 'float16': { const a = allocate(dtype, count); return { data: a, set: (i, x) => { a[i] = floatToHalf(x); } }; }
    case 'bfloat16': { const a = allocate(dtype, count); return { data: a, set: (i, x) => { a[i] = floatToBfloat16(x); } }; }
    case 'int64': { const a = allocate(dtype, count); return { data: a, set: (i, x) => { a[i] = BigInt(x); } }; }
    case 'float32': case 'int8': case 'uint8': case 'int32': case 'bool': { const a = allocate(dtype, count); return { data: a, set: (i, x) => { a[i] = x; } }; }
    default: { const a = new Float32Array(count); return { data: a, set: (i, x) => { a[i] = x; } }; }
  }
}

/**
 * Binary input bytes as the datatype's own array (copied: the body buffer is not kept), or as
 * float32 for datatypes no model tensor has. BOOL bytes must be 0 or 1.
 */
export function readBinary(name: string, datatype: OipDatatype, bytes: Buffer, count: number): TensorData {
  const dtype = runtimeDtype(datatype);
  if (dtype) {
    const out = allocate(dtype, count);
    bytesOf(out).set(bytes);
    if (dtype === 'bool') {
      const i = (out as Uint8Array).findIndex((b) => b > 1);
      if (i >= 0) throw badRequest(`input "${name}": element ${i} is byte ${(out as Uint8Array)[i]}, not a valid BOOL (0 or 1)`, { code: 'invalid_data', details: { input: name } });
    }
    return out;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  const read: Partial<Record<OipDatatype, (o: number) => number>> = {
    UINT16: (o) => dv.getUint16(o, true), INT16: (o) => dv.getInt16(o, true), UINT32: (o) => dv.getUint32(o, true),
    UINT64: (o) => Number(dv.getBigUint64(o, true)), FP64: (o) => dv.getFloat64(o, true),
  };
  const size = ELEMENT_SIZE[datatype]!;
  for (let i = 0; i < count; i++) out[i] = read[datatype]!(i * size);
  return out;
}

function float32LEBytes(data: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const buf = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) buf.writeFloatLE(data[i]!, i * 4);
  return buf;
}

/** Split a body into JSON header and binary section according to `inference-header-content-length`. */
export function splitBinaryBody(body: Buffer, headers: Record<string, string | string[] | undefined>): { json: Buffer; binary: Buffer | undefined } {
  const raw = headerValue(headers, INFERENCE_HEADER_CONTENT_LENGTH);
  if (raw === undefined) return { json: body, binary: undefined };
  const s = raw.trim();
  if (!/^\d+$/.test(s)) throw badRequest(`${INFERENCE_HEADER_CONTENT_LENGTH} header must be a non-negative integer, got ${JSON.stringify(raw)}`, { code: 'invalid_header' });
  const n = Number(s);
  if (n > body.length) {
    throw badRequest(`${INFERENCE_HEADER_CONTENT_LENGTH} is ${n} but the body has only ${body.length} bytes`, { code: 'invalid_header' });
  }
  return { json: body.subarray(0, n), binary: body.subarray(n) };
}

export function parseJsonHeader(json: Buffer, what: string): unknown {
  if (json.length === 0) throw badRequest(`${what} is empty; expected a JSON object`, { code: 'invalid_json' });
  try {
    return JSON.parse(json.toString('utf8'));
  } catch (e) {
    throw badRequest(`${what} is not valid JSON: ${(e as Error).message}`, { code: 'invalid_json' });
  }
}

/** Shortest decimal that round-trips through float32 (≤ 9 significant digits). NaN/±Inf become null (JSON). */
function fp32ToJson(data: Float32Array): (number | null)[] {
  const out = new Array<number | null>(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    out[i] = Number.isFinite(v) ? Number(v.toPrecision(9)) : null;
  }
  return out;
}

/**
 * JSON numbers cannot carry int64 exactly through JSON.stringify (no bigint): INT64 data is
 * written as a placeholder and spliced in as exact digits afterwards.
 */
export class RawJson {
  constructor(readonly text: string) {}
}

/** JSON values of numeric tensor data: FP16/BF16 as the numbers their bits are, BOOL as booleans. */
export function jsonValues(datatype: Exclude<OipDatatype, 'BYTES'>, data: TensorData): unknown[] | RawJson {
  switch (datatype) {
    case 'FP32': return fp32ToJson(data as Float32Array);
    case 'FP16': case 'BF16': {
      const conv = datatype === 'FP16' ? halfToFloat : bfloat16ToFloat;
      return Array.from(data as Uint16Array, (b) => { const v = conv(b); return Number.isFinite(v) ? v : null; });
    }
    case 'BOOL': return Array.from(data as Uint8Array, (b) => b !== 0);
    case 'INT64': return new RawJson(`[${(data as BigInt64Array).join(',')}]`);
    default: return Array.from(data as Exclude<TensorData, BigInt64Array>);
  }
}

/** JSON.stringify with RawJson values spliced in verbatim. */
export function stringifyWithRaw(value: unknown): string {
  const raws: string[] = [];
  const nonce = Math.random().toString(36).slice(2);
  const json = JSON.stringify(value, (_k, v: unknown) => (v instanceof RawJson ? `\u0001${nonce}:${raws.push(v.text) - 1}` : v));
  if (!raws.length) return json;
  return json.replace(new RegExp(`"\\\\u0001${nonce}:(\\d+)"`, 'g'), (_m, i: string) => raws[Number(i)]!);
}

/** Binary bytes of numeric tensor data (little-endian, the machine's order). */
export function tensorBytes(data: TensorData): Buffer {
  if (data instanceof Float32Array) return float32LEBytes(data);
  const b = bytesOf(data);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
