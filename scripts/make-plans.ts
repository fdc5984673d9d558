// npm run make-plans: regenerates the committed plans (plans/*.json) from src/planner/committed.ts.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { buildModel, ensureModel } from '../src/models/index.ts';
import { planModel } from '../src/planner/plan.ts';
import { COMMITTED_PLANS } from '../src/planner/committed.ts';
import { runCli } from '../src/cli/common.ts';

runCli(async () => {
  for (const c of COMMITTED_PLANS) {
    await ensureModel(c.arch, `models/${c.arch}.onnx`);
    const t0 = performance.now();
    const { plan } = planModel(buildModel(c.arch), { inputShape: c.inputShape, grid: c.grid, cuts: c.cuts, name: c.arch });
    await mkdir(dirname(c.file), { recursive: true });
    await writeFile(c.file, `${JSON.stringify(plan, null, 1)}\n`);
    console.log(`${c.file}: ${plan.summary.groups} groups, ${plan.summary.tiles} tiles, redundancy ${plan.summary.redundancy.toFixed(3)}, ${(performance.now() - t0).toFixed(0)} ms`);
  }
});
