// npm run load -- [--clients 8] [--seconds 60] [--warmup 5] [--model resnet18] [--batch 1] [--backoff-ms N]
//                 [--rss-every 15] [--no-check] [--kill-worker-every MS]
//                 [any setting of src/config.ts, e.g. --max-inflight 4 --max-queue 4]
//
// Load and soak on the loopback local stack, started here (temporary data directory, 127.0.0.1,
// a free port) and stopped at the end. N closed-loop clients send binary OIP v2 requests for
// the given seconds; each answer is compared with monolithic ORT on the same input. Prints
// throughput, latency percentiles of the successful requests, errors by kind, refusals (503 with
// Retry-After, counted apart from errors), objects left under requests/ in the store, and the
// RSS of every function process after warm-up, every --rss-every seconds, and at the end (from
// /proc/<pid>/status), then one JSON line with all of it. Function logs default to LOG_LEVEL=warn.
// --kill-worker-every MS SIGKILLs a random worker instance (a busy one when there is one) that
// often during the measured seconds: the chaos run of the reliability targets.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../src/config.ts';
import { startLocalStack, withEmulatorDefaults, type LocalStack } from '../src/compose/stack.ts';
import { runCli, UsageError } from '../src/cli/common.ts';
import { startKiller } from '../src/bench/chaos.ts';
import { envFromArgs } from '../src/cli/config-args.ts';
import { decodeInferResponse, encodeInferRequest } from '../src/http/oip-client.ts';
import { compareTensors, randomTensor } from '../src/tensor/random.ts';
import { monolithic } from '../src/exec/verify.ts';
import type { FloatTensor } from '../src/runtime/ort.ts';

const OWN = {
  clients: { type: 'string', default: '8' },
  seconds: { type: 'string', default: '60' },
  warmup: { type: 'string', default: '5' },
  model: { type: 'string', default: 'resnet18' },
  batch: { type: 'string', default: '1' },
  'backoff-ms': { type: 'string' },
  'no-check': { type: 'boolean', default: false },
  'rss-every': { type: 'string', default: '15' },
  'kill-worker-every': { type: 'string' },
} as const;
const INPUTS = 4;

