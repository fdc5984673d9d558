/**
 * Runs a sweep: starts one local stack per stack key (handler, master and worker functions as
 * separate processes), emulates the worker's vCPU on its processes, warms up, sends the measured
 * requests, records every request's `parameters.cost`, reads instance peak RSS from the pool,
 * measures monolithic ORT on the same input in a process with the same emulation, and turns it
 * all into rows (columns.ts). A failing configuration (a worker over WORKER_MEMORY_MB, a stack that
 * does not start) becomes a failed row; the bench goes on.
 *
 * This module is the suites (single-model stacks, multi-tenant) and the row formatting; the stack
 * lifecycle is in stacks.ts and the load client in load-client.ts.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ensureModel, type Arch } from '../models/index.ts';
import { compareTensors } from '../tensor/random.ts';
import type { FloatTensor } from '../runtime/ort.ts';
import {
  summarizeConfig, multiTenantSaving, type BenchRow, type ConfigInfo, type MonoResult, type Sample,
} from './columns.ts';
import { CpuLimiter, cpuShape, tasksetAvailable, type CpuShape } from './emulation.ts';
import { makeTarget, traffic, warmUp, type Target } from './load-client.ts';
import { MonoProcess } from './mono.ts';
import { makePlans, planFor, type PlanFile } from './plans.ts';
import { loadCostModel, predictColumns, type CostModel } from './predict.ts';
import { paperRowFor } from './paper.ts';
import type { Progress } from './progress.ts';
import { archPath, closeServed, oomCount, publishExtraModel, snapshot, startStack, type Served } from './stacks.ts';
import { median } from './stats.ts';
import { type MtArch, type PlanSpec, type RunConfig } from './sweep.ts';

export interface RunnerOptions {
  configs: RunConfig[];
  /** Scratch directory for stack data and generated plans. */
  workDir: string;
  affinity: boolean;
  throttle: boolean;
  mono: boolean;
  timeoutMs: number;
  seed: number;
  /** WORKER_MAX_SESSIONS; default: enough for every group the stack serves (at least 8). */
  maxSessions?: number;
  progress: Progress;
  /** Checked between requests; true stops the run (the rows so far are kept). */
  aborted?: () => boolean;
}

export interface BenchResult {
  meta: {
    startedAt: string; finishedAt: string; durationMs: number;
    host: { cores: number; node: string; platform: string };
    emulation: { affinity: boolean; throttle: boolean; taskset: boolean };
    costModel: string;
    configs: number;
  };
  notes: string[];
  rows: BenchRow[];
  /** Per configuration: every measured request, with its cost object. */
  samples: Record<string, Sample[]>;
}

