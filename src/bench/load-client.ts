/**
 * The bench's load client: a request per target (over HTTP, or through the handler's backend
 * in-process for bodies over the HTTP limit), sent with a bounded number in flight, and the
 * warm-up that starts instances and loads sessions before the measured requests.
 */
import type { EncodedBody } from '../http/oip.ts';
import { decodeInferResponse, encodeInferRequest } from '../http/oip-client.ts';
import type { DistributedBackend } from '../serve/backend.ts';
import { modelEntries } from '../serve/registry.ts';
import { randomTensor } from '../tensor/random.ts';
import type { FloatTensor } from '../runtime/ort.ts';
import type { Sample } from './columns.ts';
import { requestCostSchema } from '../serve/cost-report.ts';
import { describeIssues } from '../zod-issues.ts';
import type { PlanFile } from './plans.ts';
import { workerPids, type Served } from './stacks.ts';

const MB = 1048576;
/** Requests above this go through the handler's backend in-process (HTTP body limit, FC's 32 MB invoke payload). */
const HTTP_MAX_BODY = 24 * MB;
const HTTP_MAX_BATCH = 64;

export interface Target {
  name: string;
  arch: string;
  served: Served;
  batch: number;
  input: FloatTensor;
  path: 'http' | 'direct';
  body?: EncodedBody;
  backend?: DistributedBackend;
}

export function makeTarget(served: Served, pf: PlanFile, batch: number, seed: number): Target {
  const [, c, h, w] = pf.plan.input.shape;
  const input = randomTensor([batch, c, h, w], seed);
  const bytes = input.data.byteLength;
  const path = bytes > HTTP_MAX_BODY || batch > HTTP_MAX_BATCH ? 'direct' : 'http';
  const t: Target = { name: pf.name, arch: pf.arch, served, batch, input, path };
  if (path === 'http') {
    t.body = encodeInferRequest({ inputs: [{ name: pf.plan.input.name, shape: input.dims, data: input.data }], outputs: [{ name: pf.plan.outputs[0].name, parameters: { binary_data: true } }] }, { binary: true });
  } else {
    t.backend = served.stack.backend;
  }
  return t;
}

let requestSeq = 0;

async function once(t: Target): Promise<{ sample: Sample; output?: FloatTensor }> {
  const startMs = performance.now();
  const fail = (error: string) => {
    const endMs = performance.now();
    return { sample: { model: t.name, ok: false, startMs, endMs, latencyMs: endMs - startMs, error, path: t.path } };
  };
  try {
    if (t.path === 'direct') {
      const entry = modelEntries(t.served.stack.registry).get(t.name);
      if (!entry) return fail(`model ${t.name} is not in the registry`);
      const r = await t.backend!.infer(entry, t.input, `bench${process.pid}x${++requestSeq}`);
      const endMs = performance.now();
      return { sample: { model: t.name, ok: true, startMs, endMs, latencyMs: endMs - startMs, cost: r.cost, path: t.path }, output: r.output };
    }
    const res = await fetch(`${t.served.stack.url}/v2/models/${t.name}/infer`, { method: 'POST', body: new Uint8Array(t.body!.body), headers: t.body!.headers });
    const body = Buffer.from(await res.arrayBuffer());
    const endMs = performance.now();
    if (res.status !== 200) {
      let msg = body.toString('utf8').slice(0, 400);
      try { msg = (JSON.parse(msg) as { error?: string }).error ?? msg; } catch { /* not JSON */ }
      return { sample: { model: t.name, ok: false, startMs, endMs, latencyMs: endMs - startMs, error: `HTTP ${res.status}: ${msg.replace(/\s+/g, ' ').slice(0, 300)}`, path: t.path } };
    }
    const dec = decodeInferResponse(body, Object.fromEntries(res.headers));
    const parsed = requestCostSchema.safeParse(dec.parameters?.cost);
    const cost = parsed.success ? parsed.data : undefined;
    const out = dec.outputs[0];
    const output = out && out.data instanceof Float32Array ? { dims: out.shape, data: out.data } : undefined;
    if (!cost) return { sample: { model: t.name, ok: false, startMs, endMs, latencyMs: endMs - startMs, error: dec.parameters?.cost === undefined ? 'response has no parameters.cost' : `response has an invalid parameters.cost: ${describeIssues(parsed.error?.issues ?? [], { max: 3 })}`, path: t.path } };
    return { sample: { model: t.name, ok: true, startMs, endMs, latencyMs: endMs - startMs, cost, path: t.path }, output };
  } catch (e) {
    const err = e as Error & { status?: number };
    return fail(`${err.status ? `HTTP ${err.status}: ` : ''}${(err.message ?? String(e)).replace(/\s+/g, ' ').slice(0, 300)}`);
  }
}

/**
 * Sends `targets` (in order) with at most `concurrency` in flight. While traffic runs, new worker
 * instances are handed to the CPU limiters every 250 ms.
 */
export async function traffic(targets: Target[], concurrency: number, aborted?: () => boolean): Promise<{ samples: Sample[]; outputs: Map<string, FloatTensor> }> {
  const samples: Sample[] = new Array(targets.length);
  const outputs = new Map<string, FloatTensor>();
  const servedSet = new Set(targets.map((t) => t.served));
  const track = () => { for (const s of servedSet) void s.limiter.track(workerPids(s)); };
  const timer = setInterval(track, 250);
  timer.unref();
  let next = 0;
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, async () => {
      while (next < targets.length && !aborted?.()) {
        const i = next++;
        const r = await once(targets[i]);
        samples[i] = r.sample;
        if (r.output && !outputs.has(targets[i].name)) outputs.set(targets[i].name, r.output);
      }
    }));
  } finally {
    clearInterval(timer);
  }
  return { samples: samples.filter(Boolean), outputs };
}

/**
 * Warm-up: handler and master instances are started up to the client concurrency first (the pool
 * reuses the first idle instance, so sequential warm-up requests would leave the others cold),
 * then `warmup` rounds of every target at that concurrency load plans and sessions everywhere.
 */
export async function warmUp(targets: Target[], warmup: number, concurrency: number): Promise<void> {
  if (warmup <= 0) return;
  for (const s of new Set(targets.map((t) => t.served))) {
    const f = s.config.functions;
    await s.stack.pool.prewarm(f.handler.name, Math.min(concurrency, f.handler.maxInstances));
    await s.stack.pool.prewarm(f.master.name, Math.min(concurrency, f.master.maxInstances));
  }
  const w: Target[] = [];
  for (let i = 0; i < warmup * concurrency; i++) w.push(...targets.filter((t, j, a) => a.findIndex((u) => u.name === t.name) === j));
  await traffic(w, concurrency);
}
