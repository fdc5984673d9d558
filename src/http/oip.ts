/**
 * KServe / Triton Open Inference Protocol v2 (REST): inference request parsing,
 * response encoding, model metadata, and the binary tensor data and
 * classification extensions.
 *
 * Binary tensor data extension: when the `inference-header-content-length: N`
 * header is present, the first N body bytes are the JSON header and the rest is
 * the binary section. Inputs with `parameters.binary_data_size` take their bytes
 * from the binary section in input order (little-endian, row-major, no padding).
 * Outputs requested with `parameters.binary_data: true` (or every output when
 * the request has `parameters.binary_data_output: true`) are returned the same
 * way, each with `parameters.binary_data_size`.
 *
 * Tensors keep their datatype: FP32, FP16, BF16, INT8, UINT8, INT32, INT64 and BOOL map to the
 * runtime's dtypes (src/tensor/dtype.ts; FP16/BF16 as bits, BOOL one byte of 0 or 1), in JSON
 * and in binary. Every numeric input is also offered as float32 (`data`) for FP32 models.
 */
import { z } from 'zod';
import { badRequest, internal } from './errors.ts';
import { zodPath } from '../zod-issues.ts';
import {
  allocate, bfloat16ToFloat, bytesOf, dtypeOf, floatToBfloat16, floatToHalf, halfToFloat, makeTensor, toFloat32,
  type DType, type Tensor, type TensorData,
} from '../tensor/dtype.ts';
import { OIP_DATATYPES, OIP_TO_DTYPE, oipDatatype, type OipDatatype, type TensorDatatype, type TensorMetadata } from '../serve/model-entry.ts';

export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';


/** Datatypes accepted as JSON tensor data. */
export const JSON_NUMERIC_DATATYPES: readonly OipDatatype[] = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'BF16', 'FP32', 'FP64',
];
/** Bytes per element in the binary extension ("the native size of the data type"; BOOL is one byte). */
const ELEMENT_SIZE: Partial<Record<OipDatatype, number>> = {
  BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, BF16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8,
};
/** Datatypes accepted as binary tensor data. */
export const BINARY_DATATYPES: readonly OipDatatype[] = JSON_NUMERIC_DATATYPES;

const runtimeDtype = (d: OipDatatype): DType | undefined => (OIP_TO_DTYPE as Partial<Record<OipDatatype, DType>>)[d];

/** Upper bound on the element count of one tensor (Float32Array allocation guard). */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;

// ---------------------------------------------------------------------------
// Schemas

const parametersSchema = z.record(z.string(), z.unknown());

export const inferInputSchema = z.object({
  name: z.string().min(1),
  shape: z.array(z.number().int()),
  datatype: z.string().min(1),
  parameters: parametersSchema.optional(),
  /** Flat or nested array; validated by parseInferRequest (zod on 150k elements is slow and its errors unhelpful). */
  data: z.unknown().optional(),
});

export const requestOutputSchema = z.object({
  name: z.string().min(1),
  parameters: z
    .looseObject({
      binary_data: z.boolean().optional(),
      classification: z.number().int().min(1).optional(),
    })
    .optional(),
});

export const inferRequestSchema = z.object({
  id: z.string().optional(),
  parameters: z.looseObject({ binary_data_output: z.boolean().optional() }).optional(),
  inputs: z.array(inferInputSchema).min(1),
  outputs: z.array(requestOutputSchema).optional(),
});

export type InferRequestJson = z.input<typeof inferRequestSchema>;

export interface ParsedInferInput {
  name: string;
  shape: number[];
  /** Datatype as sent. */
  datatype: OipDatatype;
  parameters: Record<string, unknown>;
  /** The values as float32 (computed on first use for other datatypes). */
  readonly data: Float32Array;
  /**
   * The values in their own dtype, for the datatypes a model tensor can have (absent for UINT16,
   * UINT32, UINT64, INT16 and FP64). `inputTensor` checks it against the model's input.
   */
  tensor?: Tensor;
  /** True when the data came from the binary section. */
  binary: boolean;
}

