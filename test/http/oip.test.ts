import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HttpError } from '../../src/http/errors.ts';
import { INFERENCE_HEADER_CONTENT_LENGTH, modelMetadata } from '../../src/http/oip.ts';
import { inputTensor, parseInferRequest } from '../../src/http/oip-request.ts';
import { encodeInferResponse, tensorOutput } from '../../src/http/oip-response.ts';
import { decodeInferResponse, encodeInferRequest } from '../../src/http/oip-client.ts';
import { classificationOutput, topK } from '../../src/http/oip-classification.ts';
import { OIP_TO_DTYPE, type TensorDatatype } from '../../src/serve/model-entry.ts';
import { bfloat16ToFloat, dtypeOf, floatToBfloat16, floatToHalf, halfToFloat, makeTensor, type TensorData } from '../../src/tensor/dtype.ts';

const json = (obj: unknown) => Buffer.from(JSON.stringify(obj));
const f32 = (xs: number[]) => Float32Array.from(xs);

/** Build a binary-extension body: JSON header + raw bytes. */
function binaryBody(header: unknown, ...parts: Buffer[]): { body: Buffer; headers: Record<string, string> } {
  const h = json(header);
  return { body: Buffer.concat([h, ...parts]), headers: { [INFERENCE_HEADER_CONTENT_LENGTH]: String(h.length) } };
}
const fp32Bytes = (xs: number[]) => Buffer.from(f32(xs).buffer);

/** Assert a 400 HttpError whose message matches every pattern. */
function assert400(fn: () => unknown, ...patterns: RegExp[]) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HttpError, `expected HttpError, got ${String(e)}`);
    assert.equal(e.status, 400, e.message);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

describe('parseInferRequest: JSON tensors', () => {
  it('parses flat data', () => {
    const r = parseInferRequest(json({ id: 'r1', inputs: [{ name: 'x', shape: [2, 3], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6.5] }] }), {});
    assert.equal(r.id, 'r1');
    assert.equal(r.inputs.length, 1);
    assert.deepEqual(r.inputs[0]!.shape, [2, 3]);
    assert.deepEqual([...r.inputs[0]!.data], [1, 2, 3, 4, 5, 6.5]);
    assert.equal(r.inputs[0]!.binary, false);
    assert.equal(r.binaryOutput, false);
    assert.equal(r.outputs, undefined);
  });

  it('parses nested data matching the shape, same result as flat', () => {
    const nested = parseInferRequest(json({ inputs: [{ name: 'x', shape: [2, 2, 2], datatype: 'FP32', data: [[[1, 2], [3, 4]], [[5, 6], [7, 8]]] }] }), {});
    const flat = parseInferRequest(json({ inputs: [{ name: 'x', shape: [2, 2, 2], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }] }), {});
    assert.deepEqual([...nested.inputs[0]!.data], [...flat.inputs[0]!.data]);
  });

  it('converts FP64, INT*, UINT8, BOOL to float32', () => {
    const r = parseInferRequest(
      json({
        inputs: [
          { name: 'a', shape: [2], datatype: 'FP64', data: [0.1, -2.5] },
          { name: 'b', shape: [3], datatype: 'INT32', data: [-7, 0, 2147483647] },
          { name: 'c', shape: [2], datatype: 'UINT8', data: [0, 255] },
          { name: 'd', shape: [1], datatype: 'INT64', data: [-9] },
          { name: 'e', shape: [2], datatype: 'BOOL', data: [true, false] },
          { name: 'f', shape: [1], datatype: 'INT8', data: [-128] },
        ],
      }),
      {},
    );
    assert.deepEqual([...r.inputs[0]!.data], [Math.fround(0.1), -2.5]);
    assert.deepEqual([...r.inputs[1]!.data], [-7, 0, Math.fround(2147483647)]);
    assert.deepEqual([...r.inputs[2]!.data], [0, 255]);
    assert.deepEqual([...r.inputs[3]!.data], [-9]);
    assert.deepEqual([...r.inputs[4]!.data], [1, 0]);
    assert.deepEqual([...r.inputs[5]!.data], [-128]);
    assert.equal(r.inputs[2]!.datatype, 'UINT8');
  });

  it('accepts zero-element and scalar shapes', () => {
    const r = parseInferRequest(json({ inputs: [{ name: 'z', shape: [0, 3], datatype: 'FP32', data: [] }, { name: 's', shape: [], datatype: 'FP32', data: [4] }] }), {});
    assert.equal(r.inputs[0]!.data.length, 0);
    assert.deepEqual([...r.inputs[1]!.data], [4]);
  });

  it('computes binary output selection', () => {
    const base = { inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] };
    assert.equal(parseInferRequest(json({ ...base, parameters: { binary_data_output: true } }), {}).binaryOutput, true);
    const sel = parseInferRequest(json({ ...base, outputs: [{ name: 'a', parameters: { binary_data: true } }, { name: 'b' }] }), {}).binaryOutput;
    assert.deepEqual(sel, new Set(['a']));
    const allBut = parseInferRequest(
      json({ ...base, parameters: { binary_data_output: true }, outputs: [{ name: 'a' }, { name: 'b', parameters: { binary_data: false } }] }),
      {},
    ).binaryOutput;
    assert.deepEqual(allBut, new Set(['a']));
    const none = parseInferRequest(json({ ...base, outputs: [{ name: 'a', parameters: { binary_data: false, classification: 3 } }] }), {});
    assert.equal(none.binaryOutput, false);
    assert.equal(none.outputs![0]!.classification, 3);
  });
});

