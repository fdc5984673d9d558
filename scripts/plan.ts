// npm run plan -- --model <file.onnx> --input-shape NxCxHxW --grid RxC[,RxC...]|auto --out <plan.json> [--cuts exchange|stage|block|none|t1,t2] [--max-workers 100]
//   auto: [--objective balanced|latency|cost] [--latency-slack 0.25] [--worker-memory-mb 1024] [--vcpu 1] [--slo-ms N]
//         [--profile local|fc|file.json] [--concurrency N]
//   balanced (default): the cheapest plan within --latency-slack (25%) of the fastest plan's predicted latency.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { cutCandidates, DEFAULT_MAX_WORKERS, parseGrid, parseShape, planModel, type CutSpec } from '../src/planner/plan.ts';
import { readInput, runCli, UsageError } from '../src/cli/common.ts';
import { DEFAULT_LATENCY_SLACK, planModelAuto } from '../src/planner/auto.ts';
import { formatRange, loadProfileRange, predictRange } from '../src/cost/profiles.ts';

export function parseCuts(spec: string | undefined): CutSpec | undefined {
  // Unset: the planner's default (`exchange`, or `stage` for a grid per group).
  if (!spec) return undefined;
  if (spec === 'stage' || spec === 'block' || spec === 'none' || spec === 'exchange') return spec;
  return { tensors: spec.split(',').map((s) => s.trim()).filter(Boolean) };
}

