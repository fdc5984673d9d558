import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { estimateCost } from '../../src/billing/pricing.ts';
import {
  monoComputeUnits, multiTenantSaving, reservedCuPerSecond, summarizeConfig, table1OfRequest,
  type ConfigInfo, type RequestCost, type Sample, type StageCost,
} from '../../src/bench/columns.ts';
import { paperRowFor } from '../../src/bench/paper.ts';
import { buildSweep, crossResources, FULL, QUICK, sweepFromFlags, SweepError } from '../../src/bench/sweep.ts';
import { cpuShape } from '../../src/bench/emulation.ts';

const stage = (id: number, kind: 'chain' | 'master', ms: number, maxWorkerMs = 0, extra: Partial<StageCost> = {}): StageCost => ({
  id, kind, stages: [id], ms, invocations: kind === 'chain' ? 4 : 0, retries: 0, coldStarts: 0, maxColdStartMs: 0, maxWorkerMs, maxWorkerComputeMs: maxWorkerMs / 2,
  peakWorkerRssMb: 300, bytesRead: 1000, bytesWritten: 1000, storeRequests: 10, storeRetries: 0, ...extra,
});

/** A request with group stages whose slowest workers take `workers` ms, and a master stage. */
function cost(total: number, workers: number[], o: { rss?: number; cu?: number; cold?: number } = {}): RequestCost {
  const stages = [...workers.map((w, i) => stage(i, 'chain', w + 10, w)), stage(workers.length, 'master', 5)];
  const calls = [{ function: 'h', durationMs: total }, { function: 'm', durationMs: total - 5 }, ...workers.flatMap((w) => Array(4).fill({ function: 'w', durationMs: w }))];
  const billed = estimateCost(calls, { h: { vcpu: 0.5, memoryMb: 1024 }, m: { vcpu: 1.5, memoryMb: 4096 }, w: { vcpu: 1, memoryMb: 2048 } });
  if (o.cu !== undefined) billed.computeUnits = o.cu;
  return {
    requestId: 'r', ms: { total, storeInput: 2, master: total - 4, fetchOutput: 2, masterLoadPlan: 0.1 }, stages,
    invocations: { master: 1, worker: workers.length * 4, coldStarts: o.cold ?? 0, retries: 0 },
    store: { requests: 100, bytesRead: 3 * 1048576, bytesWritten: 1048576, retries: 0 },
    workerTime: { computeMs: 100, exchangeMs: 10, waitMs: 5, exchangeShare: 0.13 }, peakWorkerRssMb: o.rss ?? 300, billed,
  };
}

const sample = (c: RequestCost | undefined, startMs: number, latencyMs: number, error?: string): Sample => ({
  model: 'resnet18-224-2x2', ok: !error, startMs, endMs: startMs + latencyMs, latencyMs, cost: c, error, path: 'http',
});

const config: ConfigInfo = {
  id: 't1', suite: 'table1', mode: 'single', model: 'resnet18-224-2x2', plan: '2x2', vcpu: 1.5, memoryMb: 4096, threads: 2, cpusPerInstance: 2, cpuDuty: 0.75,
  batch: 1, concurrency: 1, maxInstances: 4, groups: 6, tiles: 24, redundancy: 1.37,
};

