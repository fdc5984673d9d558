import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { startLocalStack, withEmulatorDefaults, type LocalStack } from '../../src/serve/stack.ts';
import { decodeInferResponse, encodeInferRequest } from '../../src/http/oip.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import { monolithic } from '../../src/exec/verify.ts';
import { ensureModel } from '../../src/models/index.ts';

// STORE=oss INVOKER=fc: every tile goes through ali-oss to the loopback OSS server and every
// invocation (gateway -> handler -> master -> workers) through @alicloud/fc20230330 to the
// loopback FC server, both verifying signatures and STS tokens.
describe('local stack with STORE=oss INVOKER=fc', () => {
  let stack: LocalStack;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fc-cloud-'));
    stack = await startLocalStack(loadConfig(withEmulatorDefaults({ STORE: 'oss', INVOKER: 'fc', PORT: '0', DATA_DIR: dir, WORKER_MAX_INSTANCES: '4' })));
  });
  after(async () => {
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the 2x2 plan, equal to monolithic ORT, and cleans up its objects in OSS', async () => {
    const x = randomTensor([2, 3, 224, 224], 5);
    const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: x.dims, data: x.data }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, { binary: true });
    const res = await fetch(`${stack.url}/v2/models/resnet18-224-2x2/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200, body.toString('utf8').slice(0, 400));
    const out = decodeInferResponse(body, Object.fromEntries(res.headers.entries())).outputs[0];
    const ref = (await monolithic(await readFile(await ensureModel('resnet18', 'models/resnet18.onnx')), x, 'input')).logits;
    const c = compareTensors(ref, { dims: out.shape, data: out.data as Float32Array });
    assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `maxAbsDiff ${c.maxAbsDiff}`);
    assert.deepEqual(await stack.store.list('requests/'), []);
    assert.ok((await stack.store.list('artifacts/submodels/')).length >= 6);
  });

  it('refuses to run when the config is incomplete, naming the variable', () => {
    assert.throws(() => loadConfig({ STORE: 'oss' }), /OSS_BUCKET/);
    assert.throws(() => loadConfig({ INVOKER: 'fc', ALIBABA_REGION: 'cn-hangzhou' }), /ALIBABA_ACCOUNT_ID/);
  });
});