export async function runBench(o: RunnerOptions): Promise<BenchResult> {
  const startedAt = new Date();
  const t0 = performance.now();
  const notes: string[] = [];
  const rows: BenchRow[] = [];
  const samples: Record<string, Sample[]> = {};
  const cores = availableParallelism();
  const taskset = o.affinity ? await tasksetAvailable() : false;
  if (o.affinity && !taskset) notes.push('taskset is not available: worker CPU affinity is not emulated (threads and duty cycle still are)');
  const cm = loadCostModel();
  if (cm.note) notes.push(cm.note);
  const modelBytes = new Map<string, Uint8Array>();
  const bytesOf = async (arch: string) => {
    let b = modelBytes.get(arch);
    if (!b) {
      b = await readFile(await ensureModel(arch as Arch, archPath(arch)));
      modelBytes.set(arch, b);
    }
    return b;
  };

  // Group configurations by stack, keeping order.
  const groups = new Map<string, RunConfig[]>();
  for (const c of o.configs) {
    const g = groups.get(c.stackKey) ?? [];
    g.push(c);
    groups.set(c.stackKey, g);
  }
  let done = 0;
  o.progress.start(o.configs.length);
  const tick = (label: string) => o.progress.update(done, label);
  const noteOnce = (n: string) => { if (!notes.includes(n)) { notes.push(n); o.progress.log(`note: ${n}`); } };

  for (const [key, cfgs] of groups) {
    if (o.aborted?.()) break;
    const first = cfgs[0];
    const shape = cpuShape(first.resources.vcpu, cores, { affinity: o.affinity && taskset, throttle: o.throttle });
    if (first.resources.vcpu > cores) noteOnce(`${first.resources.vcpu} vCPU is more than this machine's ${cores} cores: emulated as ${cores}`);
    try {
      if (first.suite === 'multitenant') {
        for (const c of cfgs) {
          if (o.aborted?.()) break;
          tick(c.id);
          const r = await runMultiTenant(c, shape, o, bytesOf, join(o.workDir, key), noteOnce);
          rows.push(...r.rows);
          Object.assign(samples, r.samples);
          done++;
        }
        continue;
      }
      await runSingleStackGroup(key, cfgs, shape, o, bytesOf, cm.model, rows, samples, noteOnce, (id) => tick(id), () => { done++; });
    } catch (e) {
      // A stack that cannot start: every configuration of it is a failed row.
      const msg = `stack ${key} failed: ${(e as Error).message.split('\n')[0]}`;
      o.progress.log(`error: ${msg}`);
      for (const c of cfgs) {
        if (rows.some((r) => r.id === c.id)) continue;
        rows.push(summarizeConfig({ config: info(c, shape), samples: [], error: msg }));
        done++;
      }
    }
  }
  o.progress.update(done, 'done');
  o.progress.stop();
  // Rows in sweep order (skipped plans were recorded first); a multi-tenant row's tenants follow it.
  const order = new Map(o.configs.map((c, i) => [c.id, i]));
  const pos = (r: BenchRow) => order.get(r.id.split(':')[0]) ?? Infinity;
  rows.sort((a, b) => pos(a) - pos(b) || Number(a.id.includes(':')) - Number(b.id.includes(':')));
  const shared = rows.find((r) => r.mode === 'shared' && !r.id.includes(':'));
  const separate = rows.find((r) => r.mode === 'separate' && !r.id.includes(':'));
  if (shared && separate) multiTenantSaving(shared, separate);
  const finished = new Date();
  return {
    meta: {
      startedAt: startedAt.toISOString(), finishedAt: finished.toISOString(), durationMs: Math.round(performance.now() - t0),
      host: { cores, node: process.version, platform: `${process.platform}-${process.arch}` },
      emulation: { affinity: o.affinity, throttle: o.throttle, taskset },
      costModel: cm.model ? `src/cost/model.ts, profile ${cm.model.local.name}${cm.model.fc ? ` (FC columns: ${cm.model.fc.name})` : ''}` : (cm.note ?? 'absent'),
      configs: o.configs.length,
    },
    notes, rows, samples,
  };
}

/** How long a row measures, at least, when three times its requests allow. */
const MIN_ROW_MS = 1000;

function info(c: RunConfig, shape: CpuShape, plan?: PlanFile): ConfigInfo {
  return {
    id: c.id, suite: c.suite, mode: c.mode, model: plan?.name ?? c.archs.join('+'), plan: c.plan,
    vcpu: c.resources.vcpu, memoryMb: c.resources.memoryMb, threads: shape.threads, cpusPerInstance: shape.coresPerInstance, cpuDuty: shape.duty,
    batch: c.batch, concurrency: c.concurrency, maxInstances: c.workers,
    groups: plan?.plan.summary.groups, tiles: plan?.plan.summary.tiles, redundancy: plan?.plan.summary.redundancy,
  };
}

// ------------------------------------------------------------------------------- single-model stacks

