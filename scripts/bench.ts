// npm run bench: the measurement sweep (the paper's Table 1 and figures 3-7, latency, throughput,
// cost, monolithic baseline, cost-model predictions, concurrency, multi-tenancy). See docs/bench.md.
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runCli, UsageError } from '../src/cli/common.ts';
import { buildSweep, sweepFromFlags, SweepError } from '../src/bench/sweep.ts';
import { runBench } from '../src/bench/runner.ts';
import { captureInstanceLogs, formatTable, timestampDir, writeOutputs } from '../src/bench/output.ts';
import { createProgress } from '../src/bench/progress.ts';
import { standaloneSvg } from '../src/bench/svg.ts';

const HELP = `npm run bench -- [flags]

  --quick                 reduced sweep (< 3 min on 2 cores): batch 1,4; plans 2x2,4x4(,auto);
                          1 vCPU/2048 MB and 0.5 vCPU/1024 MB; concurrency 2; one multi-tenant run; 5 requests
  --suite LIST            table1,concurrency,multitenant (default: all)
  --batch LIST            batch sizes (default 1,16,64,128)
  --plans LIST            2x2,4x4,auto (default all; auto is skipped until the planner supports it)
  --vcpu LIST             worker vCPUs (default 1,0.35,1.5), crossed with --memory; FC-invalid pairs are skipped
  --memory LIST           worker memory in MB (default 2048,512,4096)
  --resources LIST        explicit VCPUxMB pairs instead, e.g. 0.35x512,1.5x4096 (the first is the reference
                          setting for the concurrency and multi-tenant suites)
  --concurrency LIST      concurrent client requests for the concurrency suite (default 1,2,4,8)
  --requests N            measured requests per configuration (default 5)
  --warmup N              warm-up requests per configuration and client (default 1)
  --workers N             WORKER_MAX_INSTANCES per stack (default 4)
  --mt-models LIST        multi-tenant models (default resnet18,mobilenetv2)
  --mt-requests N         multi-tenant requests per model (default 10)
  --mt-concurrency N      multi-tenant concurrent requests (default 4)
  --mt-batch N            multi-tenant batch size (default 1)
  --max-sessions N        WORKER_MAX_SESSIONS (default: every group the stack serves, at least 8)
  --fresh-stacks          a new stack for every configuration (exact per-configuration peak RSS; slower)
  --no-affinity           do not pin worker processes to cores
  --no-throttle           do not duty-cycle workers for fractional vCPU
  --no-mono               skip the monolithic ORT baseline
  --timeout-ms N          FUNCTION_TIMEOUT_MS (default 600000)
  --seed N                input seed (default 1)
  --out DIR               output root (default bench-out); results go to DIR/<timestamp>/
  --png                   also render every chart to DIR/<timestamp>/png/*.png (with sharp)
  --list                  print the configurations and exit
  --calibrate             instead of benchmarking: measure this machine and write profiles/local.json
                          (the cost model's local profile; same as npm run calibrate)
`;

