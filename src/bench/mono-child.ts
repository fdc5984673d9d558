/**
 * The monolithic baseline process (forked by mono.ts): one warm ORT session of the whole model
 * per (model, threads), run on a seeded input; replies with per-run times, the output of the
 * first run and the process's peak RSS. Runs in its own process so that the bench can give it
 * the worker's threads, CPU affinity and duty cycle, and measure its memory alone.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { asFloat32, createSession, type ModelSession } from '../runtime/ort.ts';
import { randomTensor } from '../tensor/random.ts';

export interface MonoRequest { t: 'run'; id: number; modelPath: string; inputName: string; shape: number[]; seed: number; threads: number; warmup: number; runs: number }
export type MonoReply =
  | { t: 'result'; id: number; times: number[]; output: { dims: number[]; data: Float32Array }; maxRssMb: number }
  | { t: 'error'; id: number; message: string };

const sessions = new Map<string, Promise<ModelSession>>();

/** Peak RSS of this process: VmHWM (getrusage maxRSS would include the parent's RSS at fork). */
function peakRssMb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch { /* not Linux */ }
  return process.resourceUsage().maxRSS / 1024;
}

async function handle(req: MonoRequest): Promise<MonoReply> {
  const key = `${req.modelPath}#${req.threads}`;
  let s = sessions.get(key);
  if (!s) {
    s = readFile(req.modelPath).then((b) => createSession(b, `monolithic ${req.modelPath}`, { threads: req.threads }));
    sessions.set(key, s);
  }
  const session = await s;
  const x = randomTensor(req.shape, req.seed);
  let output: { dims: number[]; data: Float32Array } | undefined;
  for (let i = 0; i < req.warmup; i++) {
    const out = await session.run({ [req.inputName]: x });
    output ??= asFloat32(Object.values(out)[0], 'monolithic output');
  }
  const times: number[] = [];
  for (let i = 0; i < req.runs; i++) {
    const t0 = performance.now();
    const out = await session.run({ [req.inputName]: x });
    times.push(performance.now() - t0);
    output ??= asFloat32(Object.values(out)[0], 'monolithic output');
  }
  return { t: 'result', id: req.id, times, output: output!, maxRssMb: peakRssMb() };
}

process.on('message', (msg: MonoRequest) => {
  if (msg?.t !== 'run') return;
  handle(msg).then(
    (r) => process.send!(r),
    (e: unknown) => process.send!({ t: 'error', id: msg.id, message: (e as Error)?.message ?? String(e) } satisfies MonoReply),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ t: 'ready' });
