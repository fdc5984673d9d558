import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/models/index.ts';
import { burstVcpu, contendedLatency, makespan, quotaBoundMs, predictMonolithic, predictPlan, workerSpeed, costProfileSchema, type CostProfile } from '../../src/cost/model.ts';
import { loadProfile } from '../../src/cost/profiles.ts';
import { planModelAuto } from '../../src/planner/auto.ts';
import { planModel } from '../../src/planner/plan.ts';
import { COMMITTED_PLANS } from '../../src/planner/committed.ts';
import { chainsFor, coScheduled } from '../../src/planner/chains.ts';
import { buildRoutes, exchangeBytes } from '../../src/plan/bundles.ts';
import { verifyPlan } from '../../src/exec/verify.ts';
import type { Plan } from '../../src/plan/schema.ts';

// A fixed profile so these tests do not move when profiles/local.json is recalibrated.
const profile: CostProfile = costProfileSchema.parse({
  name: 'test', gflopsPerVcpu: 40, threadEfficiency: 0.7, invokeOverheadMs: 5, coldStartMs: 800, coldStartProbability: 0,
  storeLatencyMs: 1, storeBandwidthMBps: 500, sessionLoadMsPerMB: 5, sessionHitRate: 1, baseRssMb: 150,
  weightRssFactor: 3, activationRssFactor: 1.5, masterGflops: 40, requestOverheadMs: 10,
});

const resnet = buildModel('resnet18');
// The committed plans' specs, planned here so the tests follow the current plan format.
const committed = (file: string) => {
  const c = COMMITTED_PLANS.find((x) => x.file.endsWith(file))!;
  return planModel(resnet, { inputShape: c.inputShape, grid: c.grid, cuts: c.cuts, name: c.arch }).plan;
};

/** Bytes of the non-spatial tensors written whole (each written once and read once). */
function wholeBytes(plan: Plan, tensors: Iterable<string>, batch: number): number {
  let total = 0;
  for (const t of tensors) {
    const shape = plan.stages.flatMap((s) => s.outputs).find((o) => o.name === t)?.shape ?? plan.outputs.find((o) => o.name === t)!.shape;
    total += 2 * shape.slice(1).reduce((a, b) => a + b, 1) * 4 * batch;
  }
  return total;
}

