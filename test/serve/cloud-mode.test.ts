import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../../src/config.ts';
import { startLocalStack, withEmulatorDefaults, type LocalStack } from '../../src/compose/stack.ts';
import { decodeInferResponse, encodeInferRequest } from '../../src/http/oip-client.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import { monolithic } from '../../src/exec/verify.ts';
import { ensureModel } from '../../src/models/index.ts';
import { FcInvoker } from '../../src/invoke/fc-invoker.ts';
import { Fc2Invoker } from '../../src/invoke/fc2-invoker.ts';

// STORE=oss with INVOKER=fc and INVOKER=fc2: every tile goes through ali-oss to the loopback OSS
// server and every invocation (gateway -> handler -> master -> workers) through
// @alicloud/fc20230330 (FC 3.0) or @alicloud/fc2 (FC 2.0) to the loopback FC server, both
// verifying signatures and STS tokens. The same checks run for both API generations, and the
// warm latency of each is printed (the same machine, the same run).
const x = randomTensor([2, 3, 224, 224], 5);
let reference: Promise<Awaited<ReturnType<typeof monolithic>>['logits']> | undefined;
const ref = () => (reference ??= ensureModel('resnet18', 'models/resnet18.onnx').then(async (p) => (await monolithic(await readFile(p), x, 'input')).logits));
const latency: Record<string, number[]> = {};
const WARM_RUNS = 3;

async function infer(stack: LocalStack) {
  const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: x.dims, data: x.data }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, { binary: true });
  const t0 = performance.now();
  const res = await fetch(`${stack.url}/v2/models/resnet18-224-2x2/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
  const body = Buffer.from(await res.arrayBuffer());
  const ms = performance.now() - t0;
  assert.equal(res.status, 200, body.toString('utf8').slice(0, 400));
  return { out: decodeInferResponse(body, Object.fromEntries(res.headers.entries())).outputs[0], ms };
}

for (const invoker of ['fc', 'fc2'] as const) {
  describe(`local stack with STORE=oss INVOKER=${invoker}`, () => {
    let stack: LocalStack;
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `fc-cloud-${invoker}-`));
      stack = await startLocalStack(loadConfig(withEmulatorDefaults({ STORE: 'oss', INVOKER: invoker, PORT: '0', DATA_DIR: dir, WORKER_MAX_INSTANCES: '4' })));
    });
    after(async () => {
      await stack?.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('serves the 2x2 plan, equal to monolithic ORT, and cleans up its objects in OSS', async () => {
      assert.ok(invoker === 'fc2' ? stack.invoker instanceof Fc2Invoker : stack.invoker instanceof FcInvoker);
      const { out } = await infer(stack);
      const c = compareTensors(await ref(), { dims: out.shape, data: out.data as Float32Array });
      assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `maxAbsDiff ${c.maxAbsDiff}`);
      assert.deepEqual(await stack.store.list('requests/'), []);
      assert.ok((await stack.store.list('artifacts/submodels/')).length >= 6);
      // Every invocation, nested ones included, went through this API generation, signed and accepted.
      const reqs = stack.fcServer!.requests;
      assert.ok(reqs.length >= 6, `${reqs.length} invocations`);
      assert.deepEqual([...new Set(reqs.map((r) => r.api))], [invoker === 'fc2' ? 'fc2' : 'fc3']);
      assert.deepEqual([...new Set(reqs.map((r) => r.status))], [200]);
      assert.deepEqual([...new Set(reqs.map((r) => r.functionName))].sort(), ['handler', 'master', 'worker']);
      if (invoker === 'fc2') assert.deepEqual([...new Set(reqs.map((r) => r.service))], ['fc-tiled-cnn']);
    });

    it(`warm requests give the same answer (${WARM_RUNS} timed)`, async () => {
      const times: number[] = [];
      for (let i = 0; i < WARM_RUNS; i++) {
        const { out, ms } = await infer(stack);
        const c = compareTensors(await ref(), { dims: out.shape, data: out.data as Float32Array });
        assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `maxAbsDiff ${c.maxAbsDiff}`);
        times.push(ms);
      }
      latency[invoker] = times;
    });
  });
}

describe('cloud-mode configuration', () => {
  it('refuses to run when the config is incomplete, naming the variable', () => {
    assert.throws(() => loadConfig({ STORE: 'oss' }), /OSS_BUCKET/);
    assert.throws(() => loadConfig({ INVOKER: 'fc', ALIBABA_REGION: 'cn-hangzhou' }), /ALIBABA_ACCOUNT_ID/);
    assert.throws(() => loadConfig({ INVOKER: 'fc2', ALIBABA_ACCOUNT_ID: '1' }), /INVOKER=fc2 needs ALIBABA_REGION/);
    assert.throws(() => loadConfig({ INVOKER: 'fc2', ALIBABA_ACCOUNT_ID: '1', ALIBABA_REGION: 'r', WORKER_SERVICE: '9bad' }), /WORKER_SERVICE/);
  });

  it('INVOKER=fc2 names each function\'s service: <FN>_SERVICE, else FC2_SERVICE, else FC 2.0\'s own FC_SERVICE_NAME', () => {
    const base = { INVOKER: 'fc2', ALIBABA_ACCOUNT_ID: '1', ALIBABA_REGION: 'r' };
    assert.deepEqual(loadConfig(base).fc?.services, { handler: 'fc-tiled-cnn', master: 'fc-tiled-cnn', worker: 'fc-tiled-cnn' });
    assert.deepEqual(loadConfig({ ...base, FC_SERVICE_NAME: 'mine' }).fc?.services, { handler: 'mine', master: 'mine', worker: 'mine' });
    assert.deepEqual(loadConfig({ ...base, FC_SERVICE_NAME: 'mine', FC2_SERVICE: 'cnn', WORKER_SERVICE: 'tiles' }).fc?.services, { handler: 'cnn', master: 'cnn', worker: 'tiles' });
    assert.equal(loadConfig({ INVOKER: 'fc', ALIBABA_ACCOUNT_ID: '1', ALIBABA_REGION: 'r' }).fc?.services, undefined);
  });

  after(() => {
    const med = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
    if (latency.fc && latency.fc2) {
      const line = (k: string) => `${k.padEnd(4)} median ${med(latency[k]).toFixed(0)} ms  (runs: ${latency[k].map((t) => t.toFixed(0)).join(', ')})`;
      console.log(`warm resnet18-224-2x2 batch 2, STORE=oss, same run:\n  ${line('fc')}\n  ${line('fc2')}\n  fc2/fc ${(med(latency.fc2) / med(latency.fc)).toFixed(2)}`);
    }
  });
});
