/**
 * API keys, deadlines and hostile input on the real local stack: the gateway, the handler in its
 * own process (which gets API_KEYS through its environment), master and workers.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { startLocalStack, type LocalStack } from '../../src/compose/stack.ts';
import { decodeInferResponse, encodeInferRequest } from '../../src/http/oip-client.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import { monolithic } from '../../src/exec/verify.ts';
import { ensureModel } from '../../src/models/index.ts';
import { runFuzz } from './fuzz-corpus.ts';

const KEY = 'stack-key-0123456789abcdef';
const PREDICTED_MS = 5000;
let stack: LocalStack;
let dir: string;
const logged: string[] = [];
const realWrite = process.stderr.write.bind(process.stderr);

describe('local stack with API keys and deadlines', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fc-access-'));
    // The committed 2x2 plan with a recorded prediction, as the automatic planner writes one.
    const plan = JSON.parse(await readFile('plans/resnet18-224-2x2.json', 'utf8'));
    plan.prediction = {
      profile: 'test', objective: 'latency', vcpu: 1, workerMemoryMb: 2048, concurrency: 1, batch: 1, latencyMs: PREDICTED_MS,
      workerPeakMb: 400, invocations: 5, storeRequests: 20, storeBytes: 1e6, computeUnits: 1, usdPer1000: 0.1,
    };
    await mkdir(join(dir, 'plans'));
    await writeFile(join(dir, 'plans/resnet18-224-2x2.json'), JSON.stringify(plan));
    // Everything the stack and its processes print, to check that no key is ever logged.
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      logged.push(String(chunk));
      return (realWrite as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    stack = await startLocalStack(loadConfig({
      PORT: '0', DATA_DIR: join(dir, 'data'), PLANS: join(dir, 'plans/resnet18-224-2x2.json'), DEFAULT_PLAN: 'resnet18-224-2x2', WORKER_MAX_INSTANCES: '4',
      API_KEYS: `${KEY},second-key-abcdefghijklmnop`, MAX_BODY_BYTES: String(1 << 20),
    }));
  });
  after(async () => {
    process.stderr.write = realWrite;
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const inferReq = (seed: number) => {
    const x = randomTensor([1, 3, 224, 224], seed);
    return { x, enc: encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 224, 224], data: x.data }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, { binary: true }) };
  };

  it('no key → 401, wrong key → 401, right key → the right answer; health needs none', async () => {
    assert.equal((await fetch(`${stack.url}/v2/health/live`)).status, 200);
    assert.equal((await fetch(`${stack.url}/v2/health/ready`)).status, 200);
    const none = await fetch(`${stack.url}/v2/models/resnet18`);
    assert.equal(none.status, 401);
    assert.equal((await none.json()).code, 'unauthorized');
    const { x, enc } = inferReq(3);
    const wrong = await fetch(`${stack.url}/v2/models/resnet18/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: { ...enc.headers, authorization: 'Bearer not-the-key-0123456789' } });
    assert.equal(wrong.status, 401);
    assert.deepEqual(await wrong.json(), { error: 'invalid API key', code: 'unauthorized' });
    assert.equal((await fetch(`${stack.url}/v2/models/resnet18`, { headers: { 'x-api-key': 'second-key-abcdefghijklmnop' } })).status, 200);

    const ok = await fetch(`${stack.url}/v2/models/resnet18/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: { ...enc.headers, authorization: `Bearer ${KEY}` } });
    const body = Buffer.from(await ok.arrayBuffer());
    assert.equal(ok.status, 200, body.toString('utf8').slice(0, 300));
    const out = decodeInferResponse(body, Object.fromEntries(ok.headers.entries())).outputs[0]!;
    const ref = (await monolithic(await readFile(await ensureModel('resnet18', 'models/resnet18.onnx')), x, 'input')).logits!;
    const c = compareTensors(ref, { dims: out.shape, data: out.data as Float32Array });
    assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `maxAbsDiff ${c.maxAbsDiff}`);
  });

  it('the handler function checks keys itself (FC passes requests straight to it)', async () => {
    const direct = async (headers: Record<string, string>) => {
      const ev = {
        version: 'v1', rawPath: '/v2/models/resnet18', body: '', isBase64Encoded: false, headers, queryParameters: {},
        requestContext: { http: { method: 'GET', path: '/v2/models/resnet18' }, requestId: `direct-${Object.keys(headers).length}` },
      };
      const res = await stack.invoker.invoke('handler', Buffer.from(JSON.stringify(ev)));
      return JSON.parse(res.payload.toString('utf8')) as { statusCode: number; body: string };
    };
    const none = await direct({});
    assert.equal(none.statusCode, 401);
    assert.equal(JSON.parse(none.body).code, 'unauthorized');
    assert.equal((await direct({ 'X-Api-Key': 'wrong-key-0123456789abc' })).statusCode, 401);
    assert.equal((await direct({ Authorization: `Bearer ${KEY}` })).statusCode, 200);
  });

  it('a deadline shorter than the plan\'s prediction is refused up front: 503 + Retry-After, nothing stored', async () => {
    const { enc } = inferReq(4);
    const t0 = performance.now();
    const r = await fetch(`${stack.url}/v2/models/resnet18/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: { ...enc.headers, authorization: `Bearer ${KEY}`, 'x-request-timeout-ms': '1000' } });
    const body = await r.json();
    assert.equal(r.status, 503, JSON.stringify(body));
    assert.equal(body.code, 'deadline_unmeetable');
    assert.equal(body.predictedMs, PREDICTED_MS);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.ok(performance.now() - t0 < 1000, 'answered before the deadline');
    assert.deepEqual(await stack.store.list('requests/'), []);
    const bad = await fetch(`${stack.url}/v2/models/resnet18/infer`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${KEY}`, 'x-request-timeout-ms': '-3' } });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).code, 'invalid_timeout');
  });

  it('fuzz: every answer JSON, no 500s, the stack stays up and the store clean; no key in any log', async () => {
    const n = await runFuzz(stack.url, KEY, 'resnet18');
    assert.ok(n > 100);
    const { enc } = inferReq(5);
    const ok = await fetch(`${stack.url}/v2/models/resnet18/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: { ...enc.headers, 'x-api-key': KEY } });
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    assert.deepEqual(await stack.store.list('requests/'), []);
    const all = logged.join('');
    assert.ok(!all.includes(KEY) && !all.includes('second-key-abcdefghijklmnop'), 'an API key reached the logs');
  });
});
