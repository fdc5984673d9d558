import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadConfig } from '../../src/config.ts';
import { startLocalStack, type LocalStack } from '../../src/compose/stack.ts';
import { decodeInferResponse, encodeInferRequest } from '../../src/http/oip-client.ts';
import { randomTensor, compareTensors } from '../../src/tensor/random.ts';
import { monolithic } from '../../src/exec/verify.ts';
import { ensureModel } from '../../src/models/index.ts';
import { requestCostSchema } from '../../src/serve/cost-report.ts';
import { buildRoutes } from '../../src/plan/bundles.ts';
import { chainsFor } from '../../src/planner/chains.ts';

// End to end over HTTP on the local stack: gateway -> handler process -> master process ->
// worker processes, tiles through the filesystem store.
let stack: LocalStack;
let dir: string;
let modelBytes: Buffer;

async function infer(model: string, shape: number[], seed: number) {
  const x = randomTensor(shape, seed);
  const enc = encodeInferRequest({ inputs: [{ name: 'input', shape, data: x.data }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, { binary: true });
  const res = await fetch(`${stack.url}/v2/models/${model}/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(res.status, 200, body.toString('utf8').slice(0, 500));
  const d = decodeInferResponse(body, Object.fromEntries(res.headers.entries()));
  return { x, out: d.outputs[0], cost: d.parameters?.cost as Record<string, any> };
}

async function expectEqualToMonolithic(model: string, shape: number[], seed: number) {
  const { x, out, cost } = await infer(model, shape, seed);
  const ref = (await monolithic(modelBytes, x, 'input')).logits;
  assert.deepEqual(out.shape, ref.dims);
  const c = compareTensors(ref, { dims: out.shape, data: out.data as Float32Array });
  assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `${model} batch ${shape[0]}: maxAbsDiff ${c.maxAbsDiff}`);
  return cost;
}

describe('local stack over HTTP', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fc-e2e-'));
    modelBytes = await readFile(await ensureModel('resnet18', 'models/resnet18.onnx'));
    stack = await startLocalStack(loadConfig({ PORT: '0', DATA_DIR: dir, MAX_BODY_BYTES: String(8 << 20), WORKER_MAX_INSTANCES: '4' }));
  });
  after(async () => {
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('health and metadata', async () => {
    assert.equal((await fetch(`${stack.url}/v2/health/live`)).status, 200);
    assert.equal((await fetch(`${stack.url}/v2/health/ready`)).status, 200);
    const meta = await (await fetch(`${stack.url}/v2/models/resnet18`)).json() as { inputs: { shape: number[] }[] };
    assert.deepEqual(meta.inputs[0].shape, [-1, 3, 224, 224]);
  });

  for (const model of ['resnet18-224-2x2', 'resnet18-224-4x4']) {
    for (const batch of [1, 4]) {
      it(`${model} batch ${batch} equals monolithic ORT`, async () => {
        const cost = await expectEqualToMonolithic(model, [batch, 3, 224, 224], 10 + batch);
        requestCostSchema.parse(cost);
        // One invocation per worker of each chain: the 2x2 plan is one chain of 4; the 4x4
        // plan's 16-wide chain exceeds the 4 worker instances, so it runs as single groups.
        const plan = JSON.parse(await readFile(`plans/${model}.json`, 'utf8'));
        const chains = buildRoutes(plan, chainsFor(plan, 4)).chains;
        assert.equal(cost.invocations.worker, chains.reduce((a, c) => a + c.workers, 0));
        assert.equal(cost.invocations.worker, model.endsWith('2x2') ? 4 : 4 * 16 + 4);
        assert.ok(cost.store.bytesWritten > 0 && cost.billed.computeUnits > 0);
        assert.equal(cost.stages.length, chains.length);
        assert.ok(cost.workerTime.exchangeShare >= 0 && cost.workerTime.exchangeShare < 1 && cost.workerTime.computeMs > 0);
      });
    }
  }

  it('concurrent requests do not mix', async () => {
    await Promise.all([21, 22, 23, 24].map((seed, i) => expectEqualToMonolithic(i % 2 ? 'resnet18-224-2x2' : 'resnet18', [1 + (i % 2), 3, 224, 224], seed)));
  });

  it('classifies an image and leaves nothing behind in the store', async () => {
    const png = await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 200, g: 30, b: 60 } } }).png().toBuffer();
    const res = await fetch(`${stack.url}/v2/models/resnet18/infer`, { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } });
    const body = await res.json() as { parameters: { top_k: unknown[] } };
    assert.equal(res.status, 200);
    assert.equal(body.parameters.top_k.length, 5);
    assert.deepEqual(await stack.store.list('requests/'), []);
  });

  describe('bad input: a JSON error naming the problem, and the server stays up', () => {
    const post = (model: string, body: Uint8Array<ArrayBuffer> | string, headers: Record<string, string>) =>
      fetch(`${stack.url}/v2/models/${model}/infer`, { method: 'POST', body, headers });
    const cases: [string, () => Promise<Response>, number, RegExp][] = [
      ['malformed JSON', () => post('resnet18', '{"inputs": [', { 'content-type': 'application/json' }), 400, /JSON/i],
      ['wrong shape', () => post('resnet18', JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 100, 100], datatype: 'FP32', data: new Array(30000).fill(0) }] }), { 'content-type': 'application/json' }), 400, /shape|dim/i],
      ['wrong dtype', () => post('resnet18', JSON.stringify({ inputs: [{ name: 'input', shape: [1], datatype: 'BYTES', data: ['x'] }] }), { 'content-type': 'application/json' }), 400, /datatype|BYTES/i],
      ['unknown model', () => post('alexnet', '{}', { 'content-type': 'application/json' }), 404, /alexnet/],
      ['oversized body', () => post('resnet18', new Uint8Array(9 << 20), { 'content-type': 'application/octet-stream' }), 413, /large|limit|bytes/i],
      ['undecodable image', () => post('resnet18', new Uint8Array(Buffer.from('definitely not a jpeg')), { 'content-type': 'image/jpeg' }), 415, /image|decode/i],
    ];
    for (const [name, send, status, msg] of cases) {
      it(`${name} -> ${status}`, async () => {
        const res = await send();
        const body = await res.json() as { error: string };
        assert.equal(res.status, status, JSON.stringify(body));
        assert.match(body.error, msg);
        assert.equal((await fetch(`${stack.url}/v2/health/live`)).status, 200);
      });
    }
  });
});

describe('a failing worker', () => {
  let weak: LocalStack;
  let weakDir: string;
  before(async () => {
    weakDir = await mkdtemp(join(tmpdir(), 'fc-e2e-weak-'));
    // 128 MB workers: loading a ResNet-18 group exceeds it, and the pool kills the instance like FC's OOM.
    weak = await startLocalStack(loadConfig({ PORT: '0', DATA_DIR: weakDir, WORKER_MEMORY_MB: '128', WORKER_VCPU: '0.1', WORKER_MAX_INSTANCES: '2' }));
  });
  after(async () => {
    await weak?.close();
    await rm(weakDir, { recursive: true, force: true });
  });

  it('is reported with its stage and tile, the request fails cleanly, the server stays up', async () => {
    const x = randomTensor([1, 3, 224, 224], 1);
    const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: x.dims, data: x.data }] }, { binary: true });
    const res = await fetch(`${weak.url}/v2/models/resnet18-224-2x2/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
    const body = await res.json() as { error: string };
    assert.equal(res.status, 502, JSON.stringify(body));
    assert.match(body.error, /stage \d+ tile \d+/);
    assert.match(body.error, /memory|crash/i);
    assert.equal((await fetch(`${weak.url}/v2/health/live`)).status, 200);
    assert.deepEqual(await weak.store.list('requests/'), []);
  });
});