runCli(async () => {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' }, 'input-shape': { type: 'string' }, grid: { type: 'string' }, out: { type: 'string' },
      cuts: { type: 'string' }, 'list-cuts': { type: 'boolean' }, name: { type: 'string' },
      objective: { type: 'string', default: 'balanced' }, 'latency-slack': { type: 'string' }, 'worker-memory-mb': { type: 'string', default: '1024' }, vcpu: { type: 'string', default: '1' },
      'slo-ms': { type: 'string' }, profile: { type: 'string', default: 'local' }, concurrency: { type: 'string' }, batch: { type: 'string' },
      'max-workers': { type: 'string' },
    },
  });
  if (!values.model || !values['input-shape']) throw new UsageError('usage: npm run plan -- --model <file.onnx> --input-shape NxCxHxW --grid RxC|auto --out <plan.json> [--cuts exchange|stage|block|none|t1,t2] [--max-workers N] [--list-cuts]');
  const bytes = await readInput(values.model, 'model');
  const shape = parseShape(values['input-shape']);
  if (values['list-cuts']) {
    for (const c of cutCandidates(bytes, shape)) console.log(`${c.tensor}\t${c.shape.join('x')}\tfan-out ${c.fanOut}`);
    return;
  }
  if (!values.grid || !values.out) throw new UsageError('--grid and --out are required');
  const maxWorkers = Number(values['max-workers'] ?? DEFAULT_MAX_WORKERS);
  if (!Number.isInteger(maxWorkers) || maxWorkers < 1) throw new UsageError(`--max-workers must be a positive integer, not ${values['max-workers']}`);
  const t0 = performance.now();
  const name = values.name ?? values.model.split('/').pop()!.replace(/\.onnx$/, '');
  let plan;
  let range: ReturnType<typeof loadProfileRange> | undefined;
  if (values.grid === 'auto') {
    const objective = values.objective;
    if (objective !== 'balanced' && objective !== 'latency' && objective !== 'cost') throw new UsageError(`--objective must be balanced, latency or cost, not ${objective}`);
    if (objective === 'cost' && !values['slo-ms']) throw new UsageError('--objective cost needs --slo-ms');
    const num = (flag: string, v: string | undefined) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${flag} must be a positive number, not ${v}`);
      return n;
    };
    range = loadProfileRange(values.profile);
    const profile = range.typical;
    let latencySlack = DEFAULT_LATENCY_SLACK;
    if (values['latency-slack'] !== undefined) {
      latencySlack = Number(values['latency-slack']);
      if (!Number.isFinite(latencySlack) || latencySlack < 0) throw new UsageError(`--latency-slack must be a number >= 0 (0.25 = within 25% of the fastest plan), not ${values['latency-slack']}`);
    }
    const auto = planModelAuto(bytes, shape, {
      latencySlack,
      objective, profile, vcpu: num('vcpu', values.vcpu), workerMemoryMb: num('worker-memory-mb', values['worker-memory-mb']),
      // FC scales out to the worker function's instance limit; the local stack to its pool (4
      // unless told), which also bounds its chains.
      concurrency: values.concurrency ? num('concurrency', values.concurrency) : profile.name === 'local' && !values['max-workers'] ? 4 : maxWorkers,
      maxWorkers,
      batch: values.batch ? num('batch', values.batch) : shape[0],
      ...(values['slo-ms'] ? { sloMs: num('slo-ms', values['slo-ms']) } : {}),
    }, name);
    plan = auto.plan;
    for (const c of auto.choice.candidates) {
      const grids = c.label === 'mixed' && c.grids.length ? ` (${c.grids.map((g) => `${g.rows}x${g.cols}`).join(',')})` : '';
      const priced = c.latencyMs !== undefined ? `${c.latencyMs.toFixed(0)} ms, ${c.computeUnits!.toFixed(3)} CU, peak ${c.workerPeakMb!.toFixed(0)} MB, ${c.tiles} tiles in ${c.chains} chains` : '';
      console.log(`auto: ${c.label}${grids}  ${priced}${c.skipped ? `${priced ? '; ' : ''}dropped: ${c.skipped}` : ''}`);
    }
    console.log(`auto: chose ${auto.choice.label}${auto.choice.label === 'mixed' ? ` (${auto.choice.evaluated} group/grid pairs evaluated; cuts at ${auto.choice.cuts.join(', ') || '(none)'})` : ''}`);
  } else {
    plan = planModel(bytes, { inputShape: shape, grid: parseGrid(values.grid), cuts: parseCuts(values.cuts), name, maxWorkers }).plan;
  }
  const ms = performance.now() - t0;
  await mkdir(dirname(values.out), { recursive: true });
  await writeFile(values.out, `${JSON.stringify(plan, null, 1)}\n`);
  const inChain = new Map(plan.chains.flatMap((c) => c.stages.map((id) => [id, c.id] as const)));
  for (const s of plan.stages) {
    if (s.kind === 'group') console.log(`${s.label.padEnd(60)} grid ${s.grid.rows}x${s.grid.cols}  out ${s.outputs.map((o) => o.shape.slice(2).join('x')).join(',')}  redundancy ${s.flops.redundancy.toFixed(3)}`);
    else if (inChain.has(s.id)) console.log(`${s.label.padEnd(60)} in chain ${inChain.get(s.id)} (reduction partials combined by its workers)`);
    else console.log(`${s.label.padEnd(60)} on master (${Object.entries(s.reasons).map(([op, r]) => `${op}: ${r}`).join('; ')})`);
  }
  for (const c of plan.chains) {
    const stages = c.stages.map((id) => plan.stages.find((s) => s.id === id)!);
    const groups = stages.filter((s) => s.kind === 'group').length;
    console.log(`chain ${c.id}: stages ${c.stages.join(',')} (${groups} group${groups === 1 ? '' : 's'}${stages.length > groups ? ` + ${stages.length - groups} reduction${stages.length - groups === 1 ? '' : 's'}` : ''}), ${c.workers} worker${c.workers === 1 ? '' : 's'}${c.stages.length > 1 ? ', co-scheduled' : ''}`);
  }
  if (plan.prediction && range) {
    const pr = plan.prediction;
    const r = predictRange(plan, { vcpu: pr.vcpu, memoryMb: pr.workerMemoryMb, batch: pr.batch, concurrency: pr.concurrency, maxWorkers: plan.maxWorkers }, range);
    const widest = Math.max(...plan.stages.map((s) => (s.kind === 'group' ? s.tiles.length : 0)), ...plan.chains.map((c) => c.workers));
    console.log(`predicted (${pr.profile} profile, typical (best-worst) over its ranges): ${formatRange(r.typical.latencyMs, r.best.latencyMs, r.worst.latencyMs, 0, ' ms')}, `
      + `USD ${formatRange(r.typical.totalUsd * 1000, r.best.totalUsd * 1000, r.worst.totalUsd * 1000, 4)} per 1000 requests (FC compute ${pr.computeUnits} CU + store requests), `
      + `worker peak ${pr.workerPeakMb.toFixed(0)} MB, ${pr.invocations} invocations, ${pr.storeRequests} store requests (peak ${r.typical.peakStoreRps.toFixed(0)}/s), at most ${widest} concurrent workers`);
  }
  console.log(JSON.stringify({ out: values.out, groups: plan.summary.groups, chains: plan.summary.chains, maxWorkers: plan.maxWorkers, tiles: plan.summary.tiles, redundancy: plan.summary.redundancy, subModelBytes: plan.summary.subModelBytes, modelBytes: plan.model.bytes, subModelRatio: plan.summary.subModelBytes / plan.model.bytes, planMs: Math.round(ms) }));
});
