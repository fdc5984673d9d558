import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { buildModel } from '../../src/models/index.ts';
import { makespan, predictPlan, costProfileSchema, type CostProfile } from '../../src/cost/model.ts';
import { loadProfile } from '../../src/cost/profiles.ts';
import { planModelAuto } from '../../src/planner/auto.ts';
import { verifyPlan } from '../../src/exec/verify.ts';
import { parsePlan } from '../../src/planner/materialize.ts';

// A fixed profile so these tests do not move when profiles/local.json is recalibrated.
const profile: CostProfile = costProfileSchema.parse({
  name: 'test', gflopsPerVcpu: 40, threadEfficiency: 0.7, invokeOverheadMs: 5, coldStartMs: 800, coldStartProbability: 0,
  storeLatencyMs: 1, storeBandwidthMBps: 500, sessionLoadMsPerMB: 5, sessionHitRate: 1, baseRssMb: 150,
  weightRssFactor: 3, activationRssFactor: 1.5, masterGflops: 40, requestOverheadMs: 10,
});

describe('cost model', () => {
  it('makespan schedules longest-first on the available instances', () => {
    assert.equal(makespan([5, 5, 5, 5], 4), 5);
    assert.equal(makespan([5, 5, 5, 5], 2), 10);
    assert.equal(makespan([9, 3, 3, 3], 2), 9);
    assert.equal(makespan([], 3), 0);
  });

  it('predicts more parallel work as faster and finer grids as more invocations', async () => {
    const p2 = parsePlan(JSON.parse(await readFile('plans/resnet18-224-2x2.json', 'utf8')));
    const p4 = parsePlan(JSON.parse(await readFile('plans/resnet18-224-4x4.json', 'utf8')));
    const o = { profile, vcpu: 1, memoryMb: 2048, batch: 1, concurrency: 64 };
    const a = predictPlan(p2, o);
    const b = predictPlan(p4, o);
    assert.equal(a.invocations, 24 + 2);
    assert.equal(b.invocations, 72 + 2);
    assert.ok(b.storeRequests > a.storeRequests);
    // With one instance the same work runs serially: slower than 64-wide.
    assert.ok(predictPlan(p2, { ...o, concurrency: 1 }).latencyMs > a.latencyMs);
    // Batch 16 costs about 16x the compute.
    const big = predictPlan(p2, { ...o, batch: 16 });
    assert.ok(big.billed.vcpuSeconds > 8 * a.billed.vcpuSeconds);
    assert.ok(a.workerPeakMb > profile.baseRssMb);
  });

  it('the shipped profiles validate', () => {
    for (const name of ['local', 'fc']) assert.equal(loadProfile(name).name, name);
    assert.throws(() => loadProfile('nope'), /unknown cost profile/);
  });
});

describe('automatic planning', () => {
  const resnet = buildModel('resnet18');

  it('keeps every worker within the memory limit, and the plan is still exact', async () => {
    const auto = planModelAuto(resnet, [1, 3, 320, 320], { objective: 'latency', profile, vcpu: 1, workerMemoryMb: 600, concurrency: 8, batch: 1 });
    assert.ok(auto.plan.prediction!.workerPeakMb <= 600);
    for (const g of auto.choice.grids) assert.ok(g.rows >= 1 && g.cols >= 1);
    const r = await verifyPlan(resnet, auto.plan, auto.subModels, { seed: 4 });
    assert.ok(r.ok, `maxAbsDiff ${r.maxAbsDiff}`);
  });

  it('a tighter memory limit forces finer grids; an impossible one is a clear error', () => {
    const loose = planModelAuto(resnet, [1, 3, 512, 512], { objective: 'latency', profile, vcpu: 1, workerMemoryMb: 4096, concurrency: 4, batch: 1 });
    const tight = planModelAuto(resnet, [1, 3, 512, 512], { objective: 'latency', profile, vcpu: 1, workerMemoryMb: 290, concurrency: 4, batch: 1 });
    assert.ok(tight.plan.prediction!.workerPeakMb <= 290);
    assert.ok(tight.plan.summary.tiles > loose.plan.summary.tiles, `${tight.plan.summary.tiles} vs ${loose.plan.summary.tiles}`);
    assert.throws(() => planModelAuto(resnet, [1, 3, 512, 512], { objective: 'latency', profile, vcpu: 1, workerMemoryMb: 100, concurrency: 4, batch: 1 }), /worker-memory-mb/);
  });

  it('objective cost meets the SLO and is no dearer than the latency-optimal plan', () => {
    const o = { profile, vcpu: 1, workerMemoryMb: 2048, concurrency: 64, batch: 1 };
    const fast = planModelAuto(resnet, [1, 3, 320, 320], { ...o, objective: 'latency' });
    const slo = fast.plan.prediction!.latencyMs * 1.5;
    const cheap = planModelAuto(resnet, [1, 3, 320, 320], { ...o, objective: 'cost', sloMs: slo });
    assert.ok(cheap.plan.prediction!.latencyMs <= slo * 1.05, `${cheap.plan.prediction!.latencyMs} vs SLO ${slo}`);
    assert.ok(cheap.plan.prediction!.computeUnits <= fast.plan.prediction!.computeUnits * 1.0001);
    assert.throws(() => planModelAuto(resnet, [1, 3, 320, 320], { ...o, objective: 'cost', sloMs: 1 }), /slo-ms/);
  });
});
