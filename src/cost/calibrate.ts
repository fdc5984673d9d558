import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildModel } from '../models/index.ts';
import { planModel } from '../planner/plan.ts';
import { RESNET18_CUTS } from '../planner/committed.ts';
import { createSession, type ModelSession } from '../runtime/ort.ts';
import { randomTensor } from '../tensor/random.ts';
import { cropRegion } from '../tensor/nchw.ts';
import { runTile } from '../exec/tile.ts';
import { FsStore } from '../store/fs-store.ts';
import { ProcessPoolInvoker } from '../invoke/process-pool.ts';
import type { GroupStage } from '../plan/schema.ts';
import { predictPlan, type CostProfile } from './model.ts';
import { loadConfig } from '../config.ts';
import { startLocalStack } from '../serve/stack.ts';
import { ensureModel } from '../models/index.ts';
import { writeFile } from 'node:fs/promises';
import type { Plan } from '../plan/schema.ts';

const MB = 1048576;
const here = dirname(fileURLToPath(import.meta.url));
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Time to run every tile of every group once (warm sessions), and the FLOPs done. */
async function tileThroughput(threads: number): Promise<{ gflops: number; sessionMsPerMB: number; weightRssFactor: number }> {
  const bytes = buildModel('resnet18');
  const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 224, 224], grid: { rows: 2, cols: 2 }, cuts: RESNET18_CUTS });
  const groups = plan.stages.filter((s): s is GroupStage => s.kind === 'group');
  const sessions: ModelSession[] = [];
  const rss0 = process.memoryUsage().rss;
  let loadMs = 0;
  let subBytes = 0;
  let weightBytes = 0;
  for (const g of groups) {
    const t0 = performance.now();
    sessions.push(await createSession(subModels.get(g.id)!, `group ${g.id}`, { threads }));
    loadMs += performance.now() - t0;
    subBytes += g.subModel.bytes;
    weightBytes += g.bytes.weights;
  }
  const rss1 = process.memoryUsage().rss;
  const inputs = groups.map((g) => Object.fromEntries(g.inputs.map((i) => [i.name, randomTensor([1, ...i.shape.slice(1)], 1)])));
  const runAll = async () => {
    for (const [k, g] of groups.entries()) {
      for (const t of g.tiles) {
        const spatial = Object.fromEntries(t.inputs.map((i) => [i.tensor, cropRegion(inputs[k][i.tensor], i.region)]));
        await runTile(sessions[k], g, t, spatial, {});
      }
    }
  };
  await runAll();
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    await runAll();
    times.push(performance.now() - t0);
  }
  await Promise.all(sessions.map((s) => s.release()));
  const flops = groups.reduce((a, g) => a + g.flops.tiles, 0);
  return { gflops: flops / (median(times) / 1000) / 1e9, sessionMsPerMB: loadMs / (subBytes / MB), weightRssFactor: Math.max(1, (rss1 - rss0) / weightBytes) };
}

/**
 * RSS growth of running large tiles (ORT's arena keeps what a run allocated, im2col buffers
 * included) over the plan's activation estimate; the largest ratio over ResNet-18's groups.
 */
async function activationFactor(): Promise<number> {
  const bytes = buildModel('resnet18');
  const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 768, 768], grid: { rows: 1, cols: 1 }, cuts: RESNET18_CUTS });
  let factor = 1;
  for (const g of plan.stages.filter((s): s is GroupStage => s.kind === 'group').slice(0, 3)) {
    const session = await createSession(subModels.get(g.id)!, `group ${g.id}`, { threads: 1 });
    const x = randomTensor([1, ...g.inputs[0].shape.slice(1)], 2);
    const before = process.memoryUsage().rss;
    await runTile(session, g, g.tiles[0], { [g.inputs[0].name]: x }, {});
    const after = process.memoryUsage().rss;
    await session.release();
    factor = Math.max(factor, (after - before) / g.tiles[0].peakBytes);
  }
  return factor;
}