describe('Table 1 columns from cost objects', () => {
  it('per request: slowest worker, sum of per-group slowest workers over total runtime', () => {
    const t = table1OfRequest(cost(1000, [100, 200, 50, 50, 100, 100]));
    assert.equal(t.maxWorkerMs, 200);
    assert.equal(t.parallelMs, 600);
    assert.equal(t.totalMs, 1000);
    assert.equal(t.workerOverTotal, 0.6);
    assert.equal(t.groupMs, 660);
  });

  it('summarizes requests: medians for Table 1, percentiles, throughput, cost per 1,000, memory', () => {
    const costs = [cost(1000, [100, 200], { cu: 0.5 }), cost(1200, [100, 300], { cu: 0.7, rss: 420 }), cost(900, [100, 150], { cu: 0.6 })];
    const samples = [sample(costs[0], 0, 1100), sample(costs[1], 1100, 1300), sample(costs[2], 2400, 1600)];
    const memory = { handlerRssMb: 100, masterRssMb: 200, workerRssMb: 410, workerRssSumMb: 1500, deploymentRssMb: 1800, oomKills: 0, instances: [{ vcpu: 1, memoryMb: 2048, count: 4 }] };
    const row = summarizeConfig({ config, samples, memory, mono: { p50Ms: 500, rssMb: 350 }, paper: paperRowFor({ vcpu: 1.5, memoryMb: 4096, batch: 1, workerNum: 24 }) });
    assert.equal(row.status, 'ok');
    assert.equal(row.ok, 3);
    assert.equal(row.max_workertime_ms, 200); // median of 200, 300, 150
    assert.equal(row.total_runtime_ms, 1000); // median of 1000, 1200, 900
    assert.equal(row.worker_over_total, 0.3); // median of 0.3, 0.333, 0.278
    assert.equal(row.latency_p50_ms, 1300);
    assert.equal(row.latency_p99_ms, 1600);
    assert.equal(row.throughput_rps, 0.75); // 3 requests in 4 s
    assert.equal(row.cu_per_1k, 600);
    assert.equal(row.store_requests, 100);
    assert.equal(row.store_mb, 4);
    assert.equal(row.worker_invocations, 8);
    assert.equal(row.invocations, 10);
    // The instances' own high-water mark (snapshot) wins over the responses' maxRSS figures.
    assert.equal(row.peak_worker_rss_mb, 410);
    // handler + master + the largest worker
    assert.equal(row.total_memory_mb, 100 + 200 + 410);
    const noSnapshot = summarizeConfig({ config, samples });
    assert.equal(noSnapshot.peak_worker_rss_mb, 420);
    assert.equal(noSnapshot.total_memory_mb, undefined);
    assert.equal(row.worker_rss_sum_mb, 1500);
    // 4 instances x (1 vCPU + 2 GB x 0.15) CU/s over 4 s for 3 requests
    assert.equal(row.reserved_cu_per_1k, Math.round(((4 * 1.3 * 4) / 3) * 1000 * 1000) / 1000);
    assert.equal(row.mono_p50_ms, 500);
    assert.equal(row.mono_fits_memory, true);
    assert.equal(row.latency_vs_mono, 2.6);
    assert.equal(row.mono_cu_per_1k, Math.round(monoComputeUnits(500, 1.5, 4096) * 1000 * 1000) / 1000);
    assert.equal(row.cost_vs_mono, Math.round((600 / row.mono_cu_per_1k!) * 100) / 100);
    assert.equal(row.paper_total_runtime_ms, 16724);
    assert.equal(row.pred_latency_ms, undefined);
  });

  it('fills predicted columns when a prediction is given', () => {
    const row = summarizeConfig({
      config, samples: [sample(cost(1000, [100]), 0, 1000)],
      predicted: { latencyMs: 800, workerPeakMb: 333.33, invocations: 26, storeRequests: 190, storeBytes: 2 * 1048576, computeUnits: 1.234, fcLatencyMs: 2000, fcComputeUnits: 2 },
    });
    assert.equal(row.pred_latency_ms, 800);
    assert.equal(row.pred_worker_peak_mb, 333.3);
    assert.equal(row.pred_store_mb, 2);
    assert.equal(row.pred_cu_per_1k, 1234);
    assert.equal(row.measured_over_pred_latency, 1.25);
    assert.equal(row.pred_fc_cu_per_1k, 2000);
  });

  it('a configuration whose requests all failed (workers over their memory) is a failed row, not a crash', () => {
    const err = 'HTTP 502: inference failed in the master: worker: instance worker-1 killed: out of memory (peak RSS 600 MB > limit 512 MB)';
    const row = summarizeConfig({ config: { ...config, memoryMb: 512 }, samples: [sample(undefined, 0, 50, err), sample(undefined, 50, 40, err)], memory: { workerRssSumMb: 0, deploymentRssMb: 0, oomKills: 2, instances: [] } });
    assert.equal(row.status, 'failed');
    assert.equal(row.failed, 2);
    assert.equal(row.error, err);
    assert.equal(row.oom_kills, 2);
    assert.equal(row.total_runtime_ms, undefined);
    const partial = summarizeConfig({ config, samples: [sample(cost(1000, [100]), 0, 1000), sample(undefined, 1000, 10, 'boom')] });
    assert.equal(partial.status, 'partial');
    assert.equal(partial.latency_p99_ms, 1000);
    const skipped = summarizeConfig({ config, samples: [], skipped: 'plan auto not available' });
    assert.equal(skipped.status, 'skipped');
  });

  it('multi-tenant saving compares shared with separate', () => {
    const shared = summarizeConfig({ config, samples: [sample(cost(1000, [100], { cu: 0.88 }), 0, 1000)] });
    const separate = summarizeConfig({ config, samples: [sample(cost(1000, [100], { cu: 1 }), 0, 1000)] });
    shared.reserved_cu_per_1k = 50;
    separate.reserved_cu_per_1k = 100;
    multiTenantSaving(shared, separate);
    assert.equal(shared.mt_saving_billed, 0.12);
    assert.equal(shared.mt_saving_reserved, 0.5);
  });

  it('reserved capacity is vCPU-s + 0.15 GB-s per live instance', () => {
    assert.ok(Math.abs(reservedCuPerSecond([{ vcpu: 1, memoryMb: 2048, count: 2 }, { vcpu: 0.5, memoryMb: 1024, count: 1 }]) - (2 * 1.3 + 0.65)) < 1e-12);
  });
});