runCli(async () => {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' }, suite: { type: 'string' }, batch: { type: 'string' }, plans: { type: 'string' },
      vcpu: { type: 'string' }, memory: { type: 'string' }, resources: { type: 'string' }, concurrency: { type: 'string' },
      requests: { type: 'string' }, warmup: { type: 'string' }, workers: { type: 'string' },
      'mt-models': { type: 'string' }, 'mt-requests': { type: 'string' }, 'mt-concurrency': { type: 'string' }, 'mt-batch': { type: 'string' },
      'max-sessions': { type: 'string' }, 'fresh-stacks': { type: 'boolean' },
      'no-affinity': { type: 'boolean' }, 'no-throttle': { type: 'boolean' }, 'no-mono': { type: 'boolean' },
      'timeout-ms': { type: 'string', default: '600000' }, seed: { type: 'string', default: '1' },
      out: { type: 'string', default: 'bench-out' }, png: { type: 'boolean' }, list: { type: 'boolean' }, calibrate: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help) { process.stdout.write(HELP); return 0; }
  if (values.calibrate) {
    const { calibrateLocal } = await import('../src/calibrate/calibrate.ts');
    const profile = await calibrateLocal((s) => console.log(s));
    await writeFile('profiles/local.json', `${JSON.stringify(profile, null, 2)}\n`);
    console.log(JSON.stringify(profile));
    return 0;
  }
  let sweep;
  try {
    sweep = sweepFromFlags(values);
  } catch (e) {
    if (e instanceof SweepError) throw new UsageError(e.message);
    throw e;
  }
  const configs = buildSweep(sweep.options);
  if (!configs.length) throw new UsageError('the selected sweep is empty');
  if (values.list) {
    for (const c of configs) console.log(`${c.id.padEnd(44)} stack ${c.stackKey}  requests ${c.requests}`);
    console.log(`${configs.length} configurations on ${new Set(configs.map((c) => c.stackKey)).size} stacks`);
    return 0;
  }
  const num = (s: string | undefined, what: string) => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${what}: "${s}" is not a positive integer`);
    return n;
  };
  const outDir = resolve(values.out!, timestampDir());
  await mkdir(outDir, { recursive: true });
  const workDir = await mkdtemp(join(tmpdir(), 'fc-bench-'));
  const restoreStderr = captureInstanceLogs(join(outDir, 'functions.log'));
  let aborted = false;
  const onSigint = () => {
    if (aborted) process.exit(130);
    aborted = true;
    process.stderr.write('\ninterrupted: finishing the current request, then writing what was measured (Ctrl-C again to quit now)\n');
  };
  process.on('SIGINT', onSigint);
  const t0 = performance.now();
  let res;
  try {
    res = await runBench({
      configs, workDir, affinity: !values['no-affinity'], throttle: !values['no-throttle'], mono: !values['no-mono'],
      timeoutMs: num(values['timeout-ms'], 'timeout-ms')!, seed: num(values.seed, 'seed')!, maxSessions: num(values['max-sessions'], 'max-sessions'),
      progress: createProgress(), aborted: () => aborted,
    });
  } finally {
    process.removeListener('SIGINT', onSigint);
    const logged = await restoreStderr();
    if (logged) process.stderr.write(`${logged} function log lines in ${join(outDir, 'functions.log')}\n`);
    await rm(workDir, { recursive: true, force: true });
  }
  res.notes.unshift(...sweep.notes);
  const files = await writeOutputs(outDir, res);
  if (values.png) await renderPngs(files.html, join(outDir, 'png'));
  console.log(formatTable(res.rows));
  if (res.notes.length) console.log(`\nnotes:\n${res.notes.map((n) => `- ${n}`).join('\n')}`);
  console.log(`\n${res.rows.length} rows in ${((performance.now() - t0) / 1000).toFixed(0)} s\n${files.csv}\n${files.json}\n${files.html}`);
  return res.rows.some((r) => r.status === 'ok' || r.status === 'partial') ? 0 : 1;
});

/** Each chart of the report as a PNG (sharp renders SVG with librsvg): for looking at charts without a browser. */
async function renderPngs(htmlFile: string, dir: string): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const { default: sharp } = await import('sharp');
  const html = await readFile(htmlFile, 'utf8');
  await mkdir(dir, { recursive: true });
  const svgs = html.match(/<svg [\s\S]*?<\/svg>/g) ?? [];
  let i = 0;
  for (const svg of svgs) {
    const file = join(dir, `chart-${String(++i).padStart(2, '0')}.png`);
    await sharp(Buffer.from(standaloneSvg(svg)), { density: 110 }).flatten({ background: '#ffffff' }).png().toFile(file);
  }
  await writeFile(join(dir, 'README.txt'), `${svgs.length} charts from ${htmlFile}\n`);
}