export interface RequestedOutput {
  name: string;
  parameters: Record<string, unknown>;
  /** `parameters.binary_data`, if given. */
  binaryData: boolean | undefined;
  /** `parameters.classification` (top-N count), if given. */
  classification: number | undefined;
}

export interface ParsedInferRequest {
  id: string | undefined;
  parameters: Record<string, unknown>;
  inputs: ParsedInferInput[];
  /** Requested outputs; undefined means "all outputs". */
  outputs: RequestedOutput[] | undefined;
  /** Which outputs to return as binary: all (true), none (false), or by name. Pass to encodeInferResponse. */
  binaryOutput: boolean | Set<string>;
}

// ---------------------------------------------------------------------------
// Helpers

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** Element count of a shape; throws 400 naming `what` for negative/non-integer dims or overflow. */
export function elementCount(shape: readonly number[], what = 'tensor'): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (!Number.isInteger(d)) throw badRequest(`${what}: shape ${fmtShape(shape)} has a non-integer dimension at index ${i}`, { code: 'invalid_shape' });
    if (d < 0) throw badRequest(`${what}: shape ${fmtShape(shape)} has a negative dimension ${d} at index ${i}`, { code: 'invalid_shape' });
    n *= d;
  }
  if (n > MAX_TENSOR_ELEMENTS) throw badRequest(`${what}: shape ${fmtShape(shape)} has ${n} elements, over the limit of ${MAX_TENSOR_ELEMENTS}`, { code: 'invalid_shape' });
  return n;
}

type Converter = (v: unknown) => number | undefined;

const FP32_MAX = 3.4028234663852886e38;
const FP16_MAX = 65504;

function intConverter(min: number, max: number): Converter {
  return (v) => (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : undefined);
}

/** Finite values that do not round to infinity in the target type (9-digit float32 maxima included). */
function floatConverter(max: number, round: (v: number) => number = (v) => v): Converter {
  return (v) => (typeof v === 'number' && Number.isFinite(v) && (Math.abs(v) <= max || Number.isFinite(round(v))) ? v : undefined);
}

const CONVERTERS: Partial<Record<OipDatatype, Converter>> = {
  BF16: floatConverter(FP32_MAX, (v) => bfloat16ToFloat(floatToBfloat16(v))),
  BOOL: (v) => (typeof v === 'boolean' ? (v ? 1 : 0) : undefined),
  UINT8: intConverter(0, 255),
  UINT16: intConverter(0, 65535),
  UINT32: intConverter(0, 2 ** 32 - 1),
  // 2^64 and 2^63 (what the largest values parse to as doubles) are out of range: exclusive bounds.
  UINT64: (v) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 64 ? v : undefined),
  INT8: intConverter(-128, 127),
  INT16: intConverter(-32768, 32767),
  INT32: intConverter(-(2 ** 31), 2 ** 31 - 1),
  INT64: (v) => (typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 63 ? v : undefined),
  FP16: floatConverter(FP16_MAX, (v) => halfToFloat(floatToHalf(v))),
  FP32: floatConverter(FP32_MAX, Math.fround),
  FP64: floatConverter(Number.MAX_VALUE),
};

