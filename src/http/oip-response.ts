/** OIP v2 inference response encoding: JSON, or the binary extension for the outputs asked for. */
import { internal } from './errors.ts';
import { dtypeOf, type Tensor } from '../tensor/dtype.ts';
import { oipDatatype } from '../serve/model-entry.ts';
import {
  INFERENCE_HEADER_CONTENT_LENGTH, elementCount, fmtShape,
  type EncodedBody, type Fp32Output, type InferResponse, type TypedOutput,
} from './oip.ts';
import { jsonValues, stringifyWithRaw, tensorBytes } from './oip-wire.ts';

/** A model output as a response output with the datatype of its dtype. */
export function tensorOutput(name: string, t: Tensor, parameters?: Record<string, unknown>): Fp32Output | TypedOutput {
  const datatype = oipDatatype(dtypeOf(t));
  return { name, shape: [...t.dims], datatype, data: t.data, ...(parameters ? { parameters } : {}) } as Fp32Output | TypedOutput;
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