describe('bench sweep', () => {
  it('the full sweep crosses batch x plan x FC-valid resources, then concurrency and multi-tenant', () => {
    const x = crossResources([1, 0.35, 1.5], [2048, 512, 4096]);
    assert.deepEqual(x.resources.map((r) => `${r.vcpu}x${r.memoryMb}`), ['1x2048', '1x4096', '0.35x512', '1.5x2048', '1.5x4096']);
    assert.equal(x.rejected.length, 4);
    const full = buildSweep(FULL);
    assert.equal(full.filter((c) => c.suite === 'table1').length, 4 * 3 * 5);
    assert.equal(full.filter((c) => c.suite === 'concurrency').length, 4 * 3);
    assert.deepEqual(full.filter((c) => c.suite === 'multitenant').map((c) => c.mode), ['shared', 'separate']);
  });

  it('orders each stack by ascending batch, stacks contiguous', () => {
    const cfgs = buildSweep(QUICK);
    const seen: string[] = [];
    for (const c of cfgs) if (seen[seen.length - 1] !== c.stackKey) { assert.ok(!seen.includes(c.stackKey), `stack ${c.stackKey} split`); seen.push(c.stackKey); }
    for (const key of seen) {
      const b = cfgs.filter((c) => c.stackKey === key).map((c) => c.batch);
      assert.deepEqual(b, b.slice().sort((x, y) => x - y));
    }
    const mem = cfgs.filter((c) => c.suite !== 'multitenant').map((c) => c.resources.memoryMb);
    assert.deepEqual(mem, mem.slice().sort((x, y) => x - y), 'small-memory stacks first');
    assert.equal(cfgs[cfgs.length - 1].suite, 'multitenant');
    assert.ok(cfgs.every((c) => c.batch < 16));
    assert.ok(cfgs.every((c) => c.requests >= 3));
  });

  it('flags select subsets and reject nonsense', () => {
    const { options, notes } = sweepFromFlags({ suite: 'table1', batch: '1,16', plans: '2x2', vcpu: '0.35,1.5', memory: '512,4096' });
    assert.deepEqual(options.resources, [{ vcpu: 0.35, memoryMb: 512 }, { vcpu: 1.5, memoryMb: 4096 }]);
    assert.match(notes[0], /0\.35 vCPU \/ 4096 MB/);
    assert.equal(buildSweep(options).length, 2 * 1 * 2);
    assert.deepEqual(sweepFromFlags({ resources: '0.35x512,1.5x4096' }).options.resources.length, 2);
    assert.throws(() => sweepFromFlags({ resources: '1x512' }), SweepError);
    assert.throws(() => sweepFromFlags({ plans: '3x3' }), /unknown plan/);
    assert.throws(() => sweepFromFlags({ batch: '1,x' }), /not a positive number/);
    assert.throws(() => sweepFromFlags({ suite: 'nope' }), /unknown suite/);
    assert.throws(() => sweepFromFlags({ 'mt-models': 'resnet18' }), /two different models/);
    assert.ok(buildSweep(sweepFromFlags({ 'fresh-stacks': true, quick: true }).options).every((c, _, a) => a.filter((d) => d.stackKey === c.stackKey).length === 1));
  });

  it('vCPU emulation: threads = ceil(vCPU) capped at the cores, duty = vCPU / threads', () => {
    assert.deepEqual(cpuShape(0.35, 2), { threads: 1, coresPerInstance: 1, duty: 0.35 });
    assert.deepEqual(cpuShape(1.5, 2), { threads: 2, coresPerInstance: 2, duty: 0.75 });
    assert.deepEqual(cpuShape(4, 2), { threads: 2, coresPerInstance: 2, duty: 1 });
    assert.deepEqual(cpuShape(0.5, 2, { affinity: false, throttle: false }), { threads: 1, coresPerInstance: 0, duty: 1 });
  });
});