describe('parseInferRequest: binary extension', () => {
  it('takes input bytes in order from the binary section', () => {
    const { body, headers } = binaryBody(
      {
        inputs: [
          { name: 'a', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
          { name: 'j', shape: [1], datatype: 'INT32', data: [7] },
          { name: 'b', shape: [1, 3], datatype: 'FP32', parameters: { binary_data_size: 12 } },
        ],
      },
      fp32Bytes([1.5, -2]),
      fp32Bytes([3, 4, 5]),
    );
    const r = parseInferRequest(body, headers);
    assert.deepEqual([...r.inputs[0]!.data], [1.5, -2]);
    assert.deepEqual([...r.inputs[1]!.data], [7]);
    assert.deepEqual([...r.inputs[2]!.data], [3, 4, 5]);
    assert.equal(r.inputs[0]!.binary, true);
  });

  it('is case-insensitive about the header name and handles unaligned data', () => {
    // Header of odd length so the binary section starts at an unaligned offset.
    const header = json({ inputs: [{ name: 'a', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } }], id: 'x' });
    const hdr = header.length % 4 === 0 ? Buffer.concat([header, Buffer.from(' ')]) : header;
    const body = Buffer.concat([hdr, fp32Bytes([0.25, 8])]);
    const r = parseInferRequest(body, { 'Inference-Header-Content-Length': String(hdr.length) });
    assert.deepEqual([...r.inputs[0]!.data], [0.25, 8]);
  });

  it('roundtrips with encodeInferRequest (JSON and binary)', () => {
    const data = f32([0.1, 0.2, Math.PI, -1e-8, 3.4e38, 0]);
    for (const binary of [false, true]) {
      const enc = encodeInferRequest({ id: 'q', inputs: [{ name: 'in', shape: [2, 3], data }] }, { binary });
      assert.equal(enc.binary, binary);
      const r = parseInferRequest(enc.body, enc.headers);
      assert.equal(r.id, 'q');
      assert.deepEqual([...r.inputs[0]!.data], [...data], `binary=${binary}`);
    }
  });
});