async function storeFigures(): Promise<{ latencyMs: number; bandwidthMBps: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'fc-calib-'));
  try {
    const store = new FsStore(dir);
    const small = Buffer.alloc(1024, 1);
    const lat: number[] = [];
    for (let i = 0; i < 40; i++) {
      const t0 = performance.now();
      await store.put(`s/${i}`, small);
      await store.get(`s/${i}`);
      lat.push((performance.now() - t0) / 2);
    }
    const big = Buffer.alloc(32 * MB, 7);
    const t0 = performance.now();
    for (let i = 0; i < 4; i++) {
      await store.put(`b/${i}`, big);
      await store.get(`b/${i}`);
    }
    const s = (performance.now() - t0) / 1000;
    return { latencyMs: median(lat), bandwidthMBps: (8 * 32) / s };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function invokeFigures(): Promise<{ overheadMs: number; coldStartMs: number; baseRssMb: number }> {
  const pool = new ProcessPoolInvoker({ functions: { probe: { entry: resolve(here, 'probe-function.ts'), maxInstances: 1, timeoutMs: 60_000 } }, logs: 'silent' });
  try {
    const first = await pool.invoke('probe', Buffer.from('x'));
    const times: number[] = [];
    const payload = Buffer.alloc(64 * 1024, 3);
    let rss = first.peakRssBytes ?? 0;
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      const r = await pool.invoke('probe', payload);
      times.push(performance.now() - t0 - r.durationMs);
      rss = Math.max(rss, r.peakRssBytes ?? 0);
    }
    return { overheadMs: median(times), coldStartMs: first.initMs ?? 0, baseRssMb: rss / MB };
  } finally {
    await pool.close();
  }
}

