/**
 * Routing-layer tests. The backend here is a TEST BACKEND for the routing layer
 * only: it computes a deterministic function of the input (no model, no
 * tiling). End-to-end tests with the real distributed backend live elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import sharp from 'sharp';
import { unavailable } from '../../src/http/errors.ts';
import { type FcHttpEvent, type FcHttpResult, resultBody } from '../../src/http/fc-event.ts';
import { startGateway, type Gateway } from '../../src/http/gateway.ts';
import { preprocessingSchema } from '../../src/serve/model-entry.ts';
import { INFERENCE_HEADER_CONTENT_LENGTH } from '../../src/http/oip.ts';
import { decodeInferResponse, encodeInferRequest } from '../../src/http/oip-client.ts';
import { route } from '../../src/http/routes.ts';
import type { InferenceBackend, ModelEntry } from '../../src/serve/model-entry.ts';
import type { FloatTensor } from '../../src/runtime/ort.ts';

const CLASSES = 10;

/**
 * TEST BACKEND (routing layer only). For each batch row n:
 *   output[n][k] = (k - 4) * sum(input[n])
 * so the top class is 9 when the row sum is positive and 0 when negative.
 */
class SumTestBackend implements InferenceBackend {
  isReady = true;
  fail: Error | undefined;
  calls: { model: string; dims: number[]; requestId: string }[] = [];

  async ready() {
    return this.isReady;
  }

  async infer(model: ModelEntry, input: FloatTensor, requestId: string) {
    this.calls.push({ model: model.name, dims: [...input.dims], requestId });
    if (this.fail) throw this.fail;
    const n = input.dims[0]!;
    const per = input.data.length / n;
    const out = new Float32Array(n * CLASSES);
    for (let b = 0; b < n; b++) {
      let s = 0;
      for (let i = 0; i < per; i++) s += input.data[b * per + i]!;
      for (let k = 0; k < CLASSES; k++) out[b * CLASSES + k] = (k - 4) * s;
    }
    return { output: { dims: [n, CLASSES], data: out }, cost: { backend: 'sum-test', rows: n, elements: input.data.length } };
  }
}

const labels = Array.from({ length: CLASSES }, (_, i) => `class-${i}`);
const models = new Map<string, ModelEntry>([
  ['summer', { name: 'summer', inputName: 'input', inputShape: [-1, 3, 4, 4], outputName: 'logits', outputShape: [-1, CLASSES], labels, maxInputElements: 4 * 48 }],
  [
    'vision',
    {
      name: 'vision',
      inputName: 'input',
      inputShape: [1, 3, 8, 8],
      outputName: 'logits',
      outputShape: [1, CLASSES],
      labels,
      preprocessing: preprocessingSchema.parse({ width: 8, height: 8, resize: null }),
    },
  ],
]);

let seq = 0;
function ev(method: string, path: string, opts: { body?: Buffer | string; headers?: Record<string, string>; query?: Record<string, string> } = {}): FcHttpEvent {
  const body = opts.body === undefined ? Buffer.alloc(0) : Buffer.from(opts.body);
  return {
    version: 'v1',
    rawPath: path,
    body: body.toString('base64'),
    isBase64Encoded: true,
    headers: opts.headers ?? {},
    queryParameters: opts.query ?? {},
    requestContext: { http: { method, path }, requestId: `req-${++seq}` },
  };
}
const json = (r: FcHttpResult) => JSON.parse(resultBody(r).toString('utf8'));
const headersOf = (r: FcHttpResult) => r.headers ?? {};

/** Expected test-backend output for one row with sum s. */
const expectedRow = (s: number) => Array.from({ length: CLASSES }, (_, k) => Math.fround((k - 4) * s) + 0); // +0: JSON has no -0

