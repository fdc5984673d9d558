import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { envFromArgs } from '../../src/cli/config-args.ts';
import { startLocalStack, type LocalStack } from '../../src/compose/stack.ts';
import { decodeInferResponse, encodeInferRequest } from '../../src/http/oip-client.ts';
import { randomTensor, compareTensors } from '../../src/tensor/random.ts';
import { ensureModel } from '../../src/models/index.ts';
import { requestCostSchema } from '../../src/serve/cost-report.ts';
import { runOrt } from '../helpers/ort.ts';
import { skipWithoutRedis, startRedis, type RedisServer } from '../../src/bench/redis-server.ts';

// End to end with EXCHANGE=redis: gateway -> handler -> master -> worker processes, strips and
// partials through a real redis-server, the input and artifacts through the filesystem store.
let redis: RedisServer;
let modelBytes: Buffer;

const post = async (stack: LocalStack, model: string, shape: number[], seed: number) => {
  const x = randomTensor(shape, seed);
  const enc = encodeInferRequest({ inputs: [{ name: 'input', shape, data: x.data }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, { binary: true });
  const res = await fetch(`${stack.url}/v2/models/${model}/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
  return { x, res, body: Buffer.from(await res.arrayBuffer()) };
};

describe('local stack with the Redis exchange', { skip: skipWithoutRedis }, () => {
  let stack: LocalStack;
  let dir: string;
  before(async () => {
    redis = await startRedis();
    dir = await mkdtemp(join(tmpdir(), 'fc-e2e-redis-'));
    modelBytes = await readFile(await ensureModel('resnet18', 'models/resnet18.onnx'));
    // As `npm start -- --exchange redis --redis-url redis://HOST:PORT` would configure it.
    const flags = envFromArgs(['--exchange', 'redis', '--redis-url', redis.url]);
    stack = await startLocalStack(loadConfig({ ...flags, PORT: '0', DATA_DIR: dir, WORKER_MAX_INSTANCES: '4' }));
  });
  after(async () => {
    await stack?.close();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const expectEqual = async (model: string, shape: number[], seed: number) => {
    const { x, res, body } = await post(stack, model, shape, seed);
    assert.equal(res.status, 200, body.toString('utf8').slice(0, 500));
    const d = decodeInferResponse(body, Object.fromEntries(res.headers.entries()));
    const out = d.outputs[0];
    const ref = (await runOrt(modelBytes, { input: x })).logits;
    assert.deepEqual(out.shape, ref.dims);
    const c = compareTensors(ref, { dims: out.shape, data: out.data as Float32Array });
    assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `${model}: maxAbsDiff ${c.maxAbsDiff}`);
    return requestCostSchema.parse(d.parameters?.cost);
  };

  for (const model of ['resnet18-224-2x2', 'resnet18-224-4x4']) {
    it(`${model} equals monolithic ORT and leaves no keys in Redis nor the store`, async () => {
      const cost = await expectEqual(model, [1, 3, 224, 224], 31);
      // Strips and partials went through Redis, counted apart from the store's traffic, which is
      // the input (written once, read once per worker) and whole tensors.
      assert.ok(cost.exchange, 'parameters.cost.exchange');
      assert.ok(cost.exchange.bytesWritten > 0 && cost.exchange.bytesRead > 0 && cost.exchange.requests > 0);
      assert.ok(cost.store.requests > 0 && cost.store.bytesWritten > 0);
      assert.equal(await redis.client.dbsize(), 0);
      assert.deepEqual(await stack.store.list('requests/'), []);
    });
  }

  it('concurrent requests of several batch sizes do not mix, and leave no keys', async () => {
    await Promise.all([41, 42, 43].map((seed, i) => expectEqual(i % 2 ? 'resnet18-224-2x2' : 'resnet18', [1 + (i % 2), 3, 224, 224], seed)));
    assert.equal(await redis.client.dbsize(), 0);
  });
});

describe('a failed request with the Redis exchange', { skip: skipWithoutRedis }, () => {
  let weak: LocalStack;
  let server: RedisServer;
  let dir: string;
  before(async () => {
    server = await startRedis();
    dir = await mkdtemp(join(tmpdir(), 'fc-e2e-redis-weak-'));
    // 128 MB workers: loading a group exceeds it and the pool kills them like FC's OOM.
    weak = await startLocalStack(loadConfig({ PORT: '0', DATA_DIR: dir, EXCHANGE: 'redis', REDIS_URL: server.url, WORKER_MEMORY_MB: '128', WORKER_VCPU: '0.1', WORKER_MAX_INSTANCES: '2' }));
  });
  after(async () => {
    await weak?.close();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('fails with a 502 (test/serve/e2e.test.ts checks its message) and leaves no keys behind', async () => {
    const { res, body } = await post(weak, 'resnet18-224-2x2', [1, 3, 224, 224], 1);
    assert.equal(res.status, 502, body.toString('utf8').slice(0, 300));
    // Workers still finishing are swept again a few seconds later; the TTL is the last net.
    const until = Date.now() + 8000;
    while (await server.client.dbsize() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    assert.equal(await server.client.dbsize(), 0, `keys left: ${(await server.client.keys('*')).join(', ')}`);
    assert.deepEqual(await weak.store.list('requests/'), []);
  });
});
