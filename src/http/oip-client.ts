/**
 * The client side of OIP v2 (tests, load generators, the e2e client): encoding inference
 * requests and decoding responses, JSON or binary extension.
 */
import { z } from 'zod';
import { makeTensor, toFloat32, type Tensor, type TensorData } from '../tensor/dtype.ts';
import { OIP_TO_DTYPE, type OipDatatype, type TensorDatatype } from '../serve/model-entry.ts';
import {
  ELEMENT_SIZE, INFERENCE_HEADER_CONTENT_LENGTH, parametersSchema, runtimeDtype,
  type EncodedBody, type InferRequestJson,
} from './oip.ts';
import { jsonSink, jsonValues, parseJsonHeader, readBinary, splitBinaryBody, stringifyWithRaw, tensorBytes } from './oip-wire.ts';

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