function bounded(name: string, raw: string, min: number, max: number): number {
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new UsageError(`--${name} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
  return v;
}

/** Splits argv into this script's flags and the configuration's (handed to envFromArgs). */
function splitArgs(argv: string[]): { own: string[]; config: string[] } {
  const own: string[] = [];
  const config: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([a-z-]+)/.exec(argv[i])?.[1];
    const spec = name ? OWN[name as keyof typeof OWN] : undefined;
    const target = spec ? own : config;
    target.push(argv[i]);
    if (!argv[i].includes('=') && !(spec && spec.type === 'boolean') && i + 1 < argv.length) target.push(argv[++i]);
  }
  return { own, config };
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function rssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]);
    return Number.isFinite(kb) ? Math.round(kb / 1024) : undefined;
  } catch {
    return undefined;
  }
}

interface ProcRss { fn: string; instance: string; pid: number; mb: number | undefined }
function processRss(stack: LocalStack): ProcRss[] {
  const out: ProcRss[] = [];
  for (const [fn, s] of Object.entries(stack.pool.stats())) {
    for (const i of s.instances) if (i.state !== 'dead' && i.pid !== undefined) out.push({ fn, instance: i.instanceId, pid: i.pid, mb: rssMb(i.pid) });
  }
  out.push({ fn: 'gateway+clients', instance: 'self', pid: process.pid, mb: rssMb(process.pid) });
  return out;
}

/** The model file the plan was made for (sha256 in the plan), to compute reference answers; undefined if it is not at `path`. */
async function referenceModel(stack: LocalStack, planKey: string | undefined, path: string | undefined): Promise<Buffer | undefined> {
  if (!path || !planKey) return undefined;
  const bytes = await readFile(path).catch(() => undefined);
  if (!bytes) return undefined;
  const plan = JSON.parse((await stack.store.get(planKey)).toString('utf8')) as { model?: { sha256?: string } };
  return plan.model?.sha256 === createHash('sha256').update(bytes).digest('hex') ? bytes : undefined;
}

interface Outcome { ok: boolean; ms: number; kind: string; wrong?: boolean; retryAfterS?: number }

runCli(async () => {
  const { own, config: configArgs } = splitArgs(process.argv.slice(2));
  const { values } = parseArgs({ args: own, options: OWN, strict: true });
  const clients = bounded('clients', values.clients, 1, 256);
  const seconds = bounded('seconds', values.seconds, 1, 3600);
  const warmup = bounded('warmup', values.warmup, 0, 600);
  const batch = bounded('batch', values.batch, 1, 64);
  // Refused requests wait their Retry-After (jittered), as a polite client does, or --backoff-ms.
  const backoffMs = values['backoff-ms'] === undefined ? undefined : bounded('backoff-ms', values['backoff-ms'], 0, 60_000);
  const check = !values['no-check'];
  const rssEvery = bounded('rss-every', values['rss-every'], 1, 3600);
  const killEvery = values['kill-worker-every'] === undefined ? undefined : bounded('kill-worker-every', values['kill-worker-every'], 50, 3_600_000);

  const dir = await mkdtemp(join(tmpdir(), 'fc-load-'));
  // Loopback only, a free port, a throwaway store: flags may change anything else.
  const env = { LOG_LEVEL: 'warn', ...process.env, ...envFromArgs(configArgs), HOST: '127.0.0.1', PORT: '0', DATA_DIR: dir };
  const config = loadConfig(withEmulatorDefaults(env));
  const key = config.apiKeys[0];
  console.log(`starting the local stack (store ${config.store}, invoker ${config.invoker}, MAX_INFLIGHT ${config.maxInflight}, MAX_QUEUE ${config.maxQueue}, REQUEST_TIMEOUT_MS ${config.requestTimeoutMs}${key ? ', API keys on' : ''})`);
  const stack = await startLocalStack(config);
  try {
    const entry = stack.registry.models.find((m) => m.name === values.model);
    if (!entry) throw new UsageError(`unknown --model ${values.model}; served: ${stack.registry.models.map((m) => m.name).join(', ')}`);
    const shape = [batch, ...entry.inputShape.slice(1)];
    if (shape.some((d) => d < 0)) throw new UsageError(`model ${entry.name} has a dynamic input shape [${entry.inputShape}]: pick one planned for a fixed size`);
    const modelBytes = check ? await referenceModel(stack, entry.planKey, config.modelPath) : undefined;
    if (check && !modelBytes) console.log(`answers not checked: ${entry.name} has no published plan made for ${config.modelPath ?? 'MODEL_PATH (unset)'}`);
    const inputs = await Promise.all(Array.from({ length: INPUTS }, async (_, i) => {
      const x = randomTensor(shape, 1000 + i);
      const enc = encodeInferRequest({ inputs: [{ name: entry.inputName, shape, data: x.data }], outputs: [{ name: entry.outputName, parameters: { binary_data: true } }] }, { binary: true });
      const ref = modelBytes ? (await monolithic(modelBytes, x, entry.inputName))[entry.outputName] as FloatTensor : undefined;
      return { enc, ref };
    }));
    const headers = (i: number) => ({ ...inputs[i].enc.headers, ...(key ? { authorization: `Bearer ${key}` } : {}) });

    const one = async (i: number): Promise<Outcome> => {
      const t0 = performance.now();
      let res: Response;
      try {
        res = await fetch(`${stack.url}/v2/models/${entry.name}/infer`, { method: 'POST', body: new Uint8Array(inputs[i].enc.body), headers: headers(i) });
      } catch (e) {
        return { ok: false, ms: performance.now() - t0, kind: `network: ${(e as Error).message}` };
      }
      const body = Buffer.from(await res.arrayBuffer());
      const ms = performance.now() - t0;
      if (res.status !== 200) {
        let code = '';
        try { code = JSON.parse(body.toString('utf8')).code ?? ''; } catch { code = 'non-JSON'; }
        return { ok: false, ms, kind: `${res.status} ${code}`.trim(), retryAfterS: Number(res.headers.get('retry-after') ?? 1) || 1 };
      }
      const ref = inputs[i].ref;
      if (!ref) return { ok: true, ms, kind: '200' };
      const out = decodeInferResponse(body, Object.fromEntries(res.headers.entries())).outputs[0];
      const c = compareTensors(ref, { dims: out.shape, data: out.data as Float32Array });
      const wrong = !(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef));
      return { ok: !wrong, ms, kind: wrong ? 'wrong answer' : '200', wrong };
    };

    const drive = async (ms: number, record: Outcome[] | undefined) => {
      const end = performance.now() + ms;
      await Promise.all(Array.from({ length: clients }, async (_, c) => {
        let n = c;
        while (performance.now() < end) {
          const o = await one(n++ % INPUTS);
          record?.push(o);
          if (o.kind.startsWith('503')) await sleep((backoffMs ?? (o.retryAfterS ?? 1) * 1000) * (0.5 + Math.random()));
        }
      }));
    };

    if (warmup > 0) {
      console.log(`warm-up: ${clients} clients for ${warmup} s`);
      await drive(warmup * 1000, undefined);
    }
    const rssStart = processRss(stack);
    console.log(`load: ${clients} clients for ${seconds} s on ${entry.name} (batch ${batch})`);
    const outcomes: Outcome[] = [];
    const t0 = performance.now();
    const rssSamples: ProcRss[][] = [];
    const sampler = setInterval(() => rssSamples.push(processRss(stack)), rssEvery * 1000);
    const killer = killEvery === undefined ? undefined : startKiller(stack.pool, config.functions.worker.name, killEvery);
    await drive(seconds * 1000, outcomes);
    const killed = killer?.stop();
    clearInterval(sampler);
    const elapsed = (performance.now() - t0) / 1000;
    const rssEnd = processRss(stack);
    // The handler sweeps a request's prefix before answering; give late sweeps a moment.
    await sleep(1000);
    const leaked = await stack.store.list('requests/');

    const okMs = outcomes.filter((o) => o.ok).map((o) => o.ms).sort((a, b) => a - b);
    const byKind: Record<string, number> = {};
    for (const o of outcomes) if (!o.ok) byKind[o.kind] = (byKind[o.kind] ?? 0) + 1;
    const refused = Object.entries(byKind).filter(([k]) => k.startsWith('503')).reduce((a, [, n]) => a + n, 0);
    const errors = outcomes.length - okMs.length - refused;
    const r1 = (x: number) => Math.round(x * 10) / 10;
    const summary = {
      model: entry.name, batch, clients, seconds, maxInflight: config.maxInflight, maxQueue: config.maxQueue,
      requests: outcomes.length, ok: okMs.length, refused, errors, wrong: outcomes.filter((o) => o.wrong).length, byKind,
      throughput: r1(okMs.length / elapsed),
      latencyMs: { p50: r1(percentile(okMs, 50)), p90: r1(percentile(okMs, 90)), p99: r1(percentile(okMs, 99)), max: r1(okMs.at(-1) ?? NaN) },
      leakedObjects: leaked.length,
      ...(killed ? { killEveryMs: killEvery, workersKilled: killed.kills, busyWorkersKilled: killed.busyKills } : {}),
      nonJsonFailures: outcomes.filter((o) => o.kind.includes('non-JSON')).length,
      rssMb: rssEnd.map((e) => ({
        fn: e.fn, pid: e.pid, start: rssStart.find((s) => s.pid === e.pid)?.mb ?? null,
        every: rssSamples.map((snap) => snap.find((s) => s.pid === e.pid)?.mb ?? null), end: e.mb ?? null,
      })),
    };
    console.log(`\nrequests ${summary.requests}: ${summary.ok} ok, ${refused} refused (503), ${errors} errors, ${summary.wrong} wrong answers${check ? '' : ' (not checked)'}`);
    for (const [k, n] of Object.entries(byKind)) console.log(`  ${k}: ${n}`);
    if (killed) console.log(`workers killed: ${killed.kills} (${killed.busyKills} mid-invocation), one every ${killEvery} ms; success rate ${(100 * summary.ok / Math.max(1, summary.requests)).toFixed(1)}%`);
    console.log(`throughput ${summary.throughput} req/s; latency of successes p50 ${summary.latencyMs.p50} ms, p90 ${summary.latencyMs.p90} ms, p99 ${summary.latencyMs.p99} ms, max ${summary.latencyMs.max} ms`);
    console.log(`objects left under requests/: ${leaked.length}${leaked.length ? ` (${leaked.slice(0, 5).join(', ')}${leaked.length > 5 ? ', ...' : ''})` : ''}`);
    console.log(`RSS (MB) after warm-up, every ${rssEvery} s, at the end:`);
    for (const e of summary.rssMb) console.log(`  ${e.fn.padEnd(16)} pid ${String(e.pid).padEnd(8)} ${[e.start, ...e.every, e.end].map((x) => String(x ?? '-')).join(' -> ')}`);
    console.log(JSON.stringify(summary));
    return errors > 0 || leaked.length > 0 ? 1 : 0;
  } finally {
    await stack.close();
    await rm(dir, { recursive: true, force: true });
  }
});
