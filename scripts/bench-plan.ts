// npm run bench:plan: planner figures (redundancy per plan and group, plan time, sub-model bytes)
// and the cost of the border-handling choice (runtime Pad inputs vs one session per border class).
import { readFile } from 'node:fs/promises';
import { buildModel } from '../src/models/index.ts';
import { planModel, type CutSpec, type Grid } from '../src/planner/plan.ts';
import { COMMITTED_PLANS } from '../src/planner/committed.ts';
import { createSession } from '../src/runtime/ort.ts';
import { executePlan } from '../src/exec/in-process.ts';
import { monolithic } from '../src/exec/verify.ts';
import { randomTensor } from '../src/tensor/random.ts';
import { runCli } from '../src/cli/common.ts';

const fmt = (x: number, d = 3) => x.toFixed(d);
const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;

runCli(async () => {
  const resnet = buildModel('resnet18');
  console.log('## Committed plans');
  for (const c of COMMITTED_PLANS) {
    const plan = JSON.parse(await readFile(c.file, 'utf8'));
    const t0 = performance.now();
    planModel(resnet, { inputShape: c.inputShape, grid: c.grid, cuts: c.cuts, name: c.arch });
    const ms = performance.now() - t0;
    console.log(`${c.file}: ${plan.summary.groups} groups, ${plan.summary.tiles} tiles, redundancy ${fmt(plan.summary.redundancy)}, plan ${ms.toFixed(0)} ms, sub-models ${mb(plan.summary.subModelBytes)} / model ${mb(plan.model.bytes)} = ${fmt(plan.summary.subModelBytes / plan.model.bytes, 4)}x`);
    for (const s of plan.stages) if (s.kind === 'group') console.log(`  ${s.label.padEnd(58)} ${s.grid.rows}x${s.grid.cols} redundancy ${fmt(s.flops.redundancy)}`);
  }

  console.log('\n## ResNet-18 redundancy (tile FLOPs / monolithic FLOPs of the tiled part)');
  const rows: [number, Grid, CutSpec][] = [];
  for (const size of [224, 1024]) for (const cuts of ['stage', 'block'] as const) for (const n of [2, 4]) rows.push([size, { rows: n, cols: n }, cuts]);
  for (const [size, grid, cuts] of rows) {
    const t0 = performance.now();
    const { plan } = planModel(resnet, { inputShape: [1, 3, size, size], grid, cuts });
    console.log(`  ${size}x${size} ${grid.rows}x${grid.cols} one group per ${cuts === 'stage' ? 'stage' : 'block'}: redundancy ${fmt(plan.summary.redundancy)} (${plan.summary.groups} groups, plan ${(performance.now() - t0).toFixed(0)} ms)`);
  }

  console.log('\n## Border handling: runtime Pad inputs (chosen) vs one session per border class');
  const { plan, subModels } = planModel(resnet, { inputShape: [1, 3, 224, 224], grid: { rows: 4, cols: 4 }, cuts: 'stage' });
  const group = plan.stages.filter((s) => s.kind === 'group').sort((a, b) => b.subModel.bytes - a.subModel.bytes)[0];
  const bytes = subModels.get(group.id)!;
  const rss0 = process.memoryUsage().rss;
  let t0 = performance.now();
  const one = await createSession(bytes, 'one');
  const oneMs = performance.now() - t0;
  const rss1 = process.memoryUsage().rss;
  // A 4x4 grid has all 9 border classes; option 2 would hold a session (and weights) for each.
  const more = [];
  t0 = performance.now();
  for (let i = 0; i < 8; i++) more.push(await createSession(bytes, `variant ${i}`));
  const moreMs = performance.now() - t0;
  const rss9 = process.memoryUsage().rss;
  console.log(`  largest group sub-model: ${mb(bytes.length)} (${group.label})`);
  console.log(`  one session (runtime pads): create ${oneMs.toFixed(0)} ms, +${mb(rss1 - rss0)} RSS`);
  console.log(`  nine sessions (attribute variants): create ${(oneMs + moreMs).toFixed(0)} ms, +${mb(rss9 - rss0)} RSS`);
  await Promise.all([one, ...more].map((s) => s.release()));

  // Cost of the Pad nodes themselves: the whole model as one 1x1 "tile" vs monolithic ORT.
  const { plan: p1, subModels: s1 } = planModel(resnet, { inputShape: [1, 3, 224, 224], grid: { rows: 1, cols: 1 }, cuts: 'none' });
  const x = randomTensor([1, 3, 224, 224], 1);
  const reps = 5;
  await monolithic(resnet, x, 'input');
  t0 = performance.now();
  for (let i = 0; i < reps; i++) await monolithic(resnet, x, 'input');
  const mono = (performance.now() - t0) / reps;
  await executePlan(p1, s1, x);
  t0 = performance.now();
  for (let i = 0; i < reps; i++) await executePlan(p1, s1, x);
  const padded = (performance.now() - t0) / reps;
  console.log(`  whole ResNet-18 at 224 incl. session creation: monolithic ${mono.toFixed(0)} ms, 1x1 plan with runtime Pads ${padded.toFixed(0)} ms (ratio ${fmt(padded / mono, 2)})`);
});
