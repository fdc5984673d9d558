import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel } from '../../src/models/index.ts';
import { costProfileSchema, predictMonolithic, predictPlan, type CostProfile } from '../../src/cost/model.ts';
import { formatRange, loadProfile, loadProfileRange, predictRange } from '../../src/cost/profiles.ts';
import { fitProfile, type FitRow } from '../../src/cost/fit.ts';
import { planModel } from '../../src/planner/plan.ts';
import { COMMITTED_PLANS } from '../../src/planner/committed.ts';

const resnet = buildModel('resnet18');
const committed = (file: string) => {
  const c = COMMITTED_PLANS.find((x) => x.file.endsWith(file))!;
  return planModel(resnet, { inputShape: c.inputShape, grid: c.grid, cuts: c.cuts, name: c.arch }).plan;
};
const p2 = committed('224-2x2.json');
const p4 = committed('224-4x4.json');
const big = planModel(resnet, { inputShape: [1, 3, 1024, 1024], grid: { rows: 2, cols: 2 }, name: 'resnet18' }).plan;

describe('FC profile: published figures with ranges and sources', () => {
  const range = loadProfileRange('fc');

  it('every platform figure the issue names has low <= typical <= high and a source', () => {
    const required = [
      'invokeOverheadMs', 'coldStartMs', 'coldStartProbability', 'storeLatencyMs', 'storeBandwidthMBps', 'storeRequestsPerSec',
      'storeBucketBandwidthMBps', 'instanceQuota', 'redisLatencyMs', 'redisClientBandwidthMBps', 'redisBandwidthMBps', 'redisUsdPerHour',
    ] as const;
    for (const k of required) {
      const r = range.sources[k];
      assert.ok(r, `${k} has no range`);
      assert.ok(r.low <= r.typical && r.typical <= r.high, k);
      // Sources cite the shared doc's sections or Alibaba pages by title, or say "assumption"; never a URL.
      assert.match(r.source, /FC\.md|'[^']+'|assumption/, k);
      assert.doesNotMatch(r.source, /https?:\/\//, k);
    }
    assert.equal(range.typical.instanceQuota, 100);
  });

  it('best and worst bracket the typical prediction, for latency and cost', () => {
    for (const exchange of ['store', 'redis'] as const) {
      const r = predictRange(big, { vcpu: 1, memoryMb: 2048, batch: 1, concurrency: 100, exchange }, range);
      assert.ok(r.best.latencyMs < r.typical.latencyMs && r.typical.latencyMs < r.worst.latencyMs, exchange);
      assert.ok(r.best.totalUsd < r.typical.totalUsd && r.typical.totalUsd < r.worst.totalUsd, exchange);
    }
    assert.equal(formatRange(926.2, 269, 2875.9, 0, ' ms'), '926 ms (269-2876)');
    assert.equal(formatRange(5, 5, 5), '5');
  });

  it('the Redis exchange blocks instead of polling and moves strips off the object store', () => {
    const o = { profile: range.typical, vcpu: 1, memoryMb: 2048, batch: 1, concurrency: 100 };
    const oss = predictPlan(big, o);
    const tair = predictPlan(big, { ...o, exchange: 'redis' });
    assert.equal(oss.redisOps, 0);
    assert.ok(tair.redisOps > 0);
    assert.ok(tair.storeRequests < oss.storeRequests / 5, `${tair.storeRequests} vs ${oss.storeRequests}`);
    assert.equal(tair.storeBytes, oss.storeBytes);
    assert.ok(tair.otherUsd.redis > 0 && oss.otherUsd.redis === 0);
    // Spreading the instance over more requests makes each cheaper.
    assert.ok(predictPlan(big, { ...o, exchange: 'redis', requestsPerHour: 36_000 }).otherUsd.redis < tair.otherUsd.redis);
    const local = loadProfile('local');
    assert.throws(() => predictPlan(big, { ...o, profile: local, exchange: 'redis' }), /cannot price the Redis exchange/);
  });

  it('a store request rate over the limit stretches the chain and is reported', () => {
    const o = { profile: range.typical, vcpu: 1, memoryMb: 2048, batch: 1, concurrency: 100 };
    const free = predictPlan(p4, o);
    assert.equal(free.throttleMs, 0);
    const tight = predictPlan(p4, { ...o, profile: { ...range.typical, storeRequestsPerSec: 20 } });
    assert.ok(tight.throttleMs > 0);
    assert.ok(tight.latencyMs > free.latencyMs);
    assert.ok(tight.peakStoreRps > 20);
  });

  it('one large function: all the compute on one instance, two store requests', () => {
    const m = predictMonolithic(big, { profile: range.typical, vcpu: 4, memoryMb: 8192, batch: 1 });
    const m1 = predictMonolithic(big, { profile: range.typical, vcpu: 1, memoryMb: 2048, batch: 1 });
    assert.ok(m.latencyMs < m1.latencyMs);
    assert.ok(m.billed.invocations === 1 && m.totalUsd > m.billed.usd);
  });
});

describe('profile files', () => {
  it('old files with plain numbers still load; ranges are optional', () => {
    const local = loadProfileRange('local');
    assert.deepEqual(local.best, local.typical);
    assert.deepEqual(local.worst, local.typical);
  });

  it('a bad range names the parameter', () => {
    const dir = mkdtempSync(join(tmpdir(), 'profile-'));
    try {
      const fc = JSON.parse(readFileSync('profiles/fc.json', 'utf8'));
      fc.storeLatencyMs = { low: 20, typical: 10, high: 30, source: 'x' };
      writeFileSync(join(dir, 'bad.json'), JSON.stringify(fc));
      assert.throws(() => loadProfile(join(dir, 'bad.json')), /storeLatencyMs.*low <= typical <= high/);
      fc.storeLatencyMs = { low: 1, typical: 2, high: 3 };
      writeFileSync(join(dir, 'bad.json'), JSON.stringify(fc));
      assert.throws(() => loadProfile(join(dir, 'bad.json')), /storeLatencyMs/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('calibration fit', () => {
  it('recovers the constants that produced the measurements', () => {
    const truth: CostProfile = costProfileSchema.parse({
      name: 'truth', gflopsPerVcpu: 30, threadEfficiency: 0, invokeOverheadMs: 12, coldStartMs: 300, coldStartProbability: 0,
      storeLatencyMs: 1, storeBandwidthMBps: 300, sessionLoadMsPerMB: 3, sessionHitRate: 1, baseRssMb: 90,
      weightRssFactor: 2, activationRssFactor: 5, masterGflops: 20, requestOverheadMs: 8, maxParallelWorkers: 2, throttleRoundMs: 60,
      effectiveCores: 1.2, stageOverheadMs: 2,
    });
    const rows: FitRow[] = [];
    for (const plan of [p2, p4]) for (const vcpu of [1, 0.5]) for (const batch of [1, 4]) {
      const measuredMs = predictPlan(plan, { profile: truth, vcpu, memoryMb: 2048, batch, concurrency: 4 }).latencyMs;
      rows.push({ plan, vcpu, memoryMb: 2048, batch, workers: 4, measuredMs, label: `${plan.summary.tiles} ${vcpu} ${batch}` });
    }
    const fit = fitProfile({ ...truth, effectiveCores: undefined, invokeOverheadMs: 3, throttleRoundMs: 0, stageOverheadMs: 0 }, rows);
    // Invocation and per-stage overheads trade off against each other on these eight rows: the
    // predictions must match, the shared cores must come back.
    assert.ok(fit.worstLogError < 0.05, `worst log error ${fit.worstLogError}, ${JSON.stringify(fit.params)}`);
    assert.ok(Math.abs(fit.params.effectiveCores! - 1.2) / 1.2 < 0.1, `${fit.params.effectiveCores} cores`);
  });
});