describe('routes (with the routing-layer test backend)', () => {
  let backend: SumTestBackend;
  let errors: unknown[];
  const call = (e: FcHttpEvent, topK?: number) => route(e, { models, backend, onError: (err) => errors.push(err), ...(topK !== undefined ? { topK } : {}) });

  beforeEach(() => {
    backend = new SumTestBackend();
    errors = [];
  });

  describe('health and metadata', () => {
    it('GET /v2/health/live', async () => {
      const r = await call(ev('GET', '/v2/health/live'));
      assert.equal(r.statusCode, 200);
      assert.deepEqual(json(r), { live: true });
    });

    it('GET /v2/health/ready follows backend.ready() (throwing counts as not ready)', async () => {
      assert.equal((await call(ev('GET', '/v2/health/ready'))).statusCode, 200);
      backend.isReady = false;
      const r = await call(ev('GET', '/v2/health/ready'));
      assert.equal(r.statusCode, 503);
      assert.deepEqual(json(r), { ready: false });
      backend.ready = async () => {
        throw new Error('store down');
      };
      assert.equal((await call(ev('GET', '/v2/health/ready'))).statusCode, 503);
    });

    it('GET /v2 server metadata lists the extensions', async () => {
      const body = json(await call(ev('GET', '/v2')));
      assert.deepEqual(body.extensions, ['binary_tensor_data', 'classification']);
    });

    it('GET /v2/models/{name} gives OIP metadata with -1 dims', async () => {
      const r = await call(ev('GET', '/v2/models/summer'));
      assert.equal(r.statusCode, 200);
      assert.deepEqual(json(r), {
        name: 'summer',
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 4, 4] }],
        outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, CLASSES] }],
      });
      assert.equal((await call(ev('GET', '/v2/models/summer/'))).statusCode, 200, 'trailing slash tolerated');
    });

    it('unknown model → 404 listing the available ones', async () => {
      for (const path of ['/v2/models/nope', '/v2/models/nope/ready', '/v2/models/nope/infer']) {
        const r = await call(ev(path.endsWith('infer') ? 'POST' : 'GET', path, { body: '{}' }));
        assert.equal(r.statusCode, 404, path);
        const body = json(r);
        assert.equal(body.error, 'unknown model "nope"; available: summer, vision');
        assert.equal(body.code, 'unknown_model');
      }
    });

    it('GET /v2/models/{name}/ready', async () => {
      const r = await call(ev('GET', '/v2/models/vision/ready'));
      assert.equal(r.statusCode, 200);
      assert.deepEqual(json(r), { name: 'vision', ready: true });
      backend.isReady = false;
      assert.equal((await call(ev('GET', '/v2/models/vision/ready'))).statusCode, 503);
    });

    it('unknown route → 404, wrong method → 405 with allow header', async () => {
      const nf = await call(ev('GET', '/v1/models/summer'));
      assert.equal(nf.statusCode, 404);
      assert.match(json(nf).error, /no route for GET \/v1\/models\/summer/);
      const na = await call(ev('GET', '/v2/models/summer/infer'));
      assert.equal(na.statusCode, 405);
      assert.equal(headersOf(na).allow, 'POST');
      assert.match(json(na).error, /method GET is not allowed/);
      assert.equal((await call(ev('DELETE', '/v2/health/live'))).statusCode, 405);
    });

    it('decodes percent-encoded model names; malformed encoding → 400', async () => {
      assert.equal((await call(ev('GET', '/v2/models/summ%65r'))).statusCode, 200);
      assert.equal((await call(ev('GET', '/v2/models/%E0%A4%A'))).statusCode, 400);
    });
  });

  describe('POST /v2/models/{name}/infer: OIP tensors', () => {
    const input = (n: number, fill: (i: number) => number) => Float32Array.from({ length: n * 48 }, (_, i) => fill(i));

    it('JSON request → JSON response with id echo and parameters.cost', async () => {
      const data = input(2, (i) => (i < 48 ? 0.5 : -0.25));
      const enc = encodeInferRequest({ id: 'my-id', inputs: [{ name: 'input', shape: [2, 3, 4, 4], data }] });
      const r = await call(ev('POST', '/v2/models/summer/infer', { body: enc.body, headers: enc.headers }));
      assert.equal(r.statusCode, 200, resultBody(r).toString());
      const body = json(r);
      assert.equal(body.id, 'my-id');
      assert.equal(body.model_name, 'summer');
      assert.deepEqual(body.parameters.cost, { backend: 'sum-test', rows: 2, elements: 96 });
      assert.equal(body.outputs[0].name, 'logits');
      assert.equal(body.outputs[0].datatype, 'FP32');
      assert.deepEqual(body.outputs[0].shape, [2, CLASSES]);
      assert.deepEqual(Float32Array.from(body.outputs[0].data), Float32Array.from([...expectedRow(24), ...expectedRow(-12)]));
      assert.deepEqual(backend.calls[0]!.dims, [2, 3, 4, 4]);
      assert.match(backend.calls[0]!.requestId, /^req-\d+$/);
    });

    it('nested JSON data and integer datatypes are accepted', async () => {
      const nested = [[Array.from({ length: 4 }, () => [1, 1, 1, 1]), Array.from({ length: 4 }, () => [0, 0, 0, 0]), Array.from({ length: 4 }, () => [2, 2, 2, 2])]];
      const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], datatype: 'UINT8', data: nested }] });
      const r = await call(ev('POST', '/v2/models/summer/infer', { body, headers: { 'content-type': 'application/json' } }));
      assert.equal(r.statusCode, 200, resultBody(r).toString());
      assert.deepEqual(Float32Array.from(json(r).outputs[0].data), Float32Array.from(expectedRow(48)));
    });

    it('binary request → binary response (binary_data_output), decoded exactly', async () => {
      const data = input(1, (i) => Math.sin(i) / 3);
      const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], data }], parameters: { binary_data_output: true } }, { binary: true });
      const r = await call(ev('POST', '/v2/models/summer/infer', { body: enc.body, headers: { 'Inference-Header-Content-Length': enc.headers[INFERENCE_HEADER_CONTENT_LENGTH]!, 'Content-Type': 'application/octet-stream' } }));
      assert.equal(r.statusCode, 200, resultBody(r).toString());
      assert.equal(r.isBase64Encoded, true);
      assert.ok(headersOf(r)[INFERENCE_HEADER_CONTENT_LENGTH]);
      const dec = decodeInferResponse(resultBody(r), headersOf(r));
      let s = 0;
      for (const v of data) s += v;
      assert.deepEqual(dec.outputs[0]!.data, Float32Array.from(expectedRow(s)));
      assert.ok(dec.parameters?.cost);
    });

    it('binary output requested per output (binary_data: true)', async () => {
      const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], data: input(1, () => 1) }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] });
      const r = await call(ev('POST', '/v2/models/summer/infer', { body: enc.body, headers: enc.headers }));
      assert.equal(r.statusCode, 200);
      assert.deepEqual(decodeInferResponse(resultBody(r), headersOf(r)).outputs[0]!.data, Float32Array.from(expectedRow(48)));
    });

    it('classification extension → BYTES "value:index:label" per batch row', async () => {
      const enc = encodeInferRequest({
        inputs: [{ name: 'input', shape: [2, 3, 4, 4], data: input(2, (i) => (i < 48 ? 1 : -1)) }],
        outputs: [{ name: 'logits', parameters: { classification: 2 } }],
      });
      const r = await call(ev('POST', '/v2/models/summer/infer', { body: enc.body, headers: enc.headers }));
      assert.equal(r.statusCode, 200, resultBody(r).toString());
      const out = json(r).outputs[0];
      assert.equal(out.datatype, 'BYTES');
      assert.deepEqual(out.shape, [2, 2]);
      assert.deepEqual(out.data, ['240.000000:9:class-9', '192.000000:8:class-8', '192.000000:0:class-0', '144.000000:1:class-1']);
    });

    it('dynamic batch dim is free; fixed dims, C, and rank must match (400 naming the input)', async () => {
      const send = (shape: number[], name = 'input') => {
        const n = shape.reduce((a, b) => a * b, 1);
        const enc = encodeInferRequest({ inputs: [{ name, shape, data: new Float32Array(n) }] });
        return call(ev('POST', '/v2/models/summer/infer', { body: enc.body, headers: enc.headers }));
      };
      assert.equal((await send([3, 3, 4, 4])).statusCode, 200);
      const cases: [number[], RegExp][] = [
        [[1, 4, 4, 4], /input "input" of model "summer": C \(channels\) must be 3, got 4/],
        [[1, 3, 5, 4], /H \(height\) must be 4, got 5/],
        [[1, 3, 4, 5], /W \(width\) must be 4, got 5/],
        [[3, 4, 4], /expected rank 4 shape \[-1,3,4,4\], got \[3,4,4\]/],
        [[0, 3, 4, 4], /has no elements/],
      ];
      for (const [shape, re] of cases) {
        const r = await send(shape);
        assert.equal(r.statusCode, 400, `${shape}`);
        assert.match(json(r).error, re);
      }
      const wrongName = await send([1, 3, 4, 4], 'images');
      assert.equal(wrongName.statusCode, 400);
      assert.match(json(wrongName).error, /model "summer" takes exactly one input "input"; got "images"/);
      // maxInputElements = 4 * 48
      const big = await send([5, 3, 4, 4]);
      assert.equal(big.statusCode, 413);
      assert.match(json(big).error, /240 elements .* over the limit of 192/);
      assert.equal(backend.calls.length, 1, 'backend only called for the valid request');
    });

    it('two inputs, unknown outputs, malformed bodies → 400', async () => {
      const two = encodeInferRequest({
        inputs: [
          { name: 'input', shape: [1, 3, 4, 4], data: new Float32Array(48) },
          { name: 'extra', shape: [1], data: new Float32Array(1) },
        ],
      });
      assert.match(json(await call(ev('POST', '/v2/models/summer/infer', { body: two.body }))).error, /exactly one input/);
      const badOut = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], data: new Float32Array(48) }], outputs: [{ name: 'probs' }] });
      const r = await call(ev('POST', '/v2/models/summer/infer', { body: badOut.body }));
      assert.equal(r.statusCode, 400);
      assert.match(json(r).error, /unknown output "probs" requested; model "summer" has output "logits"/);
      for (const body of ['not json', '{"inputs": 3}', '']) {
        const e = await call(ev('POST', '/v2/models/summer/infer', { body, headers: { 'content-type': 'application/json' } }));
        assert.equal(e.statusCode, 400, body);
        assert.ok(json(e).error.length > 0);
      }
      const bad64 = ev('POST', '/v2/models/summer/infer');
      bad64.body = '@@@not base64';
      assert.equal((await call(bad64)).statusCode, 400);
      assert.equal(backend.calls.length, 0);
    });
  });

  describe('POST /v2/models/{name}/infer: images', () => {
    const solidPng = (rgb: [number, number, number]) => sharp({ create: { width: 20, height: 30, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();

    it('PNG → preprocess → infer → output + top_k + cost', async () => {
      const png = await solidPng([255, 255, 255]);
      const r = await call(ev('POST', '/v2/models/vision/infer', { body: png, headers: { 'Content-Type': 'image/png' } }));
      assert.equal(r.statusCode, 200, resultBody(r).toString());
      const body = json(r);
      assert.equal(body.model_name, 'vision');
      assert.match(body.id, /^req-\d+$/);
      assert.deepEqual(backend.calls[0]!.dims, [1, 3, 8, 8]);
      // White: every normalised value is (1 - mean[c]) / std[c]; the row sum is 64 times their sum.
      const s = 64 * ((1 - 0.485) / 0.229 + (1 - 0.456) / 0.224 + (1 - 0.406) / 0.225);
      const out = Float32Array.from(body.outputs[0].data);
      assert.deepEqual(body.outputs[0].shape, [1, CLASSES]);
      for (let k = 0; k < CLASSES; k++) assert.ok(Math.abs(out[k]! - (k - 4) * s) < 1e-2, `${k}: ${out[k]}`);
      const top = body.parameters.top_k;
      assert.equal(top.length, 5);
      assert.deepEqual(top.map((t: { index: number }) => t.index), [9, 8, 7, 6, 5]);
      assert.deepEqual(top.map((t: { label: string }) => t.label), ['class-9', 'class-8', 'class-7', 'class-6', 'class-5']);
      assert.ok(top[0].score > 0.99 && top[0].score <= 1);
      assert.ok(Math.abs(top[0].logit - 5 * s) < 1e-2);
      assert.deepEqual(body.parameters.cost, { backend: 'sum-test', rows: 1, elements: 192 });
    });

    it('top_k from deps and ?top_k=; invalid top_k → 400', async () => {
      const png = await solidPng([0, 0, 0]);
      const send = (query: Record<string, string>, topK?: number) =>
        call(ev('POST', '/v2/models/vision/infer', { body: png, headers: { 'content-type': 'image/png' }, query }), topK);
      assert.equal(json(await send({}, 3)).parameters.top_k.length, 3);
      const two = json(await send({ top_k: '2' })).parameters.top_k;
      assert.deepEqual(two.map((t: { index: number }) => t.index), [0, 1], 'black → negative sum → class 0 on top');
      assert.equal((await send({ top_k: 'many' })).statusCode, 400);
      assert.equal((await send({ top_k: '1000' })).statusCode, 400);
    });

    it('415 for corrupt images, unsupported image types, and models without preprocessing', async () => {
      const png = await solidPng([1, 2, 3]);
      const corrupt = await call(ev('POST', '/v2/models/vision/infer', { body: 'garbage', headers: { 'content-type': 'image/jpeg' } }));
      assert.equal(corrupt.statusCode, 415);
      assert.match(json(corrupt).error, /cannot decode body as image\/jpeg/);
      const gif = await call(ev('POST', '/v2/models/vision/infer', { body: png, headers: { 'content-type': 'image/gif' } }));
      assert.equal(gif.statusCode, 415);
      const noPre = await call(ev('POST', '/v2/models/summer/infer', { body: png, headers: { 'content-type': 'image/png' } }));
      assert.equal(noPre.statusCode, 415);
      assert.match(json(noPre).error, /model "summer" does not accept images/);
      assert.equal(backend.calls.length, 0);
    });
  });

  describe('backend failures', () => {
    it('an unexpected backend error → 500 with a generic message (reported to onError)', async () => {
      backend.fail = new Error('worker 7 segfaulted at /secret/path');
      const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], data: new Float32Array(48) }] });
      const r = await call(ev('POST', '/v2/models/summer/infer', { body: enc.body }));
      assert.equal(r.statusCode, 500);
      assert.deepEqual(json(r), { error: 'internal server error', code: 'internal' });
      assert.equal(errors.length, 1);
    });

    it('a backend HttpError passes through (503)', async () => {
      backend.fail = unavailable('all workers busy', { headers: { 'retry-after': '1' } });
      const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], data: new Float32Array(48) }] });
      const r = await call(ev('POST', '/v2/models/summer/infer', { body: enc.body }));
      assert.equal(r.statusCode, 503);
      assert.equal(headersOf(r)['retry-after'], '1');
      assert.deepEqual(json(r), { error: 'all workers busy', code: 'unavailable' });
    });

    it('a backend output inconsistent with its dims → 500', async () => {
      backend.infer = async () => ({ output: { dims: [1, 5], data: new Float32Array(3) }, cost: { backend: 'broken', rows: 1, elements: 0 } });
      const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], data: new Float32Array(48) }] });
      assert.equal((await call(ev('POST', '/v2/models/summer/infer', { body: enc.body }))).statusCode, 500);
    });
  });
});