async function runSingleStackGroup(
  key: string, cfgs: RunConfig[], shape: CpuShape, o: RunnerOptions, bytesOf: (arch: string) => Promise<Uint8Array>, costModel: CostModel | undefined,
  rows: BenchRow[], samples: Record<string, Sample[]>, noteOnce: (n: string) => void, tick: (id: string) => void, finished: () => void,
): Promise<void> {
  const first = cfgs[0];
  const arch = first.archs[0];
  const specs = [...new Set(cfgs.map((c) => c.plan))] as PlanSpec[];
  const bytes = await bytesOf(arch);
  const batches = [...new Set(cfgs.map((c) => c.batch))];
  const { plans, notes } = await makePlans({ arch, modelBytes: bytes, specs, batches, dir: join(o.workDir, key, 'plans'), resources: first.resources, workers: first.workers });
  notes.forEach(noteOnce);
  const runnable = cfgs.filter((c) => planFor(plans, c.plan, c.batch));
  for (const c of cfgs.filter((x) => !runnable.includes(x))) {
    rows.push(summarizeConfig({ config: info(c, shape), samples: [], skipped: notes.find((n) => n.includes(`batch ${c.batch} `)) ?? `plan ${c.plan} not available (see notes)` }));
    finished();
  }
  if (!runnable.length) return;
  const served = await startStack({ arch, plans, resources: first.resources, workers: first.workers, shape, dataDir: join(o.workDir, key, 'data'), timeoutMs: o.timeoutMs, maxSessions: o.maxSessions, affinity: shape.coresPerInstance > 0, onNote: noteOnce });
  let mono: MonoProcess | undefined;
  let monoLimiter: CpuLimiter | undefined;
  const monoCache = new Map<string, MonoResult & { output?: FloatTensor }>();
  try {
    for (const c of runnable) {
      if (o.aborted?.()) break;
      tick(c.id);
      const pf = planFor(served.plans, c.plan, c.batch)!;
      const target = makeTarget(served, pf, c.batch, o.seed);
      const before = new Map([[served, oomCount(served)]]);
      await warmUp([target], c.warmup, c.concurrency);
      const { samples: s, outputs } = await traffic(Array.from({ length: c.requests }, () => target), c.concurrency, o.aborted);
      // Short rows are the noisiest (a 15 ms hiccup is 30% of a 50 ms request): each row measures
      // for about a second, with up to three times its requests.
      const spanMs = s.length ? Math.max(...s.map((x) => x.endMs)) - Math.min(...s.map((x) => x.startMs)) : Infinity;
      const more = Math.min(2 * c.requests, Math.ceil(((MIN_ROW_MS - spanMs) / spanMs) * s.length));
      if (more > 0 && !o.aborted?.()) s.push(...(await traffic(Array.from({ length: more }, () => target), c.concurrency, o.aborted)).samples);
      const memory = snapshot([served], before);
      let monoRes: (MonoResult & { output?: FloatTensor }) | undefined;
      if (o.mono) {
        const mk = `${arch}-${c.batch}`;
        monoRes = monoCache.get(mk);
        if (!monoRes) {
          if (!mono) {
            mono = new MonoProcess();
            monoLimiter = new CpuLimiter(shape, { affinity: shape.coresPerInstance > 0 });
            await mono.ready.catch(() => undefined);
            await monoLimiter.track([mono.pid]);
          }
          try {
            const r = await mono.run({ modelPath: archPath(arch), inputName: pf.plan.input.name, shape: target.input.dims, seed: o.seed, threads: shape.threads, warmup: 1, runs: c.batch >= 16 ? 3 : Math.max(3, c.requests) });
            monoRes = { p50Ms: median(r.times)!, rssMb: r.maxRssMb, output: { dims: r.output.dims, data: r.output.data } };
          } catch (e) {
            monoRes = { p50Ms: NaN, rssMb: NaN, error: (e as Error).message };
            noteOnce(`monolithic run failed for ${arch} batch ${c.batch}: ${(e as Error).message.split('\n')[0]}`);
          }
          monoCache.set(mk, monoRes);
        }
      }
      const out = outputs.get(pf.name);
      const maxAbsDiff = out && monoRes?.output ? compareTensors(monoRes.output, out).maxAbsDiff : undefined;
      const f = served.config.functions;
      const predicted = predictColumns(costModel, {
        plan: pf.plan, vcpu: c.resources.vcpu, memoryMb: c.resources.memoryMb, batch: c.batch, workerLanes: c.workers, requests: c.concurrency,
        master: { vcpu: f.master.vcpu, memoryMb: f.master.memoryMb }, handler: { vcpu: f.handler.vcpu, memoryMb: f.handler.memoryMb },
      }, noteOnce);
      const ci = info(c, shape, pf);
      const row = summarizeConfig({
        config: ci, samples: s, memory, mono: monoRes, maxAbsDiff, predicted,
        paper: paperRowFor({ vcpu: c.resources.vcpu, memoryMb: c.resources.memoryMb, batch: c.batch, workerNum: pf.plan.summary.tiles }),
      });
      rows.push(row);
      samples[c.id] = s;
      for (const n of served.limiter.notes) noteOnce(n);
      o.progress.log(oneLine(row));
      finished();
    }
  } finally {
    monoLimiter?.stop();
    await mono?.close();
    await closeServed(served);
  }
}

export function oneLine(r: BenchRow): string {
  const f = (x: number | undefined, u = '') => (x === undefined ? '-' : `${x}${u}`);
  if (r.status === 'failed' || r.status === 'skipped') return `${r.id}: ${r.status.toUpperCase()} ${r.error ?? ''}`;
  return `${r.id}: ${r.status} runtime ${f(r.total_runtime_ms, ' ms')} p50 ${f(r.latency_p50_ms, ' ms')} p99 ${f(r.latency_p99_ms, ' ms')} w/t ${f(r.worker_over_total)} mem ${f(r.total_memory_mb, ' MB')} ${f(r.cu_per_1k)} CU/1k${r.latency_vs_mono !== undefined ? ` ${r.latency_vs_mono}x mono` : ''}${r.failed ? ` (${r.failed} failed: ${r.error})` : ''}`;
}

