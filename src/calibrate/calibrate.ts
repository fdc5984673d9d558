// The calibration harness: measures this machine (tiles, store, invocations) and fits the cost
// model on the real local stack. Composition code, so it lives above the core it calibrates.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildModel } from '../models/index.ts';
import { planModel } from '../planner/plan.ts';
import { COMMITTED_PLANS, RESNET18_CUTS } from '../planner/committed.ts';
import { createSession, type ModelSession } from '../runtime/ort.ts';
import { randomTensor } from '../tensor/random.ts';
import { cropRegion } from '../tensor/nchw.ts';
import { runTile } from '../exec/tile.ts';
import { FsStore } from '../store/fs-store.ts';
import { ProcessPoolInvoker } from '../invoke/process-pool.ts';
import type { GroupStage } from '../plan/schema.ts';
import { predictPlan, type CostProfile } from '../cost/model.ts';
import { fitProfile, type FitRow, type FitResult } from '../cost/fit.ts';
import type { Plan } from '../plan/schema.ts';
import { loadConfig } from '../config.ts';
import { startLocalStack } from '../compose/stack.ts';
import { ensureModel } from '../models/index.ts';

const MB = 1048576;
const here = dirname(fileURLToPath(import.meta.url));
/** Passes of the fit's bench rows, pooled per configuration. */
const FIT_PASSES = 3;
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Time to run every tile of every group once (warm sessions), and the FLOPs done. */
async function tileThroughput(threads: number, n = 2): Promise<{ gflops: number; sessionMsPerMB: number; weightRssFactor: number; ms: number; flops: number; runs: number }> {
  const bytes = buildModel('resnet18');
  const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 224, 224], grid: { rows: n, cols: n }, cuts: RESNET18_CUTS });
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
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    await runAll();
    times.push(performance.now() - t0);
  }
  await Promise.all(sessions.map((s) => s.release()));
  const flops = groups.reduce((a, g) => a + g.flops.tiles, 0);
  const runs = groups.reduce((a, g) => a + g.tiles.length, 0);
  return { ms: median(times), flops, runs, gflops: flops / (median(times) / 1000) / 1e9, sessionMsPerMB: loadMs / (subBytes / MB), weightRssFactor: Math.max(1, (rss1 - rss0) / weightBytes) };
}

/**
 * Time = FLOPs / throughput + runs x cost per run, solved from two measurements of the same
 * groups (small tiles and whole maps). When noise makes it unsolvable (a negative cost), the
 * whole maps' throughput with no per-run cost.
 */
