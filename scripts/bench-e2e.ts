// npm run bench:e2e: end-to-end latency of the local stack vs monolithic ORT (same machine, same
// run), bytes through the store vs the paper's merge-and-resplit exchange, peak worker RSS.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { startLocalStack, withEmulatorDefaults } from '../src/serve/stack.ts';
import { ensureModel } from '../src/models/index.ts';
import { planModel, type Grid } from '../src/planner/plan.ts';
import { RESNET18_CUTS } from '../src/planner/committed.ts';
import { exchangeBytes } from '../src/serve/bundles.ts';
import { encodeInferRequest } from '../src/http/oip.ts';
import { createSession } from '../src/runtime/ort.ts';
import { randomTensor } from '../src/tensor/random.ts';
import { runCli } from '../src/cli/common.ts';
import type { Plan } from '../src/plan/schema.ts';

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (b: number) => (b / 1048576).toFixed(1);

runCli(async () => {
  const { values } = parseArgs({ options: { reps: { type: 'string', default: '3' }, sizes: { type: 'string', default: '224,1024' }, workers: { type: 'string', default: '4' }, modes: { type: 'string', default: 'local' } } });
  const reps = Number(values.reps);
  const dir = await mkdtemp(join(tmpdir(), 'fc-bench-'));
  const modelPath = await ensureModel('resnet18', 'models/resnet18.onnx');
  const modelBytes = await readFile(modelPath);
  const plans: { name: string; file: string; plan: Plan }[] = [];
  for (const size of values.sizes.split(',').map(Number)) {
    const schemes: [string, Grid | Grid[]][] = [['2x2', { rows: 2, cols: 2 }], ['4x4', [4, 4, 4, 4, 2, 2].map((n) => ({ rows: n, cols: n }))]];
    for (const [scheme, grid] of schemes) {
      const { plan } = planModel(modelBytes, { inputShape: [1, 3, size, size], grid, cuts: RESNET18_CUTS, name: 'resnet18' });
      const name = `resnet18-${size}-${scheme}`;
      const file = join(dir, `${name}.json`);
      await writeFile(file, JSON.stringify(plan));
      plans.push({ name, file, plan });
    }
  }
  const mono = await createSession(modelBytes, 'monolithic');
  const rows: Record<string, unknown>[] = [];
  const byMode = new Map<string, Map<string, number>>();
  try {
    for (const mode of values.modes.split(',')) {
      // local: FsStore + process pool; cloud: ali-oss and @alicloud/fc20230330 against the loopback OSS and FC servers.
      const env = mode === 'cloud' ? { STORE: 'oss', INVOKER: 'fc' } : {};
      const stack = await startLocalStack(loadConfig(withEmulatorDefaults({
        ...env, PORT: '0', DATA_DIR: join(dir, `data-${mode}`), PLANS: plans.map((p) => p.file).join(','), DEFAULT_PLAN: plans[0].name,
        WORKER_MAX_INSTANCES: values.workers, MAX_BODY_BYTES: String(64 << 20),
      })));
      const latencies = new Map<string, number>();
      byMode.set(mode, latencies);
      try {
        for (const p of plans) {
          const shape = p.plan.input.shape;
          const x = randomTensor(shape, 1);
          const enc = encodeInferRequest({ inputs: [{ name: 'input', shape, data: x.data }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, { binary: true });
          const post = async () => {
            const t0 = performance.now();
            const res = await fetch(`${stack.url}/v2/models/${p.name}/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
            const body = Buffer.from(await res.arrayBuffer());
            if (res.status !== 200) throw new Error(`${p.name}: HTTP ${res.status} ${body.toString('utf8').slice(0, 300)}`);
            const hlen = Number(res.headers.get('inference-header-content-length') ?? body.length);
            return { ms: performance.now() - t0, cost: JSON.parse(body.subarray(0, hlen).toString('utf8')).parameters.cost };
          };
          await post(); // warm: cold starts and session loads happen here
          const dist: number[] = [];
          let cost: any;
          for (let i = 0; i < reps; i++) { const r = await post(); dist.push(r.ms); cost = r.cost; }
          await mono.run({ input: x });
          const m: number[] = [];
          for (let i = 0; i < reps; i++) { const t0 = performance.now(); await mono.run({ input: x }); m.push(performance.now() - t0); }
          const eb = exchangeBytes(p.plan);
          latencies.set(p.name, median(dist));
          const row = {
            mode, plan: p.name, tiles: p.plan.summary.tiles, distributedMs: Math.round(median(dist)), monolithicMs: Math.round(median(m)),
            ratio: +(median(dist) / median(m)).toFixed(2),
            storeBytes: cost.store.bytesRead + cost.store.bytesWritten, storeRequests: cost.store.requests,
            exchangeBytes: eb.direct, mergeResplitBytes: eb.mergeResplit, peakWorkerRssMb: cost.peakWorkerRssMb,
            billedCU: +cost.billed.computeUnits.toFixed(3),
          };
          rows.push(row);
          console.log(`${mode.padEnd(6)} ${p.name.padEnd(20)} ${String(row.tiles).padStart(3)} tiles  distributed ${row.distributedMs} ms  monolithic ${row.monolithicMs} ms  ratio ${row.ratio}  store ${mb(row.storeBytes)} MB in ${row.storeRequests} requests (exchange ${mb(eb.direct)} MB vs merge-and-resplit ${mb(eb.mergeResplit)} MB)  peak worker RSS ${row.peakWorkerRssMb} MB`);
        }
      } finally {
        await stack.close();
      }
    }
  } finally {
    await mono.release();
    await rm(dir, { recursive: true, force: true });
  }
  const local = byMode.get('local');
  const cloud = byMode.get('cloud');
  if (local && cloud) {
    for (const [name, ms] of cloud) console.log(`cloud/local ${name}: ${(ms / local.get(name)!).toFixed(2)}x (SDKs + HTTP + signing vs FsStore + IPC)`);
  }
  console.log(JSON.stringify({ workers: Number(values.workers), reps, rows }));
});