describe('parseInferRequest: 400 cases', () => {
  const one = (input: Record<string, unknown>, extra: Record<string, unknown> = {}) => json({ inputs: [{ name: 'x', shape: [2], datatype: 'FP32', ...input }], ...extra });

  it('rejects malformed JSON and non-objects', () => {
    assert400(() => parseInferRequest(Buffer.from('{"inputs": ['), {}), /not valid JSON/);
    assert400(() => parseInferRequest(Buffer.alloc(0), {}), /empty/);
    assert400(() => parseInferRequest(json([1, 2]), {}), /invalid inference request/);
  });

  it('rejects missing/empty inputs and schema violations, naming the input', () => {
    assert400(() => parseInferRequest(json({}), {}), /inputs/);
    assert400(() => parseInferRequest(json({ inputs: [] }), {}), /inputs/);
    assert400(() => parseInferRequest(json({ inputs: [{ name: 'img', shape: [1.5], datatype: 'FP32', data: [1] }] }), {}), /input "img" shape\[0\]/);
    assert400(() => parseInferRequest(json({ inputs: [{ name: 'img', shape: [1], data: [1] }] }), {}), /input "img" datatype/);
    assert400(() => parseInferRequest(json({ inputs: [{ shape: [1], datatype: 'FP32', data: [1] }] }), {}), /inputs\[0\]\.name/);
    assert400(() => parseInferRequest(json({ id: 5, inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] }), {}), /id/);
    assert400(() => parseInferRequest(one({ data: [1, 2] }, { parameters: { binary_data_output: 'yes' } }), {}), /binary_data_output/);
    assert400(() => parseInferRequest(one({ data: [1, 2] }, { outputs: [{ name: 'o', parameters: { classification: 0 } }] }), {}), /classification/);
  });

  it('rejects negative dims', () => {
    assert400(() => parseInferRequest(one({ shape: [-1, 2], data: [1, 2] }), {}), /input "x"/, /negative dimension -1/);
  });

  it('rejects element count != product(shape)', () => {
    assert400(() => parseInferRequest(one({ shape: [2, 2], data: [1, 2, 3] }), {}), /input "x"/, /needs 4 elements, but data has 3/);
  });

  it('rejects nested data not matching the shape', () => {
    assert400(() => parseInferRequest(one({ shape: [2, 2], data: [[1, 2], [3]] }), {}), /input "x"/, /data\[1\] has 1 elements, expected 2/);
    assert400(() => parseInferRequest(one({ shape: [2, 2], data: [[1, 2], 3] }), {}), /input "x"/, /data\[1\] is 3, expected an array/);
    assert400(() => parseInferRequest(one({ shape: [2], data: [[1], [2]] }), {}), /input "x"/, /deeper than shape/);
    assert400(() => parseInferRequest(one({ shape: [2], data: [1, [2]] }), {}), /input "x"/, /element 1 is an array/);
  });

  it('rejects wrong element types and out-of-range values', () => {
    assert400(() => parseInferRequest(one({ data: [1, 'a'] }), {}), /input "x"/, /element 1 is "a", not a valid FP32/);
    assert400(() => parseInferRequest(one({ data: [1, null] }), {}), /element 1 is null/);
    assert400(() => parseInferRequest(one({ datatype: 'UINT8', data: [1, 256] }), {}), /not a valid UINT8/);
    assert400(() => parseInferRequest(one({ datatype: 'INT32', data: [1.5, 2] }), {}), /element 0 is 1.5, not a valid INT32/);
    assert400(() => parseInferRequest(one({ datatype: 'FP32', data: [1e39, 2] }), {}), /not a valid FP32/);
    assert400(() => parseInferRequest(one({ datatype: 'BOOL', data: [1, 0] }), {}), /not a valid BOOL/);
    assert400(() => parseInferRequest(one({ data: 'abc' }), {}), /input "x": data must be an array/);
  });

  it('rejects unknown and unsupported datatypes', () => {
    assert400(() => parseInferRequest(one({ datatype: 'FLOAT', data: [1, 2] }), {}), /input "x"/, /unknown datatype "FLOAT"/);
    assert400(() => parseInferRequest(one({ datatype: 'BYTES', data: ['a', 'b'] }), {}), /input "x"/, /BYTES is not supported/);
  });

  it('rejects data missing, or given twice', () => {
    assert400(() => parseInferRequest(one({}), {}), /input "x" has no data/);
    const { body, headers } = binaryBody({ inputs: [{ name: 'x', shape: [2], datatype: 'FP32', data: [1, 2], parameters: { binary_data_size: 8 } }] }, fp32Bytes([1, 2]));
    assert400(() => parseInferRequest(body, headers), /input "x" has both "data" and parameters.binary_data_size/);
  });

  it('rejects duplicate inputs and outputs', () => {
    const inp = { name: 'x', shape: [1], datatype: 'FP32', data: [1] };
    assert400(() => parseInferRequest(json({ inputs: [inp, inp] }), {}), /input "x" appears more than once/);
    assert400(() => parseInferRequest(json({ inputs: [inp], outputs: [{ name: 'o' }, { name: 'o' }] }), {}), /output "o" is requested more than once/);
  });

  it('rejects binary-extension problems', () => {
    const hdr = { inputs: [{ name: 'x', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } }] };
    // no inference-header-content-length
    assert400(() => parseInferRequest(json(hdr), {}), /input "x" has parameters.binary_data_size but the request has no inference-header-content-length/);
    // bad header values
    assert400(() => parseInferRequest(json(hdr), { [INFERENCE_HEADER_CONTENT_LENGTH]: 'abc' }), /must be a non-negative integer/);
    assert400(() => parseInferRequest(json(hdr), { [INFERENCE_HEADER_CONTENT_LENGTH]: '-3' }), /must be a non-negative integer/);
    assert400(() => parseInferRequest(json(hdr), { [INFERENCE_HEADER_CONTENT_LENGTH]: '99999' }), /but the body has only/);
    // size does not match shape
    let b = binaryBody({ inputs: [{ name: 'x', shape: [3], datatype: 'FP32', parameters: { binary_data_size: 8 } }] }, fp32Bytes([1, 2]));
    assert400(() => parseInferRequest(b.body, b.headers), /input "x"/, /binary_data_size is 8 bytes but shape \[3\] of FP32 needs 12/);
    // binary section too short
    b = binaryBody(hdr, fp32Bytes([1]));
    assert400(() => parseInferRequest(b.body, b.headers), /input "x"/, /binary section ends early/);
    // trailing unclaimed bytes
    b = binaryBody(hdr, fp32Bytes([1, 2, 3]));
    assert400(() => parseInferRequest(b.body, b.headers), /4 bytes not claimed/);
    // BYTES inputs are not numeric tensors
    b = binaryBody({ inputs: [{ name: 'x', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 8 } }] }, fp32Bytes([1, 2]));
    assert400(() => parseInferRequest(b.body, b.headers), /input "x"/, /binary data is supported only for .*FP32.*, got BYTES/);
    // invalid size value
    b = binaryBody({ inputs: [{ name: 'x', shape: [2], datatype: 'FP32', parameters: { binary_data_size: -8 } }] }, fp32Bytes([1, 2]));
    assert400(() => parseInferRequest(b.body, b.headers), /input "x"/, /binary_data_size must be a non-negative integer/);
    // JSON header cut in the middle
    const full = json(hdr);
    assert400(() => parseInferRequest(Buffer.concat([full, fp32Bytes([1, 2])]), { [INFERENCE_HEADER_CONTENT_LENGTH]: String(full.length - 3) }), /not valid JSON/);
  });
});

