/**
 * OIP v2 inference request parsing (JSON, or JSON + the binary section): every problem is a 400
 * naming the input and what was wrong.
 */
import { badRequest } from './errors.ts';
import { zodPath } from '../zod-issues.ts';
import {
  bfloat16ToFloat, floatToBfloat16, floatToHalf, halfToFloat, makeTensor, toFloat32,
  type DType, type Tensor, type TensorData,
} from '../tensor/dtype.ts';
import { OIP_DATATYPES, oipDatatype, type OipDatatype } from '../serve/model-entry.ts';
import {
  BINARY_DATATYPES, ELEMENT_SIZE, INFERENCE_HEADER_CONTENT_LENGTH, JSON_NUMERIC_DATATYPES,
  elementCount, fmtShape, inferRequestSchema, runtimeDtype,
  type ParsedInferInput, type ParsedInferRequest, type RequestedOutput,
} from './oip.ts';
import { jsonSink, parseJsonHeader, readBinary, splitBinaryBody } from './oip-wire.ts';

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