/** Warm latency (median) and peak worker RSS of a plan served by a fresh local stack. */
async function measureInStack(plan: Plan, workers: number, reps: number): Promise<{ ms: number; peakWorkerMb: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'fc-calib-stack-'));
  const file = join(dir, 'plan.json');
  await writeFile(file, JSON.stringify(plan));
  await ensureModel('resnet18', 'models/resnet18.onnx');
  const stack = await startLocalStack(loadConfig({ PORT: '0', DATA_DIR: dir, PLANS: file, DEFAULT_PLAN: 'plan', WORKER_MAX_INSTANCES: String(workers), WORKER_THREADS: '1', FUNCTION_TIMEOUT_MS: '600000' }));
  try {
    const planKey = stack.registry.models[0].planKey;
    const times: number[] = [];
    let peak = 0;
    for (let i = 0; i < reps + 1; i++) {
      const rid = `calib${i}`;
      const t0 = performance.now();
      const r = await stack.request(planKey, randomTensor(plan.input.shape, i), rid);
      if (i > 0) times.push(performance.now() - t0);
      for (const st of r.report.units) peak = Math.max(peak, st.peakWorkerRssBytes / MB);
    }
    return { ms: median(times), peakWorkerMb: peak };
  } finally {
    await stack.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * What micro-benchmarks cannot see, fitted on the real stack: the cost of a worker round
 * (scheduling, IPC, JSON, codec copies) on a small plan dominated by it (ResNet-18 224, 2x2),
 * the effective store bandwidth (piece copies included) on a large one (1024, 2x2), and the
 * activation memory factor from that run's peak worker RSS. One constant each, from two plans;
 * bench:large then compares predictions with measurements on other plans and sizes.
 */
async function fitInStack(base: CostProfile, workers: number, log: (s: string) => void): Promise<Partial<CostProfile>> {
  const bytes = buildModel('resnet18');
  const small = planModel(bytes, { inputShape: [1, 3, 224, 224], grid: { rows: 2, cols: 2 }, cuts: RESNET18_CUTS }).plan;
  const large = planModel(bytes, { inputShape: [1, 3, 1024, 1024], grid: { rows: 2, cols: 2 }, cuts: RESNET18_CUTS }).plan;
  const a = await measureInStack(small, workers, 4);
  const b = await measureInStack(large, workers, 2);
  log(`  224 2x2: ${a.ms.toFixed(0)} ms; 1024 2x2: ${b.ms.toFixed(0)} ms, peak worker ${b.peakWorkerMb.toFixed(0)} MB`);
  const lanes = Math.min(workers, base.maxParallelWorkers);
  const rounds = (p: Plan) => predictPlan(p, { profile: base, vcpu: 1, memoryMb: 4096, batch: 1, concurrency: workers }).groups.reduce((s, g) => s + Math.ceil(g.tiles / lanes), 0) + 1;
  const fit = (bw: number) => {
    const prof = { ...base, storeBandwidthMBps: bw, invokeOverheadMs: 0, requestOverheadMs: 0 };
    const ovh = Math.max(0, (a.ms - predictPlan(small, { profile: prof, vcpu: 1, memoryMb: 4096, batch: 1, concurrency: workers }).latencyMs) / rounds(small));
    const predB = predictPlan(large, { profile: { ...prof, invokeOverheadMs: ovh }, vcpu: 1, memoryMb: 4096, batch: 1, concurrency: workers }).latencyMs;
    return { ovh, predB };
  };
  // Prediction falls as bandwidth rises: bisect (in log space) for the bandwidth that matches.
  let lo = 20;
  let hi = 20_000;
  for (let k = 0; k < 40; k++) {
    const mid = Math.sqrt(lo * hi);
    if (fit(mid).predB > b.ms) lo = mid; else hi = mid;
  }
  const bw = Math.sqrt(lo * hi);
  const { ovh } = fit(bw);
  const maxTile = Math.max(...large.stages.flatMap((s) => (s.kind === 'group' ? s.tiles.map((t) => t.peakBytes) : [])));
  const weights = large.stages.reduce((x, s) => x + (s.kind === 'group' ? s.bytes.weights : 0), 0);
  const act = Math.max(base.activationRssFactor, ((b.peakWorkerMb - base.baseRssMb) * MB - weights * base.weightRssFactor) / maxTile);
  return { invokeOverheadMs: +ovh.toFixed(2), storeBandwidthMBps: Math.round(bw), activationRssFactor: +act.toFixed(2) };
}

/** Measures this machine and returns the `local` profile for the local stack. */
export async function calibrateLocal(log: (s: string) => void = () => undefined): Promise<CostProfile> {
  log('activation memory...');
  const act = await activationFactor();
  log(`  x${act.toFixed(2)}`);
  log('tile throughput, 1 thread...');
  const one = await tileThroughput(1);
  log(`  ${one.gflops.toFixed(1)} GFLOP/s; session load ${one.sessionMsPerMB.toFixed(1)} ms/MB; weights RSS x${one.weightRssFactor.toFixed(2)}`);
  log('tile throughput, 2 threads...');
  const two = await tileThroughput(2);
  log(`  ${two.gflops.toFixed(1)} GFLOP/s`);
  log('store...');
  const st = await storeFigures();
  log(`  ${st.latencyMs.toFixed(2)} ms per request, ${st.bandwidthMBps.toFixed(0)} MB/s`);
  log('invocations...');
  const inv = await invokeFigures();
  log(`  ${inv.overheadMs.toFixed(2)} ms per invoke, cold start ${inv.coldStartMs.toFixed(0)} ms, base RSS ${inv.baseRssMb.toFixed(0)} MB`);
  const base: CostProfile = {
    name: 'local',
    notes: `Calibrated on ${new Date().toISOString().slice(0, 10)} by npm run bench -- --calibrate (ResNet-18 tiles, FsStore, ProcessPoolInvoker).`,
    gflopsPerVcpu: +one.gflops.toFixed(2),
    threadEfficiency: +Math.min(1, Math.max(0, two.gflops / one.gflops - 1)).toFixed(3),
    invokeOverheadMs: +inv.overheadMs.toFixed(2),
    coldStartMs: Math.round(inv.coldStartMs),
    coldStartProbability: 0,
    // The filesystem store wakes waiters natively: no polls.
    pollIntervalMs: 0,
    storeLatencyMs: +st.latencyMs.toFixed(3),
    storeBandwidthMBps: Math.round(st.bandwidthMBps),
    sessionLoadMsPerMB: +one.sessionMsPerMB.toFixed(2),
    sessionHitRate: 1,
    baseRssMb: Math.round(inv.baseRssMb),
    weightRssFactor: +one.weightRssFactor.toFixed(2),
    activationRssFactor: +act.toFixed(2),
    masterGflops: +two.gflops.toFixed(2),
    requestOverheadMs: +(4 * inv.overheadMs + 4 * st.latencyMs).toFixed(2),
    maxParallelWorkers: availableParallelism(),
  };
  log('fitting on the real stack (ResNet-18 224 and 1024, 2x2, 4 workers)...');
  const fitted = await fitInStack(base, 4, log);
  log(`  ${fitted.invokeOverheadMs} ms per worker round (bare IPC round trip ${inv.overheadMs.toFixed(2)} ms), effective store bandwidth ${fitted.storeBandwidthMBps} MB/s (raw ${st.bandwidthMBps.toFixed(0)}), activation memory x${fitted.activationRssFactor}`);
  return { ...base, ...fitted };
}
