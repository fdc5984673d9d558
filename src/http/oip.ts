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
 * All numeric tensor data is converted to Float32Array (the models are FP32).
 */
import { z } from 'zod';
import { badRequest, internal } from './errors.ts';
import { zodPath } from './fc-event.ts';

export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

export const OIP_DATATYPES = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES',
] as const;
export type OipDatatype = (typeof OIP_DATATYPES)[number];

/** Datatypes accepted as JSON tensor data (converted to float32). */
export const JSON_NUMERIC_DATATYPES: readonly OipDatatype[] = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64',
];
/** Datatypes accepted as binary tensor data. */
export const BINARY_DATATYPES: readonly OipDatatype[] = ['FP32'];

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
  /** Datatype as sent; data has been converted to float32 regardless. */
  datatype: OipDatatype;
  parameters: Record<string, unknown>;
  data: Float32Array;
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

function floatConverter(max: number): Converter {
  return (v) => (typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= max ? v : undefined);
}

const CONVERTERS: Partial<Record<OipDatatype, Converter>> = {
  BOOL: (v) => (typeof v === 'boolean' ? (v ? 1 : 0) : undefined),
  UINT8: intConverter(0, 255),
  UINT16: intConverter(0, 65535),
  UINT32: intConverter(0, 2 ** 32 - 1),
  UINT64: intConverter(0, 2 ** 64),
  INT8: intConverter(-128, 127),
  INT16: intConverter(-32768, 32767),
  INT32: intConverter(-(2 ** 31), 2 ** 31 - 1),
  INT64: intConverter(-(2 ** 63), 2 ** 63),
  FP16: floatConverter(FP16_MAX),
  FP32: floatConverter(FP32_MAX),
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
function convertJsonData(name: string, datatype: OipDatatype, shape: readonly number[], count: number, data: unknown): Float32Array {
  const what = `input "${name}"`;
  if (!Array.isArray(data)) throw badRequest(`${what}: data must be an array, got ${describeValue(data)}`, { code: 'invalid_data', details: { input: name } });
  const conv = CONVERTERS[datatype]!;
  const out = new Float32Array(count);
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
      out[i] = x;
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
      out[pos++] = x;
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

function readFloat32LE(bytes: Buffer): Float32Array {
  const out = new Float32Array(bytes.length / 4);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes);
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true);
  }
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

    let data: Float32Array;
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
      if (size !== count * 4) {
        throw badRequest(`${what}: binary_data_size is ${size} bytes but shape ${fmtShape(inp.shape)} of FP32 needs ${count * 4}`, { code: 'shape_mismatch', details });
      }
      if (offset + size > binary.length) {
        throw badRequest(`${what}: binary section ends early: needs bytes ${offset}..${offset + size} but has ${binary.length}`, { code: 'invalid_data', details });
      }
      data = readFloat32LE(binary.subarray(offset, offset + size));
      offset += size;
    } else {
      if (datatype === 'BYTES' || !CONVERTERS[datatype]) {
        throw badRequest(`${what}: datatype ${datatype} is not supported; use one of ${JSON_NUMERIC_DATATYPES.join(', ')}`, { code: 'invalid_datatype', details });
      }
      data = convertJsonData(name, datatype, inp.shape, count, inp.data);
    }
    inputs.push({ name, shape: inp.shape, datatype, parameters: params, data, binary: hasBinary });
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
export type ResponseOutput = Fp32Output | BytesOutput;

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
      const bytes = o.datatype === 'FP32' ? float32LEBytes(o.data) : bytesTensorBinary(o.data);
      chunks.push(bytes);
      return { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { ...o.parameters, binary_data_size: bytes.length } };
    }
    return {
      name: o.name,
      datatype: o.datatype,
      shape: o.shape,
      ...(o.parameters ? { parameters: o.parameters } : {}),
      data: o.datatype === 'FP32' ? fp32ToJson(o.data) : o.data,
    };
  });
  const header = {
    ...(res.id !== undefined ? { id: res.id } : {}),
    model_name: res.model_name,
    ...(res.model_version !== undefined ? { model_version: res.model_version } : {}),
    ...(res.parameters !== undefined ? { parameters: res.parameters } : {}),
    outputs,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
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
  data: Float32Array;
  parameters?: Record<string, unknown>;
}

/**
 * Build an FP32 inference request: JSON (flat data), or with `binary: true` the
 * binary extension (inputs' bytes after the JSON header).
 */
export function encodeInferRequest(
  req: { id?: string; parameters?: Record<string, unknown>; inputs: ClientInput[]; outputs?: InferRequestJson['outputs'] },
  opts: { binary?: boolean } = {},
): EncodedBody {
  const chunks: Buffer[] = [];
  const inputs = req.inputs.map((i) => {
    if (opts.binary) {
      const bytes = float32LEBytes(i.data);
      chunks.push(bytes);
      return { name: i.name, shape: i.shape, datatype: 'FP32', parameters: { ...i.parameters, binary_data_size: bytes.length } };
    }
    return { name: i.name, shape: i.shape, datatype: 'FP32', ...(i.parameters ? { parameters: i.parameters } : {}), data: fp32ToJson(i.data) };
  });
  const header = {
    ...(req.id !== undefined ? { id: req.id } : {}),
    ...(req.parameters ? { parameters: req.parameters } : {}),
    inputs,
    ...(req.outputs ? { outputs: req.outputs } : {}),
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
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
  outputs: { name: string; shape: number[]; datatype: string; parameters?: Record<string, unknown>; data: Float32Array | string[] }[];
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

/** Decode a JSON or binary-extension inference response (FP32 and BYTES outputs). */
export function decodeInferResponse(body: Buffer, headers: Record<string, string | string[] | undefined>): DecodedInferResponse {
  const { json, binary } = splitBinaryBody(body, headers);
  const res = responseSchema.parse(parseJsonHeader(json, 'inference response'));
  let offset = 0;
  const outputs = res.outputs.map((o) => {
    const size = o.parameters?.binary_data_size;
    let data: Float32Array | string[];
    if (typeof size === 'number') {
      if (!binary || offset + size > binary.length) throw new Error(`output "${o.name}": binary section too short`);
      const bytes = binary.subarray(offset, offset + size);
      offset += size;
      if (o.datatype === 'FP32') data = readFloat32LE(bytes);
      else if (o.datatype === 'BYTES') {
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
      data = Float32Array.from((o.data ?? []).flat(Infinity as 1) as number[]);
    }
    return { name: o.name, shape: o.shape, datatype: o.datatype, ...(o.parameters ? { parameters: o.parameters } : {}), data };
  });
  return { ...res, outputs } as DecodedInferResponse;
}

// ---------------------------------------------------------------------------
// Metadata

export interface TensorMetadata {
  name: string;
  datatype: string;
  /** -1 for dynamic dimensions. */
  shape: number[];
}

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
