// npm run plan -- --model <file.onnx> --input-shape NxCxHxW --grid RxC[,RxC...] --out <plan.json> [--cuts stage|block|none|t1,t2]
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { cutCandidates, parseGrid, parseShape, planModel, type CutSpec } from '../src/planner/plan.ts';
import { readInput, runCli, UsageError } from '../src/cli/common.ts';

export function parseCuts(spec: string | undefined): CutSpec {
  if (!spec) return 'stage';
  if (spec === 'stage' || spec === 'block' || spec === 'none') return spec;
  return { tensors: spec.split(',').map((s) => s.trim()).filter(Boolean) };
}

runCli(async () => {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' }, 'input-shape': { type: 'string' }, grid: { type: 'string' }, out: { type: 'string' },
      cuts: { type: 'string' }, 'list-cuts': { type: 'boolean' }, name: { type: 'string' },
    },
  });
  if (!values.model || !values['input-shape']) throw new UsageError('usage: npm run plan -- --model <file.onnx> --input-shape NxCxHxW --grid RxC --out <plan.json> [--cuts stage|block|none|t1,t2] [--list-cuts]');
  const bytes = await readInput(values.model, 'model');
  const shape = parseShape(values['input-shape']);
  if (values['list-cuts']) {
    for (const c of cutCandidates(bytes, shape)) console.log(`${c.tensor}\t${c.shape.join('x')}\tfan-out ${c.fanOut}`);
    return;
  }
  if (!values.grid || !values.out) throw new UsageError('--grid and --out are required');
  const t0 = performance.now();
  const { plan } = planModel(bytes, { inputShape: shape, grid: parseGrid(values.grid), cuts: parseCuts(values.cuts), name: values.name ?? values.model.split('/').pop()!.replace(/\.onnx$/, '') });
  const ms = performance.now() - t0;
  await mkdir(dirname(values.out), { recursive: true });
  await writeFile(values.out, `${JSON.stringify(plan, null, 1)}\n`);
  for (const s of plan.stages) {
    if (s.kind === 'group') console.log(`${s.label.padEnd(60)} grid ${s.grid.rows}x${s.grid.cols}  out ${s.outputs.map((o) => o.shape.slice(2).join('x')).join(',')}  redundancy ${s.flops.redundancy.toFixed(3)}`);
    else console.log(`${s.label.padEnd(60)} on master (${Object.entries(s.reasons).map(([op, r]) => `${op}: ${r}`).join('; ')})`);
  }
  console.log(JSON.stringify({ out: values.out, groups: plan.summary.groups, tiles: plan.summary.tiles, redundancy: plan.summary.redundancy, subModelBytes: plan.summary.subModelBytes, modelBytes: plan.model.bytes, subModelRatio: plan.summary.subModelBytes / plan.model.bytes, planMs: Math.round(ms) }));
});