describe('encodeInferResponse', () => {
  const out = { name: 'prob', shape: [1, 4], datatype: 'FP32' as const, data: f32([0.1, 0.2, 0.3, 0.4]) };

  it('encodes JSON with float32-exact numbers and echoes id/parameters', () => {
    const enc = encodeInferResponse({ model_name: 'm', model_version: '1', id: 'abc', parameters: { cost: { ms: 3 } }, outputs: [out] });
    assert.equal(enc.binary, false);
    assert.equal(enc.headers['content-type'], 'application/json');
    const body = JSON.parse(enc.body.toString());
    assert.equal(body.id, 'abc');
    assert.equal(body.model_name, 'm');
    assert.equal(body.model_version, '1');
    assert.deepEqual(body.parameters, { cost: { ms: 3 } });
    assert.deepEqual(body.outputs[0].shape, [1, 4]);
    assert.deepEqual(Float32Array.from(body.outputs[0].data), out.data);
    assert.ok(enc.body.toString().includes('0.100000001'), 'short float32 representation');
  });

  it('encodes the binary extension when asked (all, or by name)', () => {
    for (const binary of [true, new Set(['prob'])]) {
      const enc = encodeInferResponse({ model_name: 'm', outputs: [out] }, { binary });
      assert.equal(enc.binary, true);
      assert.equal(enc.headers['content-type'], 'application/octet-stream');
      const n = Number(enc.headers[INFERENCE_HEADER_CONTENT_LENGTH]);
      const header = JSON.parse(enc.body.subarray(0, n).toString());
      assert.equal(header.outputs[0].parameters.binary_data_size, 16);
      assert.equal(header.outputs[0].data, undefined);
      assert.equal(enc.body.length, n + 16);
      assert.deepEqual(new Float32Array(new Uint8Array(enc.body.subarray(n)).buffer), out.data);
      const dec = decodeInferResponse(enc.body, enc.headers);
      assert.deepEqual(dec.outputs[0]!.data, out.data);
    }
  });

  it('mixes binary and JSON outputs; a Set naming no output gives plain JSON', () => {
    const other = { name: 'logits', shape: [2], datatype: 'FP32' as const, data: f32([5, -5]) };
    const enc = encodeInferResponse({ model_name: 'm', outputs: [out, other] }, { binary: new Set(['logits']) });
    const dec = decodeInferResponse(enc.body, enc.headers);
    assert.deepEqual(dec.outputs[0]!.data, out.data);
    assert.deepEqual(dec.outputs[1]!.data, other.data);
    assert.equal(encodeInferResponse({ model_name: 'm', outputs: [out] }, { binary: new Set(['nope']) }).binary, false);
  });

  it('encodes BYTES outputs in JSON and binary', () => {
    const cls = classificationOutput('prob', [1, 4], out.data, 2, ['a', 'b', 'c', 'd']);
    assert.deepEqual(cls.shape, [1, 2]);
    assert.deepEqual(cls.data, ['0.400000:3:d', '0.300000:2:c']);
    for (const binary of [false, true]) {
      const enc = encodeInferResponse({ model_name: 'm', outputs: [cls] }, { binary });
      assert.deepEqual(decodeInferResponse(enc.body, enc.headers).outputs[0]!.data, cls.data);
    }
  });

  it('refuses outputs whose data does not match the shape', () => {
    assert.throws(() => encodeInferResponse({ model_name: 'm', outputs: [{ ...out, shape: [1, 5] }] }), /needs 5 elements/);
  });
});

