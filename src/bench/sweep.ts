/**
 * The sweep: which configurations `npm run bench` runs, in which order, on which stacks.
 * Configurations that differ only in client-side parameters (batch, plan, concurrency) share a
 * stack; each resource setting (worker vCPU and memory) gets its own, and `auto` plans get their
 * own stack per setting (their sub-models differ from the 2x2/4x4 ones, which share theirs, and
 * would otherwise inflate the workers' session cache and peak RSS). Within a stack they run
 * in ascending batch order, so that instance peak RSS (a lifetime maximum) is attributable.
 */
import { functionResourcesSchema } from '../billing/pricing.ts';
import type { Mode, Suite } from './columns.ts';

export interface Resources { vcpu: number; memoryMb: number }
export type PlanSpec = '2x2' | '4x4' | 'auto';
export const PLAN_SPECS: readonly PlanSpec[] = ['2x2', '4x4', 'auto'];
export const SUITES: readonly Suite[] = ['table1', 'concurrency', 'multitenant'];
export type MtArch = 'resnet18' | 'mobilenetv2' | 'vgg16';

export interface SweepOptions {
  suites: Suite[];
  batches: number[];
  plans: PlanSpec[];
  /** Worker resources; the first one is the reference for the concurrency and multi-tenant suites. */
  resources: Resources[];
  concurrency: number[];
  /** Plans of the concurrency suite (default: all of `plans`). */
  concurrencyPlans?: PlanSpec[];
  requests: number;
  warmup: number;
  /** WORKER_MAX_INSTANCES per stack. */
  workers: number;
  mt: { models: MtArch[]; requestsPerModel: number; concurrency: number; batch: number };
  freshStacks: boolean;
}

export interface RunConfig {
  id: string;
  suite: Suite;
  mode: Mode;
  /** Models served; one for `single`. */
  archs: MtArch[];
  /** Partition scheme (multi-tenant runs use 2x2 for every model). */
  plan: PlanSpec;
  resources: Resources;
  batch: number;
  concurrency: number;
  requests: number;
  warmup: number;
  workers: number;
  /** Configurations with the same key share a stack (started once, in order). */
  stackKey: string;
}

export const FULL: SweepOptions = {
  suites: [...SUITES],
  batches: [1, 16, 64, 128],
  plans: ['2x2', '4x4', 'auto'],
  resources: crossResources([1, 0.35, 1.5], [2048, 512, 4096]).resources,
  concurrency: [1, 2, 4, 8],
  requests: 5,
  warmup: 1,
  workers: 4,
  mt: { models: ['resnet18', 'mobilenetv2'], requestsPerModel: 10, concurrency: 4, batch: 1 },
  freshStacks: false,
};

/** Under 3 minutes on a 2-core machine. */
export const QUICK: SweepOptions = {
  suites: [...SUITES],
  batches: [1, 4],
  plans: ['2x2', '4x4', 'auto'],
  resources: [{ vcpu: 1, memoryMb: 2048 }, { vcpu: 0.5, memoryMb: 1024 }],
  concurrency: [2],
  concurrencyPlans: ['2x2'],
  // Five, not three: each row's median is checked against the cost model (±25%), and three
  // requests of a short plan differed by up to 1.5x on a shared machine.
  requests: 5,
  warmup: 1,
  workers: 4,
  mt: { models: ['resnet18', 'mobilenetv2'], requestsPerModel: 3, concurrency: 2, batch: 1 },
  freshStacks: false,
};

export class SweepError extends Error {
  override name = 'SweepError';
}

/** vCPU x memory combinations that FC accepts (vCPU : GB between 1:1 and 1:4); the others are reported. */
export function crossResources(vcpus: number[], mems: number[]): { resources: Resources[]; rejected: string[] } {
  const resources: Resources[] = [];
  const rejected: string[] = [];
  for (const vcpu of vcpus) for (const memoryMb of mems) {
    if (functionResourcesSchema.safeParse({ vcpu, memoryMb }).success) resources.push({ vcpu, memoryMb });
    else rejected.push(`${vcpu} vCPU / ${memoryMb} MB`);
  }
  return { resources, rejected };
}

