/**
 * KServe / Triton Open Inference Protocol v2 (REST): the datatypes, request schemas and the
 * request/response types shared by the parser (oip-request.ts), the encoder (oip-response.ts),
 * the client (oip-client.ts) and the classification extension (oip-classification.ts); model
 * metadata.
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
import { badRequest } from './errors.ts';
import type { DType, Tensor, TensorData } from '../tensor/dtype.ts';
import { OIP_TO_DTYPE, type OipDatatype, type TensorDatatype, type TensorMetadata } from '../serve/model-entry.ts';

export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';


/** Datatypes accepted as JSON tensor data. */
export const JSON_NUMERIC_DATATYPES: readonly OipDatatype[] = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'BF16', 'FP32', 'FP64',
];
/** Bytes per element in the binary extension ("the native size of the data type"; BOOL is one byte). */
export const ELEMENT_SIZE: Partial<Record<OipDatatype, number>> = {
  BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, BF16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8,
};
/** Datatypes accepted as binary tensor data. */
export const BINARY_DATATYPES: readonly OipDatatype[] = JSON_NUMERIC_DATATYPES;

/** The runtime dtype of an OIP datatype; undefined for those no model tensor has. */
export const runtimeDtype = (d: OipDatatype): DType | undefined => (OIP_TO_DTYPE as Partial<Record<OipDatatype, DType>>)[d];

/** Upper bound on the element count of one tensor (Float32Array allocation guard). */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;

// ---------------------------------------------------------------------------
// Schemas

export const parametersSchema = z.record(z.string(), z.unknown());

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

export function fmtShape(shape: readonly number[]): string {
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

// ---------------------------------------------------------------------------
// Responses

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