describe('routes behind the gateway (real HTTP, in-process route as the function)', () => {
  let gw: Gateway;
  const backend = new SumTestBackend();
  before(async () => {
    gw = await startGateway({ maxBodyBytes: 1 << 20, invoke: (e) => route(e, { models, backend, onError: () => {} }) });
  });
  after(() => gw.close());

  it('image upload and binary tensor request over HTTP', async () => {
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png().toBuffer();
    const r = await fetch(`${gw.url}/v2/models/vision/infer?top_k=1`, { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } });
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(body.id, r.headers.get('x-request-id'));
    assert.equal(body.parameters.top_k[0].label, 'class-9');

    const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], data: new Float32Array(48).fill(0.5) }], parameters: { binary_data_output: true } }, { binary: true });
    const r2 = await fetch(`${gw.url}/v2/models/summer/infer`, { method: 'POST', body: enc.body, headers: enc.headers });
    assert.equal(r2.status, 200);
    const hdrs = Object.fromEntries(r2.headers);
    const dec = decodeInferResponse(Buffer.from(await r2.arrayBuffer()), hdrs);
    assert.deepEqual(dec.outputs[0]!.data, Float32Array.from(expectedRow(24)));

    const r3 = await fetch(`${gw.url}/v2/health/ready`);
    assert.equal(r3.status, 200);
  });
});