describe('request ids chosen by clients', () => {
  let s: LocalStack;
  let d: string;
  before(async () => {
    d = await mkdtemp(join(tmpdir(), 'fc-e2e-rid-'));
    s = await startLocalStack(loadConfig({ PORT: '0', DATA_DIR: d, PLANS: 'plans/resnet18-224-2x2.json', DEFAULT_PLAN: 'resnet18-224-2x2', WORKER_MAX_INSTANCES: '2' }));
  });
  after(async () => {
    await s?.close();
    await rm(d, { recursive: true, force: true });
  });

  it('two concurrent requests with the same x-request-id do not share tiles', async () => {
    const model = await readFile(await ensureModel('resnet18', 'models/resnet18.onnx'));
    const run = async (seed: number) => {
      const x = randomTensor([1, 3, 224, 224], seed);
      const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: x.dims, data: x.data }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, { binary: true });
      const res = await fetch(`${s.url}/v2/models/resnet18/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: { ...enc.headers, 'x-request-id': 'same-id' } });
      assert.equal(res.status, 200);
      const out = decodeInferResponse(Buffer.from(await res.arrayBuffer()), Object.fromEntries(res.headers.entries())).outputs[0];
      const ref = (await monolithic(model, x, 'input')).logits;
      const c = compareTensors(ref, { dims: out.shape, data: out.data as Float32Array });
      assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef));
    };
    await Promise.all([run(31), run(32)]);
  });
});