export function splitRunCost(small: { ms: number; flops: number; runs: number }, large: { ms: number; flops: number; runs: number }): { gflops: number; runMs: number } {
  // ms = flops * a + runs * b, two equations.
  const det = small.flops * large.runs - large.flops * small.runs;
  const a = (small.ms * large.runs - large.ms * small.runs) / det;
  const b = (small.flops * large.ms - large.flops * small.ms) / det;
  if (!(a > 0) || !(b >= 0)) return { gflops: large.flops / (large.ms / 1000) / 1e9, runMs: 0 };
  return { gflops: 1 / a / 1e6, runMs: b };
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

/** Peak worker RSS of a plan served by a fresh local stack (one warm request after one cold). */
async function peakWorkerRss(plan: Plan, workers: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'fc-calib-stack-'));
  const file = join(dir, 'plan.json');
  await writeFile(file, JSON.stringify(plan));
  await ensureModel('resnet18', 'models/resnet18.onnx');
  const stack = await startLocalStack(loadConfig({ PORT: '0', DATA_DIR: dir, PLANS: file, DEFAULT_PLAN: 'plan', WORKER_MAX_INSTANCES: String(workers), WORKER_THREADS: '1', FUNCTION_TIMEOUT_MS: '600000' }));
  try {
    const planKey = stack.registry.models[0]?.planKey;
    if (!planKey) throw new Error('calibration: the stack published no plan for resnet18');
    let peak = 0;
    for (let i = 0; i < 2; i++) {
      const r = await stack.request(planKey, randomTensor(plan.input.shape, i), `calib${i}`);
      for (const st of r.report.units) peak = Math.max(peak, st.peakWorkerRssBytes / MB);
    }
    return peak;
  } finally {
    await stack.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Activation memory as the stack sees it (ORT's arena, copies), from a plan whose tiles are
 * large enough to show it (ResNet-18 1024, 2x2): the RSS above the runtime and the weights,
 * over the largest tile's activation estimate.
 */
export async function activationInStack(base: CostProfile): Promise<number> {
  const large = planModel(buildModel('resnet18'), { inputShape: [1, 3, 1024, 1024], grid: { rows: 2, cols: 2 }, cuts: RESNET18_CUTS }).plan;
  const peak = await peakWorkerRss(large, 4);
  const maxTile = Math.max(...large.stages.flatMap((s) => (s.kind === 'group' ? s.tiles.map((t) => t.peakBytes) : [])));
  const weights = large.stages.reduce((x, s) => x + (s.kind === 'group' ? s.bytes.weights : 0), 0);
  return Math.max(base.activationRssFactor, ((peak - base.baseRssMb) * MB - weights * base.weightRssFactor) / maxTile);
}

/**
 * What micro-benchmarks cannot see, fitted on the real stack as the bench runs it: the table1
 * suite of `npm run bench -- --quick` for the committed 2x2 and 4x4 plans (ResNet-18 224, batch
 * 1 and 4, 1 vCPU and 0.5 vCPU with the bench's CPU emulation, 4 workers). The `auto` rows are
 * not fitted on: they check the fit.
 */
async function fitOnBench(base: CostProfile, log: (s: string) => void): Promise<{ params: Partial<CostProfile>; fit: FitResult; rows: FitRow[] }> {
  // The bench imports the runtime: load it only when calibrating on the stack.
  const { buildSweep, sweepFromFlags } = await import('../bench/sweep.ts');
  const { runBench } = await import('../bench/runner.ts');
  // FIT_PASSES passes of five requests a configuration (bench --quick takes three), pooled
  // into one median each: on a shared machine the same configuration measured a few minutes
  // later differed by 0.5-1.8x (2026-11-30), so one short pass would fit the moment, not the
  // machine.
  const { options } = sweepFromFlags({ quick: true, suite: 'table1', plans: '2x2,4x4', requests: '5' });
  const configs = buildSweep(options);
  const totals = new Map<string, number[]>();
  let res;
  for (let pass = 0; pass < FIT_PASSES; pass++) {
    const workDir = await mkdtemp(join(tmpdir(), 'fc-calib-bench-'));
    try {
      res = await runBench({
        configs, workDir, affinity: true, throttle: true, mono: false, timeoutMs: 600_000, seed: 1 + pass,
        progress: { start: () => undefined, update: () => undefined, log: (l) => log(`  ${l}`), stop: () => undefined },
      });
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
    for (const [id, ss] of Object.entries(res.samples)) {
      const t = totals.get(id) ?? [];
      for (const x of ss) if (x.ok && x.cost) t.push(x.cost.ms.total);
      totals.set(id, t);
    }
  }
  const bytes = buildModel('resnet18');
  const plans = new Map<string, Plan>();
  const planOf = (spec: string) => {
    let p = plans.get(spec);
    if (!p) {
      const c = COMMITTED_PLANS.find((x) => x.arch === 'resnet18' && x.file.endsWith(`resnet18-224-${spec}.json`));
      if (!c) throw new Error(`no committed ResNet-18 224 plan for ${spec}`);
      p = planModel(bytes, { inputShape: c.inputShape, grid: c.grid, cuts: c.cuts, name: c.arch }).plan;
      plans.set(spec, p);
    }
    return p;
  };
  const rows: FitRow[] = [];
  if (!res) throw new Error('calibration: the bench ran no pass');
  for (const r of res.rows) {
    if (r.status !== 'ok' || r.total_runtime_ms === undefined) { log(`  skipped ${r.id}: ${r.error ?? r.status}`); continue; }
    const pooled = totals.get(r.id) ?? [];
    const measuredMs = pooled.length ? median(pooled) : r.total_runtime_ms;
    rows.push({ plan: planOf(r.plan), vcpu: r.vcpu, memoryMb: r.memory_mb, batch: r.batch, workers: r.max_instances, measuredMs, label: r.id });
  }
  if (rows.length < 3) throw new Error(`calibration: only ${rows.length} bench rows succeeded; need at least 3 to fit`);
  const fit = fitProfile(base, rows);
  return { params: fit.params, fit, rows };
}

/** Measures this machine and returns the `local` profile for the local stack. */
export async function calibrateLocal(log: (s: string) => void = () => undefined): Promise<CostProfile> {
  log('activation memory...');
  const act = await activationFactor();
  log(`  x${act.toFixed(2)}`);
  log('tile throughput, 1 thread...');
  const one = await tileThroughput(1);
  log(`  ${one.gflops.toFixed(1)} GFLOP/s; session load ${one.sessionMsPerMB.toFixed(1)} ms/MB; weights RSS x${one.weightRssFactor.toFixed(2)}`);
  // Small tiles run slower per FLOP than whole maps (each ORT run has a fixed cost): the same
  // groups as one tile each give the throughput of large work and the cost of a run.
  log('whole-map throughput, 1 thread...');
  const whole = await tileThroughput(1, 1);
  const solo = splitRunCost(one, whole);
  log(`  ${whole.gflops.toFixed(1)} GFLOP/s; ${solo.gflops.toFixed(1)} GFLOP/s per FLOP and ${solo.runMs.toFixed(2)} ms per ORT run`);
  log('tile throughput, 2 threads...');
  const two = await tileThroughput(2);
  log(`  ${two.gflops.toFixed(1)} GFLOP/s`);
  log('store...');
  const st = await storeFigures();
  log(`  ${st.latencyMs.toFixed(2)} ms per request, ${st.bandwidthMBps.toFixed(0)} MB/s`);
  log('invocations...');
  const inv = await invokeFigures();
  log(`  ${inv.overheadMs.toFixed(2)} ms per invoke, cold start ${inv.coldStartMs.toFixed(0)} ms, base RSS ${inv.baseRssMb.toFixed(0)} MB`);
  // The bench enforces fractional vCPU as a CFS quota where it can make cgroups (src/bench/emulation.ts).
  const { CgroupQuotas, QUOTA_PERIOD_US } = await import('../bench/emulation.ts');
  const quotas = CgroupQuotas.open();
  quotas?.close();
  log(quotas ? `fractional vCPU: a CFS quota per ${QUOTA_PERIOD_US / 1000} ms period (cgroups)` : 'fractional vCPU: a SIGSTOP/SIGCONT duty cycle (no cgroups here)');
  const base: CostProfile = {
    name: 'local',
    notes: `Calibrated on ${new Date().toISOString().slice(0, 10)} by npm run calibrate (ResNet-18 tiles, FsStore, ProcessPoolInvoker). pollIntervalMs 0: the filesystem store wakes waiters natively.${quotas ? ' cpuQuotaPeriodMs: the bench enforces fractional vCPU with a CFS quota (cgroups).' : ''}`,
    gflopsPerVcpu: +solo.gflops.toFixed(2),
    stageOverheadMs: +solo.runMs.toFixed(2),
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
    ...(quotas ? { cpuQuotaPeriodMs: QUOTA_PERIOD_US / 1000 } : {}),
  };
  log('fitting on the real stack (the table1 rows of bench --quick for the 2x2 and 4x4 plans)...');
  const { params, fit, rows } = await fitOnBench(base, log);
  log('activation memory in the stack (ResNet-18 1024, 2x2)...');
  const activationRssFactor = +(await activationInStack(base)).toFixed(2);
  log(`  x${activationRssFactor}`);
  const fitted = { ...base, ...params, activationRssFactor };
  for (const r of rows) {
    const pred = predictPlan(r.plan, { profile: fitted, vcpu: r.vcpu, memoryMb: r.memoryMb, batch: r.batch, concurrency: r.workers }).latencyMs;
    log(`  ${r.label.padEnd(36)} measured ${r.measuredMs.toFixed(0).padStart(5)} ms, predicted ${pred.toFixed(0).padStart(5)} ms (${(pred / r.measuredMs).toFixed(2)}x)`);
  }
  log(`  ${params.effectiveCores} cores for the busy workers (of ${base.maxParallelWorkers}; ${base.gflopsPerVcpu} GFLOP/s per vCPU alone), ${params.invokeOverheadMs} ms per worker round (bare IPC round trip ${inv.overheadMs.toFixed(2)} ms), ${params.stageOverheadMs} ms per tile and stage, ${params.throttleRoundMs} ms per stage at 0 duty; worst error x${Math.exp(fit.worstLogError).toFixed(2)}, mean x${Math.exp(fit.meanLogError).toFixed(2)}`);
  return { ...fitted, notes: `${base.notes} Fitted on ${rows.length} bench --quick table1 rows (2x2, 4x4): worst x${Math.exp(fit.worstLogError).toFixed(2)}.` };
}