export const resKey = (r: Resources) => `v${r.vcpu}-m${r.memoryMb}`;

export function buildSweep(o: SweepOptions): RunConfig[] {
  const out: RunConfig[] = [];
  const ref = o.resources[0];
  const base = { requests: o.requests, warmup: o.warmup, workers: o.workers };
  const stack = (r: Resources, extra = '') => `${resKey(r)}-w${o.workers}${extra}`;
  if (o.suites.includes('table1')) {
    for (const r of o.resources) for (const batch of o.batches) for (const plan of o.plans) {
      out.push({ ...base, id: `t1-${resKey(r)}-b${batch}-${plan}-c1`, suite: 'table1', mode: 'single', archs: ['resnet18'], plan, resources: r, batch, concurrency: 1, stackKey: stack(r, plan === 'auto' ? '-auto' : '') });
    }
  }
  if (o.suites.includes('concurrency') && ref) {
    const batch = Math.min(...o.batches);
    const cplans = o.concurrencyPlans ? o.plans.filter((p) => o.concurrencyPlans!.includes(p)) : o.plans;
    for (const c of o.concurrency) for (const plan of cplans.length ? cplans : o.plans) {
      out.push({ ...base, requests: Math.max(o.requests, c * 2), id: `cc-${resKey(ref)}-b${batch}-${plan}-c${c}`, suite: 'concurrency', mode: 'single', archs: ['resnet18'], plan, resources: ref, batch, concurrency: c, stackKey: stack(ref, plan === 'auto' ? '-auto' : '') });
    }
  }
  if (o.suites.includes('multitenant') && ref && o.mt.models.length >= 2) {
    const tag = `${resKey(ref)}-b${o.mt.batch}-c${o.mt.concurrency}`;
    const common = { ...base, suite: 'multitenant' as const, archs: o.mt.models, plan: '2x2' as const, resources: ref, batch: o.mt.batch, concurrency: o.mt.concurrency, requests: o.mt.requestsPerModel * o.mt.models.length };
    out.push({ ...common, id: `mt-shared-${tag}`, mode: 'shared', stackKey: stack(ref, '-mt-shared') });
    out.push({ ...common, id: `mt-separate-${tag}`, mode: 'separate', stackKey: stack(ref, '-mt-separate') });
  }
  if (o.freshStacks) for (const c of out) c.stackKey = `${c.stackKey}-${c.id}`;
  // Stacks: single-model ones by ascending worker memory (while the bench process is still small:
  // instances forked from it inherit its RSS in getrusage maxRSS, see docs/bench.md), then
  // first appearance; multi-tenant last. Inside a stack: ascending batch, then concurrency.
  const first = new Map<string, number>();
  for (const c of out) if (!first.has(c.stackKey)) first.set(c.stackKey, first.size);
  const stackRank = (c: RunConfig) => [c.suite === 'multitenant' ? 1 : 0, c.resources.memoryMb, first.get(c.stackKey)!];
  const idx = new Map(out.map((c, i) => [c, i]));
  return out.sort((a, b) => {
    const ra = stackRank(a);
    const rb = stackRank(b);
    return ra[0] - rb[0] || ra[1] - rb[1] || ra[2] - rb[2] || a.batch - b.batch || a.concurrency - b.concurrency || idx.get(a)! - idx.get(b)!;
  });
}

// ------------------------------------------------------------------------------------ flags

const list = (s: string, what: string) => s.split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
  const n = Number(x);
  if (!Number.isFinite(n) || n <= 0) throw new SweepError(`--${what}: "${x}" is not a positive number`);
  return n;
});
const ints = (s: string, what: string) => list(s, what).map((n) => {
  if (!Number.isInteger(n)) throw new SweepError(`--${what}: ${n} is not an integer`);
  return n;
});
const oneInt = (s: string, what: string, min = 1) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min) throw new SweepError(`--${what}: "${s}" is not an integer >= ${min}`);
  return n;
};