describe('modelMetadata', () => {
  it('builds OIP model metadata with -1 for dynamic dims', () => {
    const md = modelMetadata({
      name: 'resnet18',
      versions: ['1'],
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 224, 224] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 1000] }],
    });
    assert.deepEqual(md, {
      name: 'resnet18',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 224, 224] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 1000] }],
    });
  });
});

describe('topK', () => {
  it('returns the k largest with softmax scores, labels and logits', () => {
    const logits = f32([1, 3, 2, 3, -1]);
    const r = topK(logits, 3, ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(r.map((e) => e.index), [1, 3, 2]); // tie: lower index first
    assert.deepEqual(r.map((e) => e.label), ['b', 'd', 'c']);
    const z = [1, 3, 2, 3, -1].reduce((s, v) => s + Math.exp(v), 0);
    assert.ok(Math.abs(r[0]!.score - Math.exp(3) / z) < 1e-12);
    assert.ok(Math.abs(r[2]!.score - Math.exp(2) / z) < 1e-12);
    assert.equal(r[0]!.logit, 3);
  });

  it('clamps k, omits labels when absent, and is stable for large logits', () => {
    const r = topK(f32([1000, 999]), 10);
    assert.equal(r.length, 2);
    assert.equal(r[0]!.label, undefined);
    assert.ok(Number.isFinite(r[0]!.score) && Math.abs(r[0]!.score + r[1]!.score - 1) < 1e-12);
    assert.deepEqual(topK(f32([1, 2]), 0), []);
  });
});

// ---------------------------------------------------------------------------
// Every model datatype, in JSON and in the binary extension

/** Values of each datatype, extremes included (FP16/BF16 as bits, BOOL as bytes). */
const SAMPLES: Record<TensorDatatype, { data: TensorData; json: unknown[] }> = {
  FP32: { data: f32([1.5, -2, 3.4028234663852886e38, 1e-45]), json: [1.5, -2, 3.4028234663852886e38, 1e-45] },
  FP16: { data: Uint16Array.from([0x3e00, 0xc000, 0x7bff, 0x0001]), json: [1.5, -2, 65504, 2 ** -24] },
  BF16: { data: Uint16Array.from([0x3fc0, 0xc000, 0x7f7f, 0x0001]), json: [1.5, -2, bfloat16ToFloat(0x7f7f), bfloat16ToFloat(1)] },
  INT8: { data: Int8Array.from([-128, 127, 0, -1]), json: [-128, 127, 0, -1] },
  UINT8: { data: Uint8Array.from([0, 255, 7, 1]), json: [0, 255, 7, 1] },
  INT32: { data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, -5]), json: [-(2 ** 31), 2 ** 31 - 1, 0, -5] },
  INT64: { data: BigInt64Array.from([-(2n ** 53n), 2n ** 53n, 0n, -5n]), json: [-(2 ** 53), 2 ** 53, 0, -5] },
  BOOL: { data: Uint8Array.from([1, 0, 0, 1]), json: [true, false, false, true] },
};
const DATATYPES = Object.keys(SAMPLES) as TensorDatatype[];
const bits = (d: TensorData) => Buffer.from(d.buffer, d.byteOffset, d.byteLength);

