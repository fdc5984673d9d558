// npm run bench:large: large inputs, the case the framework exists for. For ResNet-18 at each size,
// the hand plans (2x2, 4x4) and the automatic plan (--worker-memory-mb, local profile) run on the
// local stack with workers limited to that memory (an instance over it is killed, like FC's OOM),
// against monolithic ORT in its own process (latency and peak RSS).
// The request goes straight to the master (input put in the store, as the handler does): bodies of
// 50-200 MB exceed FC's 32 MB HTTP and invoke limits.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { startLocalStack } from '../src/compose/stack.ts';
import { ensureModel } from '../src/models/index.ts';
import { planModel, type Grid } from '../src/planner/plan.ts';
import { planModelAuto } from '../src/planner/auto.ts';
import { PlanSpecError } from '../src/planner/errors.ts';
import { RESNET18_CUTS } from '../src/planner/committed.ts';
import { loadProfile } from '../src/cost/profiles.ts';
import { randomTensor, compareTensors } from '../src/tensor/random.ts';
import { MonoProcess } from '../src/bench/mono.ts';
import { runCli } from '../src/cli/common.ts';
import type { Plan } from '../src/plan/schema.ts';

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

runCli(async () => {
  const { values } = parseArgs({ options: {
    sizes: { type: 'string', default: '224,1024,2048,4096' }, 'worker-memory-mb': { type: 'string', default: '1024' },
    workers: { type: 'string', default: '4' }, reps: { type: 'string', default: '2' }, plans: { type: 'string', default: '2x2,4x4,auto' },
  } });
  const memMb = Number(values['worker-memory-mb']);
  const workers = Number(values.workers);
  const modelPath = resolve(await ensureModel('resnet18', 'models/resnet18.onnx'));
  const modelBytes = await readFile(modelPath);
  const profile = loadProfile('local');
  const dir = await mkdtemp(join(tmpdir(), 'fc-large-'));
  const rows: Record<string, unknown>[] = [];
  try {
    for (const size of values.sizes.split(',').map(Number)) {
      const shape = [1, 3, size, size];
      const mono = new MonoProcess();
      const x = randomTensor(shape, 7);
      let ref;
      try {
        ref = await mono.run({ modelPath, inputName: 'input', shape, seed: 7, threads: 0, warmup: 1, runs: Number(values.reps) });
      } finally {
        await mono.close();
      }
      const monoMs = median(ref.times);
      console.log(`${size}x${size}: monolithic ORT ${monoMs.toFixed(0)} ms, peak RSS ${ref.maxRssMb.toFixed(0)} MB`);
      for (const scheme of values.plans.split(',')) {
        let plan: Plan;
        const t0 = performance.now();
        if (scheme === 'auto') {
          try {
            plan = planModelAuto(modelBytes, shape, { objective: 'latency', profile, vcpu: 1, workerMemoryMb: memMb, concurrency: workers, maxWorkers: workers, batch: 1 }, 'resnet18').plan;
          } catch (e) {
            // No plan within the limits (e.g. 1024 MB workers and 4 instances at 4096): a row that says so.
            if (!(e instanceof PlanSpecError)) throw e;
            rows.push({ size, plan: scheme, error: e.message, monolithicMs: Math.round(monoMs), monolithicRssMb: Math.round(ref.maxRssMb) });
            console.log(`  ${scheme.padEnd(4)} no plan: ${e.message}`);
            continue;
          }
        } else {
          const grid: Grid | Grid[] = scheme === '2x2' ? { rows: 2, cols: 2 } : [4, 4, 4, 4, 2, 2].map((n) => ({ rows: n, cols: n }));
          plan = planModel(modelBytes, { inputShape: shape, grid, cuts: RESNET18_CUTS, name: 'resnet18', maxWorkers: workers }).plan;
        }
        const planMs = performance.now() - t0;
        const name = `resnet18-${size}-${scheme}`;
        const file = join(dir, `${name}.json`);
        await writeFile(file, JSON.stringify(plan));
        // A fresh stack per plan: worker peak RSS is a per-process high-water mark.
        const stack = await startLocalStack(loadConfig({
          PORT: '0', DATA_DIR: join(dir, `data-${name}`), PLANS: file, DEFAULT_PLAN: name, MODEL_PATH: modelPath,
          WORKER_MAX_INSTANCES: String(workers), WORKER_MEMORY_MB: String(memMb), WORKER_VCPU: String(Math.min(1, memMb / 1024)), FUNCTION_TIMEOUT_MS: '600000',
        }));
        const planKey = stack.registry.models.find((m) => m.name === name)!.planKey!;
        const times: number[] = [];
        let peak = 0;
        let error: string | undefined;
        let diff: { maxAbsDiff: number; maxRef: number } | undefined;
        try {
          for (let i = 0; i <= Number(values.reps); i++) {
            const rid = `large${size}${scheme.replace('x', '')}${i}`;
            const t1 = performance.now();
            const r = await stack.request(planKey, x, rid);
            if (i > 0) times.push(performance.now() - t1); // i = 0 warms up (cold starts, session loads)
            for (const s of r.report.units) peak = Math.max(peak, s.peakWorkerRssBytes / 1048576);
            diff ??= compareTensors(ref.output, Object.values(r.outputs)[0]);
          }
        } catch (e) {
          error = (e as Error).message.slice(0, 200);
        } finally {
          await stack.close();
        }
        const row = {
          size, plan: scheme, groups: plan.summary.groups, tiles: plan.summary.tiles, planMs: Math.round(planMs),
          distributedMs: times.length ? Math.round(median(times)) : null, monolithicMs: Math.round(monoMs),
          ratio: times.length ? +(median(times) / monoMs).toFixed(2) : null,
          peakWorkerRssMb: Math.round(peak), workerMemoryMb: memMb, withinLimit: !error && peak <= memMb, monolithicRssMb: Math.round(ref.maxRssMb),
          predictedMs: plan.prediction ? Math.round(plan.prediction.latencyMs) : null, predictedPeakMb: plan.prediction ? Math.round(plan.prediction.workerPeakMb) : null,
          exact: diff ? diff.maxAbsDiff <= 1e-4 * Math.max(1, diff.maxRef) : null, error,
        };
        rows.push(row);
        console.log(`  ${scheme.padEnd(4)} ${String(row.tiles).padStart(3)} tiles in ${row.groups} groups: ${error ? `FAILED: ${error}` : `${row.distributedMs} ms (x${row.ratio} monolithic), peak worker RSS ${row.peakWorkerRssMb} MB${row.predictedPeakMb ? ` (predicted ${row.predictedPeakMb} MB, ${row.predictedMs} ms)` : ''}, exact ${row.exact}`}`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ workerMemoryMb: memMb, workers, rows }));
});