function describeValue(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

/**
 * Convert JSON tensor data (flat, or nested exactly like `shape`) into `out`.
 * Throws 400 naming the input and the offending element/level.
 */
function convertJsonData(name: string, datatype: OipDatatype, shape: readonly number[], count: number, data: unknown): TensorData {
  const what = `input "${name}"`;
  if (!Array.isArray(data)) throw badRequest(`${what}: data must be an array, got ${describeValue(data)}`, { code: 'invalid_data', details: { input: name } });
  const conv = CONVERTERS[datatype]!;
  const { data: out, set } = jsonSink(datatype, count);
  const bad = (flatIndex: number, v: unknown) =>
    badRequest(`${what}: element ${flatIndex} is ${describeValue(v)}, not a valid ${datatype} value`, { code: 'invalid_data', details: { input: name } });

  const nested = data.length > 0 && Array.isArray(data[0]);
  if (!nested) {
    if (data.length !== count) {
      throw badRequest(`${what}: shape ${fmtShape(shape)} needs ${count} elements, but data has ${data.length}`, { code: 'shape_mismatch', details: { input: name } });
    }
    for (let i = 0; i < count; i++) {
      const x = conv(data[i]);
      if (x === undefined) throw bad(i, data[i]);
      set(i, x);
    }
    return out;
  }

  // Nested: the array structure must follow the shape exactly.
  const rank = shape.length;
  let pos = 0;
  const walk = (node: unknown, depth: number, path: string): void => {
    if (depth === rank) {
      if (Array.isArray(node)) throw badRequest(`${what}: nested data is deeper than shape ${fmtShape(shape)} at data${path}`, { code: 'shape_mismatch', details: { input: name } });
      const x = conv(node);
      if (x === undefined) throw bad(pos, node);
      set(pos++, x);
      return;
    }
    if (!Array.isArray(node)) {
      throw badRequest(`${what}: nested data does not match shape ${fmtShape(shape)}: data${path} is ${describeValue(node)}, expected an array of ${shape[depth]}`, {
        code: 'shape_mismatch',
        details: { input: name },
      });
    }
    if (node.length !== shape[depth]) {
      throw badRequest(`${what}: nested data does not match shape ${fmtShape(shape)}: data${path} has ${node.length} elements, expected ${shape[depth]}`, {
        code: 'shape_mismatch',
        details: { input: name },
      });
    }
    for (let i = 0; i < node.length; i++) walk(node[i], depth + 1, `${path}[${i}]`);
  };
  walk(data, 0, '');
  return out;
}

/** Where converted JSON values go: the datatype's own array, or float32 for the others. */
function jsonSink(datatype: OipDatatype, count: number): { data: TensorData; set: (i: number, x: number) => void } {
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
function readBinary(name: string, datatype: OipDatatype, bytes: Buffer, count: number): TensorData {
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

/** An input as the parser returns it: `data` (float32) is derived on first use unless it is the tensor's own. */
function parsedInput(base: Omit<ParsedInferInput, 'data' | 'tensor'>, values: TensorData): ParsedInferInput {
  const dtype = runtimeDtype(base.datatype);
  if (!dtype) return { ...base, data: values as Float32Array };
  const tensor = makeTensor(dtype, [...base.shape], values);
  let f32: Float32Array | undefined;
  return { ...base, tensor, get data() { return (f32 ??= toFloat32(tensor)); } };
}

/**
 * The input as the model's input dtype wants it: a 400 naming the input and both datatypes when
 * the request sent another (no silent conversion: an INT64 id tensor is not an FP32 image).
 */
export function inputTensor(input: ParsedInferInput, expected: DType): Tensor {
  const want = oipDatatype(expected);
  if (input.datatype !== want || !input.tensor) {
    throw badRequest(`input "${input.name}": datatype ${input.datatype} does not match the model's input, which is ${want}`, {
      code: 'datatype_mismatch', details: { input: input.name, expected: want, given: input.datatype },
    });
  }
  return input.tensor;
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

function parseJsonHeader(json: Buffer, what: string): unknown {
  if (json.length === 0) throw badRequest(`${what} is empty; expected a JSON object`, { code: 'invalid_json' });
  try {
    return JSON.parse(json.toString('utf8'));
  } catch (e) {
    throw badRequest(`${what} is not valid JSON: ${(e as Error).message}`, { code: 'invalid_json' });
  }
}

// ---------------------------------------------------------------------------
// Request parsing

/**
 * Parse and validate an OIP v2 inference request (JSON, or JSON + binary section).
 * Every problem is a 400 HttpError whose message names the input and the problem.
 */
export function parseInferRequest(body: Buffer, headers: Record<string, string | string[] | undefined>): ParsedInferRequest {
  const { json, binary } = splitBinaryBody(body, headers);
  const raw = parseJsonHeader(json, binary ? 'inference request header' : 'inference request body');
  const parsed = inferRequestSchema.safeParse(raw);
  if (!parsed.success) {
    // Name the input by its name where possible, not just by index.
    const rawInputs = (raw as { inputs?: unknown })?.inputs;
    const msg = parsed.error.issues
      .slice(0, 5)
      .map((issue) => {
        const [head, idx, ...rest] = issue.path;
        let where = zodPath(issue.path);
        if (head === 'inputs' && typeof idx === 'number' && Array.isArray(rawInputs)) {
          const nm = (rawInputs[idx] as { name?: unknown } | undefined)?.name;
          if (typeof nm === 'string') where = `input "${nm}"${rest.length ? ` ${zodPath(rest)}` : ''}`;
        }
        return `${where}: ${issue.message}`;
      })
      .join('; ');
    throw badRequest(`invalid inference request: ${msg}`, { code: 'invalid_request' });
  }
  const req = parsed.data;

  const seen = new Set<string>();
  let offset = 0;
  const inputs: ParsedInferInput[] = [];
  for (const inp of req.inputs) {
    const name = inp.name;
    const what = `input "${name}"`;
    const details = { input: name };
    if (seen.has(name)) throw badRequest(`${what} appears more than once`, { code: 'duplicate_input', details });
    seen.add(name);

    const count = elementCount(inp.shape, what);
    const datatype = inp.datatype.toUpperCase() as OipDatatype;
    if (!(OIP_DATATYPES as readonly string[]).includes(datatype)) {
      throw badRequest(`${what}: unknown datatype ${JSON.stringify(inp.datatype)}; expected one of ${OIP_DATATYPES.join(', ')}`, { code: 'invalid_datatype', details });
    }
    const params = inp.parameters ?? {};
    const hasData = inp.data !== undefined;
    const hasBinary = params.binary_data_size !== undefined;
    if (hasData && hasBinary) {
      throw badRequest(`${what} has both "data" and parameters.binary_data_size; give exactly one`, { code: 'invalid_data', details });
    }
    if (!hasData && !hasBinary) {
      throw badRequest(`${what} has no data: give "data" or parameters.binary_data_size`, { code: 'missing_data', details });
    }

    let data: TensorData;
    if (hasBinary) {
      const size = params.binary_data_size;
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
        throw badRequest(`${what}: parameters.binary_data_size must be a non-negative integer, got ${describeValue(size)}`, { code: 'invalid_data', details });
      }
      if (binary === undefined) {
        throw badRequest(`${what} has parameters.binary_data_size but the request has no ${INFERENCE_HEADER_CONTENT_LENGTH} header`, { code: 'invalid_data', details });
      }
      if (!BINARY_DATATYPES.includes(datatype)) {
        throw badRequest(`${what}: binary data is supported only for ${BINARY_DATATYPES.join(', ')}, got ${datatype}`, { code: 'invalid_datatype', details });
      }
      const need = count * ELEMENT_SIZE[datatype]!;
      if (size !== need) {
        throw badRequest(`${what}: binary_data_size is ${size} bytes but shape ${fmtShape(inp.shape)} of ${datatype} needs ${need}`, { code: 'shape_mismatch', details });
      }
      if (offset + size > binary.length) {
        throw badRequest(`${what}: binary section ends early: needs bytes ${offset}..${offset + size} but has ${binary.length}`, { code: 'invalid_data', details });
      }
      data = readBinary(name, datatype, binary.subarray(offset, offset + size), count);
      offset += size;
    } else {
      if (datatype === 'BYTES' || !CONVERTERS[datatype]) {
        throw badRequest(`${what}: datatype ${datatype} is not supported; use one of ${JSON_NUMERIC_DATATYPES.join(', ')}`, { code: 'invalid_datatype', details });
      }
      data = convertJsonData(name, datatype, inp.shape, count, inp.data);
    }
    inputs.push(parsedInput({ name, shape: inp.shape, datatype, parameters: params, binary: hasBinary }, data));
  }
  if (binary !== undefined && offset !== binary.length) {
    throw badRequest(`binary section has ${binary.length - offset} bytes not claimed by any input (inputs use ${offset} of ${binary.length})`, { code: 'invalid_data' });
  }

  let outputs: RequestedOutput[] | undefined;
  if (req.outputs) {
    const names = new Set<string>();
    outputs = req.outputs.map((o) => {
      if (names.has(o.name)) throw badRequest(`output "${o.name}" is requested more than once`, { code: 'duplicate_output', details: { output: o.name } });
      names.add(o.name);
      return { name: o.name, parameters: o.parameters ?? {}, binaryData: o.parameters?.binary_data, classification: o.parameters?.classification };
    });
  }

  const all = req.parameters?.binary_data_output === true;
  let binaryOutput: boolean | Set<string> = all;
  if (outputs) {
    const set = new Set(outputs.filter((o) => o.binaryData ?? all).map((o) => o.name));
    binaryOutput = set.size ? set : false;
  }
  return { id: req.id, parameters: req.parameters ?? {}, inputs, outputs, binaryOutput };
}

// ---------------------------------------------------------------------------
// Response encoding

export interface Fp32Output {
  name: string;
  shape: number[];
  datatype: 'FP32';
  data: Float32Array;
  parameters?: Record<string, unknown>;
}
export interface BytesOutput {
  name: string;
  shape: number[];
  datatype: 'BYTES';
  data: string[];
  parameters?: Record<string, unknown>;
}
/** A tensor of another model datatype: its runtime array (FP16/BF16 bits, BOOL bytes). */
export interface TypedOutput {
  name: string;
  shape: number[];
  datatype: Exclude<TensorDatatype, 'FP32'>;
  data: TensorData;
  parameters?: Record<string, unknown>;
}
export type ResponseOutput = Fp32Output | BytesOutput | TypedOutput;

/** A model output as a response output with the datatype of its dtype. */
export function tensorOutput(name: string, t: Tensor, parameters?: Record<string, unknown>): Fp32Output | TypedOutput {
  const datatype = oipDatatype(dtypeOf(t));
  return { name, shape: [...t.dims], datatype, data: t.data, ...(parameters ? { parameters } : {}) } as Fp32Output | TypedOutput;
}

export interface InferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, unknown>;
  outputs: ResponseOutput[];
}

export interface EncodedBody {
  /** Buffer<ArrayBuffer> so it can be passed straight to fetch(). */
  body: Buffer<ArrayBuffer>;
  headers: Record<string, string>;
  /** True when the body uses the binary extension. */
  binary: boolean;
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
class RawJson {
  constructor(readonly text: string) {}
}

/** JSON values of numeric tensor data: FP16/BF16 as the numbers their bits are, BOOL as booleans. */
function jsonValues(datatype: Exclude<OipDatatype, 'BYTES'>, data: TensorData): unknown[] | RawJson {
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
function stringifyWithRaw(value: unknown): string {
  const raws: string[] = [];
  const nonce = Math.random().toString(36).slice(2);
  const json = JSON.stringify(value, (_k, v: unknown) => (v instanceof RawJson ? `\u0001${nonce}:${raws.push(v.text) - 1}` : v));
  if (!raws.length) return json;
  return json.replace(new RegExp(`"\\\\u0001${nonce}:(\\d+)"`, 'g'), (_m, i: string) => raws[Number(i)]!);
}

/** Binary bytes of numeric tensor data (little-endian, the machine's order). */
function tensorBytes(data: TensorData): Buffer {
  if (data instanceof Float32Array) return float32LEBytes(data);
  const b = bytesOf(data);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function bytesTensorBinary(data: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const s of data) {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length, 0);
    parts.push(len, b);
  }
  return Buffer.concat(parts);
}

function wantsBinary(binary: boolean | Set<string>, name: string): boolean {
  return binary === true || (binary instanceof Set && binary.has(name));
}

/**
 * Encode an inference response as JSON, or with the binary extension when any
 * output is selected by `opts.binary` (true = all outputs; a Set = those names).
 */
export function encodeInferResponse(res: InferResponse, opts: { binary: boolean | Set<string> } = { binary: false }): EncodedBody {
  const chunks: Buffer[] = [];
  const outputs = res.outputs.map((o) => {
    const count = elementCount(o.shape, `output "${o.name}"`);
    if (o.data.length !== count) {
      throw internal(`output "${o.name}": shape ${fmtShape(o.shape)} needs ${count} elements, but data has ${o.data.length}`);
    }
    if (wantsBinary(opts.binary, o.name)) {
      const bytes = o.datatype === 'BYTES' ? bytesTensorBinary(o.data) : tensorBytes(o.data);
      chunks.push(bytes);
      return { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { ...o.parameters, binary_data_size: bytes.length } };
    }
    return {
      name: o.name,
      datatype: o.datatype,
      shape: o.shape,
      ...(o.parameters ? { parameters: o.parameters } : {}),
      data: o.datatype === 'BYTES' ? o.data : jsonValues(o.datatype, o.data),
    };
  });
  const header = {
    ...(res.id !== undefined ? { id: res.id } : {}),
    model_name: res.model_name,
    ...(res.model_version !== undefined ? { model_version: res.model_version } : {}),
    ...(res.parameters !== undefined ? { parameters: res.parameters } : {}),
    outputs,
  };
  const json = Buffer.from(stringifyWithRaw(header), 'utf8');
  if (chunks.length === 0) return { body: json, headers: { 'content-type': 'application/json' }, binary: false };
  return {
    body: Buffer.concat([json, ...chunks]),
    headers: { 'content-type': 'application/octet-stream', [INFERENCE_HEADER_CONTENT_LENGTH]: String(json.length) },
    binary: true,
  };
}

// ---------------------------------------------------------------------------
// Client side (tests, load generators, the e2e client)

export interface ClientInput {
  name: string;
  shape: number[];
  /** The runtime array of `datatype` (FP16/BF16 as bits, BOOL as bytes of 0 or 1). */
  data: TensorData;
  /** Default: from the array (Float32Array FP32, Uint16Array FP16, Uint8Array UINT8, ...). */
  datatype?: TensorDatatype;
  parameters?: Record<string, unknown>;
}

function datatypeOfData(data: TensorData): TensorDatatype {
  if (data instanceof Float32Array) return 'FP32';
  if (data instanceof Uint16Array) return 'FP16';
  if (data instanceof Int8Array) return 'INT8';
  if (data instanceof Int32Array) return 'INT32';
  if (data instanceof BigInt64Array) return 'INT64';
  return 'UINT8';
}

/**
 * Build an inference request: JSON (flat data), or with `binary: true` the
 * binary extension (inputs' bytes after the JSON header).
 */
export function encodeInferRequest(
  req: { id?: string; parameters?: Record<string, unknown>; inputs: ClientInput[]; outputs?: InferRequestJson['outputs'] },
  opts: { binary?: boolean } = {},
): EncodedBody {
  const chunks: Buffer[] = [];
  const inputs = req.inputs.map((i) => {
    const datatype = i.datatype ?? datatypeOfData(i.data);
    const dtype = OIP_TO_DTYPE[datatype];
    makeTensor(dtype, [i.data.length], i.data); // the array must be the datatype's (the shape is the caller's: tests send wrong ones)
    if (opts.binary) {
      const bytes = tensorBytes(i.data);
      chunks.push(bytes);
      return { name: i.name, shape: i.shape, datatype, parameters: { ...i.parameters, binary_data_size: bytes.length } };
    }
    return { name: i.name, shape: i.shape, datatype, ...(i.parameters ? { parameters: i.parameters } : {}), data: jsonValues(datatype, i.data) };
  });
  const header = {
    ...(req.id !== undefined ? { id: req.id } : {}),
    ...(req.parameters ? { parameters: req.parameters } : {}),
    inputs,
    ...(req.outputs ? { outputs: req.outputs } : {}),
  };
  const json = Buffer.from(stringifyWithRaw(header), 'utf8');
  if (!opts.binary) return { body: json, headers: { 'content-type': 'application/json' }, binary: false };
  return {
    body: Buffer.concat([json, ...chunks]),
    headers: { 'content-type': 'application/octet-stream', [INFERENCE_HEADER_CONTENT_LENGTH]: String(json.length) },
    binary: true,
  };
}

export interface DecodedInferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, unknown>;
  /** `data`: numeric outputs as float32 (BYTES as strings); `tensor`: in their own dtype, for model datatypes. */
  outputs: { name: string; shape: number[]; datatype: string; parameters?: Record<string, unknown>; data: Float32Array | string[]; tensor?: Tensor }[];
}

const responseSchema = z.looseObject({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: parametersSchema.optional(),
  outputs: z.array(
    z.looseObject({
      name: z.string(),
      shape: z.array(z.number().int().nonnegative()),
      datatype: z.string(),
      parameters: parametersSchema.optional(),
      data: z.array(z.unknown()).optional(),
    }),
  ),
});

/** Decode a JSON or binary-extension inference response (numeric and BYTES outputs). */
export function decodeInferResponse(body: Buffer, headers: Record<string, string | string[] | undefined>): DecodedInferResponse {
  const { json, binary } = splitBinaryBody(body, headers);
  const res = responseSchema.parse(parseJsonHeader(json, 'inference response'));
  let offset = 0;
  const outputs = res.outputs.map((o) => {
    const size = o.parameters?.binary_data_size;
    let data: Float32Array | string[];
    let tensor: Tensor | undefined;
    const dtype = runtimeDtype(o.datatype as OipDatatype);
    const count = o.shape.reduce((a, b) => a * b, 1);
    if (typeof size === 'number') {
      if (!binary || offset + size > binary.length) throw new Error(`output "${o.name}": binary section too short`);
      const bytes = binary.subarray(offset, offset + size);
      offset += size;
      const elem = ELEMENT_SIZE[o.datatype as OipDatatype];
      if (o.datatype !== 'BYTES' && elem !== undefined) {
        if (size !== count * elem) throw new Error(`output "${o.name}": ${size} bytes for ${count} ${o.datatype} elements`);
        const values = readBinary(o.name, o.datatype as OipDatatype, bytes, count);
        if (dtype) tensor = makeTensor(dtype, [...o.shape], values);
        data = tensor ? toFloat32(tensor) : (values as Float32Array);
      } else if (o.datatype === 'BYTES') {
        const strs: string[] = [];
        for (let p = 0; p < bytes.length; ) {
          const n = bytes.readUInt32LE(p);
          strs.push(bytes.subarray(p + 4, p + 4 + n).toString('utf8'));
          p += 4 + n;
        }
        data = strs;
      } else throw new Error(`output "${o.name}": cannot decode binary ${o.datatype}`);
    } else if (o.datatype === 'BYTES') {
      data = (o.data ?? []).map(String);
    } else {
      const flat = (o.data ?? []).flat(Infinity as 1) as (number | boolean | null)[];
      data = Float32Array.from(flat as number[]);
      if (dtype && dtype !== 'float32') {
        const sink = jsonSink(o.datatype as OipDatatype, flat.length);
        flat.forEach((v, i) => sink.set(i, typeof v === 'boolean' ? (v ? 1 : 0) : v === null ? NaN : v));
        tensor = makeTensor(dtype, [...o.shape], sink.data);
      } else if (dtype) tensor = makeTensor(dtype, [...o.shape], data);
    }
    return { name: o.name, shape: o.shape, datatype: o.datatype, ...(o.parameters ? { parameters: o.parameters } : {}), data, ...(tensor ? { tensor } : {}) };
  });
  return { ...res, outputs } as DecodedInferResponse;
}

// ---------------------------------------------------------------------------
// Metadata


export interface ModelMetadata {
  name: string;
  versions?: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export function modelMetadata(m: { name: string; versions?: string[]; platform?: string; inputs: TensorMetadata[]; outputs: TensorMetadata[] }): ModelMetadata {
  const copy = (t: TensorMetadata): TensorMetadata => ({ name: t.name, datatype: t.datatype, shape: t.shape.map((d) => (d < 0 ? -1 : d)) });
  return {
    name: m.name,
    ...(m.versions ? { versions: [...m.versions] } : {}),
    platform: m.platform ?? 'onnxruntime_onnx',
    inputs: m.inputs.map(copy),
    outputs: m.outputs.map(copy),
  };
}

// ---------------------------------------------------------------------------
// Classification

export interface TopKEntry {
  index: number;
  /** labels[index] when labels were given. */
  label?: string;
  /** Softmax probability over all logits. */
  score: number;
  logit: number;
}

/** Indices of the k largest values, descending (ties: lower index first). */
function topIndices(values: Float32Array, k: number): number[] {
  const n = values.length;
  const kk = Math.max(0, Math.min(Math.floor(k), n));
  if (kk === 0) return [];
  // Partial selection: keep a sorted list of the best kk (k is small; n ~ 1000).
  const best: number[] = [];
  const better = (a: number, b: number) => {
    const va = values[a]!, vb = values[b]!;
    // NaN ranks lowest.
    if (Number.isNaN(va)) return false;
    if (Number.isNaN(vb)) return true;
    return va > vb || (va === vb && a < b);
  };
  for (let i = 0; i < n; i++) {
    if (best.length === kk && !better(i, best[kk - 1]!)) continue;
    let j = best.length < kk ? best.length : kk - 1;
    if (best.length < kk) best.push(i);
    while (j > 0 && better(i, best[j - 1]!)) {
      best[j] = best[j - 1]!;
      j--;
    }
    best[j] = i;
  }
  return best;
}

/** Top-k classes of a logit vector, with softmax probabilities. */
export function topK(logits: Float32Array, k: number, labels?: readonly string[]): TopKEntry[] {
  const idx = topIndices(logits, k);
  if (idx.length === 0) return [];
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return idx.map((i) => {
    const e: TopKEntry = { index: i, score: Math.exp(logits[i]! - max) / sum, logit: logits[i]! };
    if (labels && labels[i] !== undefined) e.label = labels[i];
    return e;
  });
}

/**
 * Triton classification extension: replace an output by a BYTES tensor of
 * "<value>:<index>[:<label>]" strings for the top `count` raw values. For rank
 * ≥ 2 the first dimension is the batch ([batch, count]); rank ≤ 1 gives [count].
 */
export function classificationOutput(name: string, shape: readonly number[], data: Float32Array, count: number, labels?: readonly string[]): BytesOutput {
  const batched = shape.length >= 2;
  const batch = batched ? shape[0]! : 1;
  const classes = batch === 0 ? 0 : data.length / batch;
  const k = Math.min(count, classes);
  const out: string[] = [];
  for (let b = 0; b < batch; b++) {
    const row = data.subarray(b * classes, (b + 1) * classes);
    for (const i of topIndices(row, k)) {
      const label = labels?.[i];
      out.push(`${row[i]!.toFixed(6)}:${i}${label !== undefined ? `:${label}` : ''}`);
    }
  }
  return { name, datatype: 'BYTES', shape: batched ? [batch, k] : [k], data: out };
}
