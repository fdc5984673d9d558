import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../../src/onnx/builder.ts';
import { planModel } from '../../src/planner/plan.ts';
import { verifyPlan } from '../../src/exec/verify.ts';
import { randomCase } from '../helpers/random-models.ts';

// Property: for random layer stacks, input sizes and grids, tiled == monolithic ORT.
const CASES = Number(process.env.PROPERTY_CASES ?? 120);

describe('tiled execution equals monolithic ORT on random CNNs', () => {
  for (let seed = 1; seed <= CASES; seed++) {
    it(`case ${seed}`, async () => {
      const c = randomCase(seed);
      const r = mulberry32(seed);
      const cuts = (['none', 'block', 'stage'] as const)[seed % 3];
      // The grid must fit the smallest group output; find it from a 1x1 plan.
      const probe = planModel(c.bytes, { inputShape: c.shape, grid: { rows: 1, cols: 1 }, cuts }).plan;
      const outs = probe.stages.flatMap((s) => (s.kind === 'group' ? s.outputs.map((o) => o.shape) : []));
      const rows = 1 + Math.floor(r() * Math.min(4, ...outs.map((s) => s[2])));
      const cols = 1 + Math.floor(r() * Math.min(4, ...outs.map((s) => s[3])));
      const ctx = `${c.desc.join(' | ')} | grid ${rows}x${cols} cuts ${cuts}`;
      let res;
      try {
        const p = planModel(c.bytes, { inputShape: c.shape, grid: { rows, cols }, cuts });
        res = await verifyPlan(c.bytes, p.plan, p.subModels, { seed, threads: 1 });
      } catch (e) {
        assert.fail(`${ctx}: ${(e as Error).stack}`);
      }
      assert.ok(res.ok, `${ctx}: maxAbsDiff ${res.maxAbsDiff} maxRef ${res.maxRef}`);
    });
  }
});
