// Store faults on the local stack: STORE=oss with the loopback OSS server injecting random faults
// (OSS_EMULATOR_FAULTS), requests over HTTP from a few clients, every answer compared with
// monolithic ORT. Prints success rate, wrong answers, store retries from parameters.cost, the
// faults injected and the objects left under requests/.
//   tsx scripts/faults.ts [--faults error:0.05,truncate:0.01,corrupt:0.01] [--requests 40] [--clients 4]
//     [--plan resnet18-224-2x2] [--workers 4] [--seed 1]
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { startLocalStack, withEmulatorDefaults } from '../src/compose/stack.ts';
import { parseFaultSpec } from '../src/emulators/oss-faults.ts';
import { ensureModel } from '../src/models/index.ts';
import { decodeInferResponse, encodeInferRequest } from '../src/http/oip-client.ts';
import { createSession } from '../src/runtime/ort.ts';
import { compareTensors, randomTensor } from '../src/tensor/random.ts';
import { runCli, UsageError } from '../src/cli/common.ts';
import { requestCostSchema } from '../src/serve/cost-report.ts';

const posInt = (v: string, name: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got ${v}`);
  return n;
};

runCli(async () => {
  const { values } = parseArgs({
    options: {
      faults: { type: 'string', default: 'error:0.05,truncate:0.01,corrupt:0.01' },
      requests: { type: 'string', default: '40' }, clients: { type: 'string', default: '4' },
      plan: { type: 'string', default: 'resnet18-224-2x2' }, workers: { type: 'string', default: '4' }, seed: { type: 'string', default: '1' },
    },
  });
  const spec = parseFaultSpec(values.faults);
  const requests = posInt(values.requests, 'requests');
  const clients = posInt(values.clients, 'clients');
  const seed = posInt(values.seed, 'seed');
  const planFile = `plans/${values.plan}.json`;
  const plan = JSON.parse(await readFile(planFile, 'utf8').catch(() => { throw new UsageError(`no plan ${planFile}`); })) as { input: { shape: number[] } };
  const shape = [1, ...plan.input.shape.slice(1)];
  const modelPath = await ensureModel('resnet18', 'models/resnet18.onnx');
  const mono = await createSession(await readFile(modelPath), 'monolithic');
  const dir = await mkdtemp(join(tmpdir(), 'fc-faults-'));
  const t0 = performance.now();
  const stack = await startLocalStack(loadConfig(withEmulatorDefaults({
    STORE: 'oss', OSS_EMULATOR_FAULTS: values.faults, PORT: '0', DATA_DIR: dir, PLANS: planFile, DEFAULT_PLAN: values.plan,
    WORKER_MAX_INSTANCES: values.workers, MAX_INFLIGHT: String(clients), LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  })));
  console.log(`stack up in ${((performance.now() - t0) / 1000).toFixed(1)} s (publishing under faults included); faults ${JSON.stringify(spec)}`);
  let ok = 0;
  let wrong = 0;
  let retries = 0;
  let retriedRequests = 0;
  const failures: string[] = [];
  const latencies: number[] = [];
  try {
    let next = 0;
    const client = async () => {
      while (next < requests) {
        const i = next++;
        const x = randomTensor(shape, seed * 100_000 + i);
        const enc = encodeInferRequest({ inputs: [{ name: 'input', shape, data: x.data }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, { binary: true });
        const s = performance.now();
        const res = await fetch(`${stack.url}/v2/models/${values.plan}/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
        const body = Buffer.from(await res.arrayBuffer());
        latencies.push(performance.now() - s);
        if (res.status !== 200) {
          failures.push(`#${i} HTTP ${res.status}: ${body.toString('utf8').slice(0, 300)}`);
          continue;
        }
        const d = decodeInferResponse(body, Object.fromEntries(res.headers.entries()));
        const cost = requestCostSchema.parse(d.parameters?.cost);
        retries += cost.store.retries;
        if (cost.store.retries > 0) retriedRequests++;
        const ref = (await mono.run({ input: x })).logits;
        const c = compareTensors(ref, { dims: d.outputs[0].shape, data: d.outputs[0].data as Float32Array });
        if (c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef)) ok++;
        else {
          wrong++;
          failures.push(`#${i} WRONG ANSWER: maxAbsDiff ${c.maxAbsDiff}`);
        }
      }
    };
    await Promise.all(Array.from({ length: clients }, client));
    const left = await stack.store.list('requests/');
    const st = stack.ossServer!.stats();
    const sorted = latencies.slice().sort((a, b) => a - b);
    const pct = (p: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]);
    for (const f of failures) console.log(f);
    const summary = {
      requests, succeeded: ok, successRate: +(ok / requests).toFixed(4), wrongAnswers: wrong,
      storeRetries: retries, requestsWithRetries: retriedRequests, objectsLeft: left.length,
      ossRequests: st.requests, faultsInjected: st.faults, p50Ms: pct(0.5), p99Ms: pct(0.99),
    };
    console.log(`${ok}/${requests} succeeded (${(100 * ok / requests).toFixed(1)}%), ${wrong} wrong answers, ${retries} store retries in parameters.cost (${retriedRequests} requests retried), ${left.length} objects left under requests/; the OSS server saw ${st.requests} requests and injected ${JSON.stringify(st.faults)}; p50 ${summary.p50Ms} ms, p99 ${summary.p99Ms} ms`);
    console.log(JSON.stringify(summary));
    return wrong === 0 && left.length === 0 && ok / requests >= 0.95 ? 0 : 1;
  } finally {
    await stack.close();
    await mono.release();
    await rm(dir, { recursive: true, force: true });
  }
});
