/**
 * The bench's local stacks: start one (handler, master and worker functions as processes, the
 * worker's vCPU emulated on its instances), add another model's plan to it, read its memory
 * figures, and close it.
 */
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../config.ts';
import { startLocalStack, type LocalStack } from '../compose/stack.ts';
import { publishPlan } from '../serve/artifacts.ts';
import { readRegistry, REGISTRY_KEY } from '../serve/registry.ts';
import type { MemorySnapshot } from './columns.ts';
import { CpuLimiter, type CpuShape } from './emulation.ts';
import type { PlanFile } from './plans.ts';
import type { Resources } from './sweep.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MB = 1048576;

export const archPath = (arch: string) => join(root, 'models', `${arch}.onnx`);

/** A running stack and what the bench set up on it. */
export interface Served {
  stack: LocalStack;
  config: Config;
  plans: PlanFile[];
  limiter: CpuLimiter;
}

export async function startStack(opts: {
  arch: string; plans: PlanFile[]; resources: Resources; workers: number; shape: CpuShape; dataDir: string; timeoutMs: number; maxSessions?: number; affinity: boolean;
  extraGroups?: number;
  onNote?: (n: string) => void;
}): Promise<Served> {
  const groups = opts.plans.reduce((a, p) => a + p.plan.summary.groups, 0) + (opts.extraGroups ?? 0);
  const env: Record<string, string> = {
    PORT: '0', HOST: '127.0.0.1', DATA_DIR: opts.dataDir, MODEL: opts.arch, MODEL_PATH: archPath(opts.arch),
    PLANS: opts.plans.map((p) => p.file).join(','), DEFAULT_PLAN: opts.plans[0].name,
    WORKER_MAX_INSTANCES: String(opts.workers), WORKER_VCPU: String(opts.resources.vcpu), WORKER_MEMORY_MB: String(opts.resources.memoryMb),
    WORKER_THREADS: String(opts.shape.threads), WORKER_MAX_SESSIONS: String(opts.maxSessions ?? Math.max(8, groups)),
    FUNCTION_TIMEOUT_MS: String(opts.timeoutMs),
  };
  const config = loadConfig(env);
  await mkdir(opts.dataDir, { recursive: true });
  const benchRss = process.memoryUsage.rss() / MB;
  if (benchRss > 0.8 * opts.resources.memoryMb) {
    opts.onNote?.(`the bench process's RSS (${benchRss.toFixed(0)} MB) is close to or over WORKER_MEMORY_MB=${opts.resources.memoryMb}: forked workers report it as their getrusage maxRSS and the pool may kill them as out of memory (docs/bench.md, "Memory accounting")`);
  }
  const stack = await startLocalStack(config, env);
  const limiter = new CpuLimiter(opts.shape, { affinity: opts.affinity });
  try {
    // Worker instances exist before traffic (like FC provisioned instances), so they can be pinned.
    await stack.pool.prewarm(config.functions.worker.name);
    await limiter.track(workerPids({ stack, config }));
  } catch (e) {
    limiter.stop();
    await stack.close();
    throw e;
  }
  return { stack, config, plans: opts.plans, limiter };
}

export function workerPids(s: { stack: LocalStack; config: Config }): (number | undefined)[] {
  const st = s.stack.pool.stats()[s.config.functions.worker.name];
  return st ? st.instances.filter((i) => i.state !== 'dead').map((i) => i.pid) : [];
}

export async function closeServed(s: Served): Promise<void> {
  s.limiter.stop();
  await s.stack.close();
}

/** Adds a plan of another model to a running stack's store and registry (the stack publishes one model's plans). */
export async function publishExtraModel(s: Served, modelBytes: Uint8Array, pf: PlanFile): Promise<void> {
  const { planKey } = await publishPlan(s.stack.store, modelBytes, pf.plan, pf.name);
  const [, c, h, w] = pf.plan.input.shape;
  const reg = await readRegistry(s.stack.store);
  const entry = {
    name: pf.name, planKey, inputName: pf.plan.input.name, inputShape: [-1, c, h, w],
    outputName: pf.plan.outputs[0].name, outputShape: [-1, ...pf.plan.outputs[0].shape.slice(1)],
    preprocessing: c === 3 ? { width: w, height: h } : undefined,
  };
  reg.models.push(entry);
  await s.stack.store.put(REGISTRY_KEY, Buffer.from(JSON.stringify(reg)));
  s.stack.registry.models.push(entry);
}

export function snapshot(served: Served[], before: Map<Served, number>): MemorySnapshot {
  const snap: MemorySnapshot = { workerRssSumMb: 0, deploymentRssMb: 0, oomKills: 0, instances: [] };
  for (const s of served) {
    const st = s.stack.pool.stats();
    const f = s.config.functions;
    for (const [role, fc] of [['handler', f.handler], ['master', f.master], ['worker', f.worker]] as const) {
      const fs = st[fc.name];
      if (!fs) continue;
      const alive = fs.instances.filter((i) => i.state !== 'dead');
      const peaks = alive.map((i) => peakRssMb(i.pid) ?? i.peakRssBytes / MB);
      const key = `${role}RssMb` as const;
      if (peaks.length) snap[key] = Math.max(snap[key] ?? 0, ...peaks);
      const total = peaks.reduce((a, b) => a + b, 0);
      snap.deploymentRssMb += total;
      if (role === 'worker') snap.workerRssSumMb += total;
      if (alive.length) snap.instances.push({ vcpu: fc.vcpu, memoryMb: fc.memoryMb, count: alive.length });
    }
    snap.oomKills += Object.values(st).reduce((a, x) => a + x.oomKills, 0) - (before.get(s) ?? 0);
  }
  return snap;
}

/**
 * An instance's peak RSS since it started, from /proc/<pid>/status VmHWM (Linux). The pool's
 * figure comes from getrusage maxRSS, which on Linux also counts the parent's RSS at fork time
 * (the pre-exec address space's high-water mark is carried over), so every instance forked
 * from a large bench process would report at least that much. undefined where /proc is missing.
 */
export function peakRssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

export const oomCount = (s: Served) => Object.values(s.stack.pool.stats()).reduce((a, x) => a + x.oomKills, 0);