export interface SweepFlags {
  quick?: boolean;
  suite?: string; batch?: string; plans?: string; vcpu?: string; memory?: string; resources?: string; concurrency?: string;
  requests?: string; warmup?: string; workers?: string;
  'mt-models'?: string; 'mt-requests'?: string; 'mt-concurrency'?: string; 'mt-batch'?: string;
  'fresh-stacks'?: boolean;
}

/** Flags over the full (or --quick) sweep; returns notes about rejected combinations. */
export function sweepFromFlags(f: SweepFlags): { options: SweepOptions; notes: string[] } {
  const b = f.quick ? QUICK : FULL;
  const o: SweepOptions = { ...b, suites: [...b.suites], batches: [...b.batches], plans: [...b.plans], resources: [...b.resources], concurrency: [...b.concurrency], mt: { ...b.mt, models: [...b.mt.models] } };
  const notes: string[] = [];
  if (f.suite) {
    const s = f.suite.split(',').map((x) => x.trim());
    for (const x of s) if (!(SUITES as readonly string[]).includes(x)) throw new SweepError(`--suite: unknown suite "${x}" (${SUITES.join(', ')})`);
    o.suites = s as Suite[];
  }
  if (f.batch) o.batches = ints(f.batch, 'batch');
  if (f.plans) {
    const p = f.plans.split(',').map((x) => x.trim());
    for (const x of p) if (!(PLAN_SPECS as readonly string[]).includes(x)) throw new SweepError(`--plans: unknown plan "${x}" (${PLAN_SPECS.join(', ')})`);
    o.plans = p as PlanSpec[];
  }
  if (f.resources) {
    o.resources = f.resources.split(',').map((x) => {
      const m = /^([\d.]+)x(\d+)$/.exec(x.trim());
      if (!m) throw new SweepError(`--resources: "${x}" is not VCPUxMEMORY_MB, e.g. 1x2048`);
      const r = { vcpu: Number(m[1]), memoryMb: Number(m[2]) };
      const v = functionResourcesSchema.safeParse(r);
      if (!v.success) throw new SweepError(`--resources: ${x}: ${v.error.issues[0].message}`);
      return r;
    });
  } else if (f.vcpu || f.memory) {
    const vcpus = f.vcpu ? list(f.vcpu, 'vcpu') : [...new Set(o.resources.map((r) => r.vcpu))];
    const mems = f.memory ? ints(f.memory, 'memory') : [...new Set(o.resources.map((r) => r.memoryMb))];
    const x = crossResources(vcpus, mems);
    if (x.rejected.length) notes.push(`skipped vCPU/memory combinations FC rejects (vCPU : GB must be 1:1..1:4): ${x.rejected.join(', ')}`);
    if (!x.resources.length) throw new SweepError('no valid vCPU/memory combination (FC needs vCPU : GB between 1:1 and 1:4)');
    o.resources = x.resources;
  }
  if (f.concurrency) o.concurrency = ints(f.concurrency, 'concurrency');
  if (f.requests) o.requests = oneInt(f.requests, 'requests');
  if (f.warmup) o.warmup = oneInt(f.warmup, 'warmup', 0);
  if (f.workers) o.workers = oneInt(f.workers, 'workers');
  if (f['mt-models']) {
    const m = f['mt-models'].split(',').map((x) => x.trim());
    for (const x of m) if (!['resnet18', 'mobilenetv2', 'vgg16'].includes(x)) throw new SweepError(`--mt-models: unknown model "${x}"`);
    if (new Set(m).size < 2) throw new SweepError('--mt-models: give at least two different models');
    o.mt.models = m as MtArch[];
  }
  if (f['mt-requests']) o.mt.requestsPerModel = oneInt(f['mt-requests'], 'mt-requests');
  if (f['mt-concurrency']) o.mt.concurrency = oneInt(f['mt-concurrency'], 'mt-concurrency');
  if (f['mt-batch']) o.mt.batch = oneInt(f['mt-batch'], 'mt-batch');
  if (f['fresh-stacks']) o.freshStacks = true;
  return { options: o, notes };
}