describe('OIP datatypes: every model dtype in and out', () => {
  for (const dt of DATATYPES) {
    const { data, json: values } = SAMPLES[dt];
    it(`${dt}: JSON and binary requests give the tensor in its own dtype, bit for bit`, () => {
      const fromJson = parseInferRequest(json({ inputs: [{ name: 'x', shape: [2, 2], datatype: dt, data: values }] }), {});
      const fromClient = parseInferRequest(encodeInferRequest({ inputs: [{ name: 'x', shape: [2, 2], datatype: dt, data }] }).body, {});
      const b = encodeInferRequest({ inputs: [{ name: 'x', shape: [2, 2], datatype: dt, data }] }, { binary: true });
      const fromBinary = parseInferRequest(b.body, b.headers);
      for (const [how, r] of [['json', fromJson], ['client json', fromClient], ['binary', fromBinary]] as const) {
        const t = r.inputs[0]!.tensor!;
        assert.ok(t, `${how}: no tensor`);
        assert.equal(dtypeOf(t), OIP_TO_DTYPE[dt], how);
        assert.deepEqual(t.dims, [2, 2], how);
        assert.ok(bits(t.data).equals(bits(data)), `${how}: ${dt} bits`);
        assert.equal(r.inputs[0]!.datatype, dt);
      }
      // The binary section holds exactly the native element size (BOOL: one byte).
      assert.equal(fromBinary.inputs[0]!.parameters.binary_data_size, data.byteLength);
      assert.equal(fromBinary.inputs[0]!.binary, true);
    });

    it(`${dt}: responses round-trip through JSON and binary`, () => {
      const t = makeTensor(OIP_TO_DTYPE[dt], [1, 4], data);
      const out = tensorOutput('y', t);
      assert.equal(out.datatype, dt);
      for (const binary of [false, true]) {
        const enc = encodeInferResponse({ model_name: 'm', outputs: [out] }, { binary });
        const dec = decodeInferResponse(enc.body, enc.headers).outputs[0]!;
        assert.equal(dec.datatype, dt);
        assert.deepEqual(dec.shape, [1, 4]);
        assert.ok(dec.tensor && bits(dec.tensor.data).equals(bits(data)), `${binary ? 'binary' : 'json'} ${dt} bits`);
        if (binary) assert.equal((JSON.parse(enc.body.subarray(0, Number(enc.headers['inference-header-content-length'])).toString()) as { outputs: { parameters: { binary_data_size: number } }[] }).outputs[0]!.parameters.binary_data_size, data.byteLength);
        else assert.deepEqual((JSON.parse(enc.body.toString()) as { outputs: { data: unknown[] }[] }).outputs[0]!.data, dt === 'FP32' ? values.map((v) => Number(Math.fround(v as number).toPrecision(9))) : values);
      }
    });
  }

  it('FP16 and BF16 JSON values round to nearest even; the float32 view is exact', () => {
    const r = parseInferRequest(json({ inputs: [
      { name: 'h', shape: [3], datatype: 'FP16', data: [1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1] },
      { name: 'b', shape: [2], datatype: 'BF16', data: [1 + 2 ** -8, 0.1] },
    ] }), {});
    assert.deepEqual([...(r.inputs[0]!.tensor!.data as Uint16Array)], [0x3c00, 0x3c02, floatToHalf(0.1)]);
    assert.deepEqual([...r.inputs[0]!.data], [1, 1 + 2 ** -9, halfToFloat(floatToHalf(0.1))]);
    assert.deepEqual([...(r.inputs[1]!.tensor!.data as Uint16Array)], [0x3f80, floatToBfloat16(0.1)]);
  });

  it('INT64 outputs are written as exact digits in JSON; binary carries the full range', () => {
    const data = BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 12345678901234567n]);
    const enc = encodeInferResponse({ model_name: 'm', id: 'r1', outputs: [tensorOutput('ids', makeTensor('int64', [3], data))] });
    assert.match(enc.body.toString(), /"data":\[-9223372036854775808,9223372036854775807,12345678901234567\]/);
    const bin = encodeInferResponse({ model_name: 'm', outputs: [tensorOutput('ids', makeTensor('int64', [3], data))] }, { binary: true });
    assert.deepEqual([...(decodeInferResponse(bin.body, bin.headers).outputs[0]!.tensor!.data as BigInt64Array)], [...data]);
    const req = encodeInferRequest({ inputs: [{ name: 'x', shape: [3], data }] }, { binary: true });
    assert.deepEqual([...(parseInferRequest(req.body, req.headers).inputs[0]!.tensor!.data as BigInt64Array)], [...data]);
  });

  it('rejects bad values per datatype, naming the input', () => {
    assert400(() => parseInferRequest(json({ inputs: [{ name: 'h', shape: [1], datatype: 'FP16', data: [70000] }] }), {}), /input "h"/, /not a valid FP16/);
    assert400(() => parseInferRequest(json({ inputs: [{ name: 'i', shape: [1], datatype: 'INT64', data: [2 ** 63] }] }), {}), /input "i"/, /not a valid INT64/);
    assert400(() => parseInferRequest(json({ inputs: [{ name: 'i', shape: [1], datatype: 'INT8', data: [128] }] }), {}), /not a valid INT8/);
    const b = binaryBody({ inputs: [{ name: 'm', shape: [3], datatype: 'BOOL', parameters: { binary_data_size: 3 } }] }, Buffer.from([1, 2, 0]));
    assert400(() => parseInferRequest(b.body, b.headers), /input "m"/, /element 1 is byte 2, not a valid BOOL/);
    const h = binaryBody({ inputs: [{ name: 'h', shape: [3], datatype: 'FP16', parameters: { binary_data_size: 8 } }] }, Buffer.alloc(8));
    assert400(() => parseInferRequest(h.body, h.headers), /input "h"/, /binary_data_size is 8 bytes but shape \[3\] of FP16 needs 6/);
  });

  it("inputTensor: the model's dtype, or a 400 naming the input, the expected and the given datatype", () => {
    const r = parseInferRequest(json({ inputs: [{ name: 'image', shape: [1, 2], datatype: 'FP16', data: [1, 2] }] }), {});
    assert.deepEqual([...(inputTensor(r.inputs[0]!, 'float16').data as Uint16Array)], [0x3c00, 0x4000]);
    assert.throws(() => inputTensor(r.inputs[0]!, 'float32'), (e: unknown) => {
      assert.ok(e instanceof HttpError);
      assert.equal(e.status, 400);
      assert.match(e.message, /input "image": datatype FP16 does not match the model's input, which is FP32/);
      assert.deepEqual(e.details, { input: 'image', expected: 'FP32', given: 'FP16' });
      return true;
    });
    const wide = parseInferRequest(json({ inputs: [{ name: 'x', shape: [1], datatype: 'FP64', data: [1] }] }), {});
    assert.equal(wide.inputs[0]!.tensor, undefined);
    assert400(() => inputTensor(wide.inputs[0]!, 'float32'), /input "x": datatype FP64 does not match the model's input, which is FP32/);
    // Non-FP32 inputs still offer their values as float32 (FP32 models read `data`).
    const i = parseInferRequest(json({ inputs: [{ name: 'x', shape: [2], datatype: 'INT64', data: [-3, 4] }] }), {});
    assert.deepEqual([...i.inputs[0]!.data], [-3, 4]);
  });
});
