/**
 * Hostile and malformed requests through the gateway and the route table, with API keys and
 * admission on: every answer must be JSON, none a 500, and the server must keep serving.
 * The backend is a TEST BACKEND for the HTTP layer (a deterministic sum, no model); the same
 * checks against the real stack are in fuzz-stack.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { ApiKeys } from '../../src/http/access.ts';
import { Admission } from '../../src/http/admission.ts';
import { type Gateway, startGateway } from '../../src/http/gateway.ts';
import { preprocessingSchema } from '../../src/serve/model-entry.ts';
import { route } from '../../src/http/routes.ts';
import type { InferenceBackend, ModelEntry } from '../../src/serve/model-entry.ts';
import { runFuzz } from './fuzz-corpus.ts';

const KEY = 'fuzz-key-0123456789abcdef';
const models = new Map<string, ModelEntry>([
  ['m', { name: 'm', inputName: 'input', inputShape: [-1, 3, 4, 4], outputName: 'out', outputShape: [-1, 2], maxInputElements: 4 * 48, preprocessing: preprocessingSchema.parse({ width: 4, height: 4, resize: null }) }],
]);
/** TEST BACKEND: [N, 2] of each row's sum and its negation. */
const backend: InferenceBackend = {
  ready: async () => true,
  infer: async (_m, x) => {
    const n = x.dims[0]!;
    const per = x.data.length / n;
    const out = new Float32Array(n * 2);
    for (let b = 0; b < n; b++) {
      let s = 0;
      for (let i = 0; i < per; i++) s += x.data[b * per + i]!;
      out[2 * b] = s;
      out[2 * b + 1] = -s;
    }
    return { output: { dims: [n, 2], data: out }, cost: { rows: n } };
  },
};

describe('fuzz: gateway + routes (keys and admission on)', () => {
  let gw: Gateway;
  before(async () => {
    const access = new ApiKeys([KEY]);
    gw = await startGateway({
      maxBodyBytes: 64 * 1024, access, admission: new Admission({ maxInflight: 2, maxQueue: 4 }), requestTimeoutMs: 10_000, lingerMs: 200,
      invoke: (e) => route(e, { models, backend, access, admission: new Admission({ maxInflight: 2, maxQueue: 4 }), requestTimeoutMs: 10_000, onError: () => {} }),
    });
  });
  after(() => gw.close());

  it('every answer is JSON, never a 500; the server stays up and still answers correctly', async () => {
    const n = await runFuzz(gw.url, KEY, 'm');
    assert.ok(n > 100, `${n} requests`);
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png().toBuffer();
    const ok = await fetch(`${gw.url}/v2/models/m/infer`, { method: 'POST', body: new Uint8Array(png), headers: { 'x-api-key': KEY, 'content-type': 'image/png' } });
    assert.equal(ok.status, 200);
    assert.equal((await fetch(`${gw.url}/v2/health/live`)).status, 200);
  });
});