// ------------------------------------------------------------------------------- multi-tenant

/**
 * `shared`: one stack serves every model's 2x2 plan, and one stream of mixed traffic (models
 * interleaved) goes to it. `separate`: one stack per model, each with an equal share of the
 * worker instances (same total capacity), receiving the same stream, routed by model.
 */
async function runMultiTenant(
  c: RunConfig, shape: CpuShape, o: RunnerOptions, bytesOf: (arch: string) => Promise<Uint8Array>, dir: string, noteOnce: (n: string) => void,
): Promise<{ rows: BenchRow[]; samples: Record<string, Sample[]> }> {
  const plansByArch = new Map<MtArch, PlanFile>();
  for (const arch of c.archs) {
    const { plans, notes } = await makePlans({ arch, modelBytes: await bytesOf(arch), specs: ['2x2'], batches: [c.batch], dir: join(dir, 'plans'), resources: c.resources, workers: c.workers });
    notes.forEach(noteOnce);
    plansByArch.set(arch, plans[0]);
  }
  const servedList: Served[] = [];
  const byArch = new Map<MtArch, Served>();
  const common = { resources: c.resources, shape, timeoutMs: o.timeoutMs, maxSessions: o.maxSessions, affinity: shape.coresPerInstance > 0, onNote: noteOnce };
  const rows: BenchRow[] = [];
  const samples: Record<string, Sample[]> = {};
  try {
    if (c.mode === 'shared') {
      const [a0, ...rest] = c.archs;
      const extraGroups = rest.reduce((a, x) => a + plansByArch.get(x)!.plan.summary.groups, 0);
      const s = await startStack({ ...common, arch: a0, plans: [plansByArch.get(a0)!], workers: c.workers, dataDir: join(dir, 'data'), extraGroups });
      servedList.push(s);
      for (const a of c.archs) byArch.set(a, s);
      for (const a of rest) await publishExtraModel(s, await bytesOf(a), plansByArch.get(a)!);
    } else {
      const each = Math.max(1, Math.ceil(c.workers / c.archs.length));
      if (each * c.archs.length !== c.workers) noteOnce(`multi-tenant separate stacks get ${each} worker instances each (${c.workers} shared)`);
      for (const a of c.archs) {
        const s = await startStack({ ...common, arch: a, plans: [plansByArch.get(a)!], workers: each, dataDir: join(dir, `data-${a}`) });
        servedList.push(s);
        byArch.set(a, s);
      }
    }
    const targets = c.archs.map((a) => makeTarget(byArch.get(a)!, plansByArch.get(a)!, c.batch, o.seed));
    const before = new Map(servedList.map((s) => [s, oomCount(s)]));
    await warmUp(targets, c.warmup, c.concurrency);
    // Interleaved: r, m, r, m, ... the same sequence for both modes.
    const seq: Target[] = [];
    for (let i = 0; i < c.requests; i++) seq.push(targets[i % targets.length]);
    const { samples: s } = await traffic(seq, c.concurrency, o.aborted);
    const memory = snapshot(servedList, before);
    const workers = servedList.reduce((a, x) => a + x.config.functions.worker.maxInstances, 0);
    const base = { ...info(c, shape), maxInstances: workers, model: c.archs.join('+') };
    rows.push(summarizeConfig({ config: { ...base, tiles: mean(c.archs.map((a) => plansByArch.get(a)!.plan.summary.tiles)) }, samples: s, memory }));
    samples[c.id] = s;
    for (const a of c.archs) {
      const pf = plansByArch.get(a)!;
      const ci: ConfigInfo = { ...base, id: `${c.id}:${a}`, model: pf.name, groups: pf.plan.summary.groups, tiles: pf.plan.summary.tiles, redundancy: pf.plan.summary.redundancy };
      rows.push(summarizeConfig({ config: ci, samples: s.filter((x) => x.model === pf.name) }));
    }
    o.progress.log(oneLine(rows[0]));
    for (const x of servedList) for (const n of x.limiter.notes) noteOnce(n);
  } catch (e) {
    const msg = `multi-tenant ${c.mode} failed: ${(e as Error).message.split('\n')[0]}`;
    o.progress.log(`error: ${msg}`);
    rows.push(summarizeConfig({ config: info(c, shape), samples: [], error: msg }));
  } finally {
    for (const s of servedList) await closeServed(s).catch(() => undefined);
  }
  return { rows, samples };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