describe('cost model', () => {
  const p2 = committed('2x2.json');
  const p4 = committed('4x4.json');
  const o = { profile, vcpu: 1, memoryMb: 2048, batch: 1, concurrency: 64 };

  it('busy workers share the cores the stack gives them; one alone runs at its vCPU', () => {
    const local = { ...profile, threadEfficiency: 0, maxParallelWorkers: 2, effectiveCores: 1 };
    assert.equal(workerSpeed(local, 0.5, 1), 20e9);
    assert.equal(workerSpeed({ ...local, effectiveCores: 0.5 }, 1, 1), 40e9);
    // Four workers on one effective core: a quarter each, whatever their vCPU.
    assert.equal(workerSpeed(local, 1, 4), 10e9);
    assert.equal(workerSpeed(local, 0.5, 4), 10e9);
    // Without effectiveCores the machine's cores are shared: two 1-vCPU workers at full speed.
    assert.equal(workerSpeed({ ...local, effectiveCores: undefined }, 1, 2), 40e9);
    // A one-tile plan is priced as one worker alone, like the monolithic run.
    const one = planModel(resnet, { inputShape: [1, 3, 224, 224], grid: { rows: 1, cols: 1 }, cuts: 'none' }).plan;
    const solo = predictPlan(one, { ...o, profile: local, vcpu: 0.5, concurrency: 4 }).latencyMs;
    const mono = predictMonolithic(one, { profile: local, vcpu: 0.5, memoryMb: 2048, batch: 1 }).latencyMs;
    assert.ok(Math.abs(solo - mono) / mono < 0.2, `1x1 ${solo} ms vs monolithic ${mono} ms`);
  });

  it('a fractional-vCPU stage waits for stopped neighbours less the longer it runs', () => {
    const local = { ...profile, maxParallelWorkers: 2, throttleRoundMs: 80 };
    const at = (batch: number, throttleRoundMs: number) => predictPlan(p2, { ...o, profile: { ...local, throttleRoundMs }, vcpu: 0.5, batch, concurrency: 4 }).latencyMs;
    const waitB1 = at(1, 80) - at(1, 0);
    const waitB8 = at(8, 80) - at(8, 0);
    assert.ok(waitB1 > 0 && waitB8 >= 0 && waitB8 < waitB1, `wait at batch 1 ${waitB1} ms, at batch 8 ${waitB8} ms`);
    // Whole vCPUs are never stopped.
    assert.equal(predictPlan(p2, { ...o, profile: local, concurrency: 4 }).latencyMs, predictPlan(p2, { ...o, profile: { ...local, throttleRoundMs: 0 }, concurrency: 4 }).latencyMs);
  });

  it('makespan schedules longest-first on the available instances', () => {
    assert.equal(makespan([5, 5, 5, 5], 4), 5);
    assert.equal(makespan([5, 5, 5, 5], 2), 10);
    assert.equal(makespan([9, 3, 3, 3], 2), 9);
    assert.equal(makespan([], 3), 0);
  });

  it('a one-chain plan is one invocation per worker, plus the master and the handler', () => {
    assert.equal(p2.chains.length, 1);
    assert.equal(p2.chains[0].workers, 4);
    assert.equal(predictPlan(p2, o).invocations, 4 + 2);
    // 4x4 on the early groups, 2x2 (with the classifier's pooling) on the late ones: the grid
    // narrows, so one chain of 16 runs it all (12 of its workers finish after the 4x4 groups).
    assert.deepEqual(p4.chains.map((c) => c.workers), [16]);
    assert.equal(predictPlan(p4, o).invocations, 16 + 2);
    // With 4 instances the 4x4 groups run one by one and the 2x2 tail is a chain of 4.
    assert.deepEqual(chainsFor(p4, 4).map((c) => c.workers), [16, 16, 16, 16, 4]);
    assert.equal(predictPlan(p4, { ...o, maxWorkers: 4 }).invocations, 4 * 16 + 4 + 2);
    // Chains too wide for the instances run group by group: an invocation per tile.
    assert.equal(predictPlan(p2, { ...o, maxWorkers: 1 }).invocations, p2.summary.tiles + 2);
  });

  it('counts store bytes exactly: every bundle written and read once, plus whole tensors', () => {
    for (const plan of [p2, p4]) {
      for (const batch of [1, 4]) {
        for (const maxWorkers of [plan.maxWorkers, 1]) {
          const routes = buildRoutes(plan, chainsFor(plan, maxWorkers));
          const p = predictPlan(plan, { ...o, batch, maxWorkers });
          const expected = exchangeBytes(plan, batch, routes).direct + wholeBytes(plan, routes.wholeWrites, batch);
          assert.equal(p.storeBytes, expected, `${plan.summary.tiles} tiles, batch ${batch}, maxWorkers ${maxWorkers}`);
        }
      }
      // The plan's own chains by default.
      assert.equal(predictPlan(plan, o).storeBytes, exchangeBytes(plan).direct + wholeBytes(plan, buildRoutes(plan).wholeWrites, 1));
    }
  });

  it('predicts more parallel work as faster and finer grids as more store requests', () => {
    const a = predictPlan(p2, o);
    const b = predictPlan(p4, o);
    assert.ok(b.storeRequests > a.storeRequests);
    // On one instance the same work runs tile after tile: slower than a chain of four.
    assert.ok(predictPlan(p2, { ...o, concurrency: 1, maxWorkers: 1 }).latencyMs > a.latencyMs);
    // Batch 16 costs about 16x the compute.
    const big = predictPlan(p2, { ...o, batch: 16 });
    assert.ok(big.billed.vcpuSeconds > 8 * a.billed.vcpuSeconds);
    assert.ok(a.workerPeakMb > profile.baseRssMb);
  });

  it('concurrent requests: never faster than alone, bounded by the shared cores or instances', () => {
    assert.equal(contendedLatency(100, 30, 1), 100);
    assert.equal(contendedLatency(100, 30, 3), 100);
    assert.equal(contendedLatency(100, 30, 5), 150);
    const four = { ...o, concurrency: 4 };
    const alone = predictPlan(p2, four);
    assert.equal(predictPlan(p2, { ...four, requests: 1 }).latencyMs, alone.latencyMs);
    // A chain of four on four instances holds all of them: two requests cannot overlap their chains.
    const chainMs = alone.groups.reduce((a, g) => a + g.latencyMs, 0);
    assert.ok(alone.bottleneckMs >= chainMs - 1e-9);
    assert.ok(predictPlan(p2, { ...four, requests: 2 }).latencyMs >= 2 * chainMs - 1e-9);
    // Two cores shared by sixteen requests: the core-time bound.
    const cores = { ...profile, maxParallelWorkers: 2 };
    const lone = predictPlan(p2, { ...o, profile: cores, concurrency: 1000 });
    assert.ok(predictPlan(p2, { ...o, profile: cores, concurrency: 1000, requests: 16 }).latencyMs >= 16 * lone.bottleneckMs - 1e-9);
    assert.ok(lone.bottleneckMs > 0);
  });

  it('a CPU-time quota: full speed while a period\'s quota lasts, the vCPU\'s rate beyond', () => {
    const quota = { ...profile, cpuQuotaPeriodMs: 100 };
    assert.equal(burstVcpu(profile, 0.5), 0.5);
    assert.equal(burstVcpu(quota, 0.5), 1);
    assert.equal(burstVcpu(quota, 1.5), 2);
    assert.equal(burstVcpu(quota, 2), 2);
    // 40 ms of CPU fits in one period's 50 ms of quota: no bound; 400 ms runs at half a core.
    assert.equal(quotaBoundMs(quota, 0.5, 40), 0);
    assert.equal(quotaBoundMs(quota, 0.5, 400), 800);
    assert.equal(quotaBoundMs(profile, 0.5, 400), 0);
    // A small request at 0.5 vCPU is faster under a quota (its stages run at full speed) and a
    // large one is no faster than at the vCPU's share.
    const half = { ...o, vcpu: 0.5, concurrency: 4 };
    assert.ok(predictPlan(p2, { ...half, profile: quota }).latencyMs < predictPlan(p2, half).latencyMs);
    const big = { ...half, batch: 64 };
    const shared = predictPlan(p2, big).latencyMs;
    const quoted = predictPlan(p2, { ...big, profile: quota }).latencyMs;
    assert.ok(quoted > 0.9 * shared && quoted <= shared * 1.01, `${quoted} vs ${shared}`);
    const mono = (prof: CostProfile, batch: number) => predictMonolithic(p2, { profile: prof, vcpu: 0.5, memoryMb: 2048, batch }).latencyMs;
    // ResNet-18 at 224: 90 ms of CPU at 40 GFLOP/s, more than a period's quota; 9 ms at 400.
    assert.equal(mono(quota, 1), mono(profile, 1));
    const fast = { ...profile, gflopsPerVcpu: 400 };
    assert.ok(mono({ ...fast, cpuQuotaPeriodMs: 100 }, 1) < mono(fast, 1));
    assert.ok(Math.abs(mono(quota, 64) - mono(profile, 64)) / mono(profile, 64) < 0.01);
  });

  it('polls are store requests only on a polling store', () => {
    const native = predictPlan(p4, o);
    const polled = predictPlan(p4, { ...o, profile: { ...profile, pollIntervalMs: 20 } });
    assert.ok(polled.storeRequests > native.storeRequests);
    assert.equal(polled.storeBytes, native.storeBytes);
  });

  it('the shipped profiles validate', () => {
    for (const name of ['local', 'fc']) assert.equal(loadProfile(name).name, name);
    assert.ok(loadProfile('fc').pollIntervalMs > 0);
    assert.equal(loadProfile('local').pollIntervalMs, 0);
    assert.throws(() => loadProfile('nope'), /unknown cost profile/);
  });
});

describe('automatic planning', () => {
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
    const finest = (plan: Plan) => Math.max(...plan.stages.map((s) => (s.kind === 'group' ? s.tiles.length : 0)));
    assert.ok(finest(tight.plan) > finest(loose.plan), `${finest(tight.plan)} vs ${finest(loose.plan)} tiles`);
    assert.throws(() => planModelAuto(resnet, [1, 3, 512, 512], { objective: 'latency', profile, vcpu: 1, workerMemoryMb: 100, concurrency: 4, batch: 1 }), /worker-memory-mb/);
  });

  it('objective cost meets the SLO and is no dearer than the latency-optimal plan', () => {
    const o = { profile, vcpu: 1, workerMemoryMb: 2048, concurrency: 9, batch: 1 };
    const fast = planModelAuto(resnet, [1, 3, 320, 320], { ...o, objective: 'latency' });
    const slo = fast.plan.prediction!.latencyMs * 1.5;
    const cheap = planModelAuto(resnet, [1, 3, 320, 320], { ...o, objective: 'cost', sloMs: slo });
    assert.ok(cheap.plan.prediction!.latencyMs <= slo, `${cheap.plan.prediction!.latencyMs} vs SLO ${slo}`);
    assert.ok(cheap.plan.prediction!.computeUnits <= fast.plan.prediction!.computeUnits * 1.0001);
    assert.throws(() => planModelAuto(resnet, [1, 3, 320, 320], { ...o, concurrency: 4, objective: 'cost', sloMs: 1 }), /slo-ms 1: the fastest predicted is \d+ ms/);
  });

  it('on FC never co-schedules a chain wider than the worker function allows', () => {
    const fc = loadProfile('fc');
    for (const maxWorkers of [4, 100]) {
      const o = { objective: 'latency' as const, profile: fc, vcpu: 1, workerMemoryMb: 4096, concurrency: 100, batch: 1, maxWorkers };
      const { plan, choice } = planModelAuto(resnet, [1, 3, 512, 512], o);
      assert.equal(plan.maxWorkers, maxWorkers);
      for (const c of plan.chains) if (coScheduled(c)) assert.ok(c.workers <= maxWorkers, `chain ${c.id}: ${c.workers} workers > ${maxWorkers}`);
      // The recorded prediction is that of the chains the plan runs as, and the best priced.
      const p = predictPlan(plan, { profile: fc, vcpu: 1, memoryMb: 4096, batch: 1, concurrency: maxWorkers, maxWorkers });
      assert.equal(plan.prediction!.latencyMs, +p.latencyMs.toFixed(2));
      const priced = choice.candidates.filter((c) => c.latencyMs !== undefined && !c.skipped);
      assert.ok(priced.length >= 2);
      for (const c of priced) assert.ok(c.latencyMs! >= p.latencyMs, `${c.label} is faster`);
      if (maxWorkers === 4) for (const c of choice.candidates) if (c.label !== 'mixed') assert.ok(c.grids[0].rows * c.grids[0].cols <= 4, c.label);
    }
  });

  it('on FC drops plans whose workers would exceed the memory limit', () => {
    const fc = loadProfile('fc');
    const o = { objective: 'latency' as const, profile: fc, vcpu: 1, workerMemoryMb: 320, concurrency: 16, batch: 1 };
    const { plan, choice } = planModelAuto(resnet, [1, 3, 512, 512], o);
    assert.ok(choice.candidates.some((c) => c.skipped?.includes('320 MB')), 'some grid is too large for 320 MB');
    assert.ok(plan.prediction!.workerPeakMb <= 320);
    assert.ok(predictPlan(plan, { profile: fc, vcpu: 1, memoryMb: 320, batch: 1, concurrency: 16 }).workerPeakMb <= 320);
    assert.ok(plan.summary.tiles > 1);
  });
});
