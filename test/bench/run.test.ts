import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSweep, sweepFromFlags } from '../../src/bench/sweep.ts';
import { runBench } from '../../src/bench/runner.ts';
import { writeOutputs } from '../../src/bench/output.ts';
import { parseCsv } from '../../src/bench/csv.ts';
import type { Progress } from '../../src/bench/progress.ts';

describe('bench: one real configuration', () => {
  it('starts a stack, measures one request, writes csv/json/html', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bench-test-'));
    const events: string[] = [];
    const progress: Progress = { start: (n) => events.push(`start ${n}`), update: (d, l) => events.push(`${d} ${l}`), log: () => undefined, stop: () => events.push('stop') };
    try {
      const { options } = sweepFromFlags({ suite: 'table1', batch: '1', plans: '2x2', resources: '1x2048', requests: '1', warmup: '0', workers: '2' });
      const configs = buildSweep(options);
      assert.equal(configs.length, 1);
      const res = await runBench({ configs, workDir: join(dir, 'work'), affinity: false, throttle: false, mono: false, timeoutMs: 60_000, seed: 1, progress });
      assert.deepEqual(events, ['start 1', '0 t1-v1-m2048-b1-2x2-c1', '1 done', 'stop']);
      const [row] = res.rows;
      assert.equal(row.status, 'ok', row.error);
      assert.equal(row.worker_num, 24);
      assert.equal(row.worker_invocations, 24);
      assert.ok(row.total_runtime_ms! > 0 && row.max_workertime_ms! > 0 && row.max_workertime_ms! < row.total_runtime_ms!);
      assert.ok(row.worker_over_total! > 0 && row.worker_over_total! < 1);
      assert.ok(row.total_memory_mb! > row.peak_worker_rss_mb!);
      assert.ok(row.cu_per_1k! > 0);
      assert.equal(res.samples[row.id].length, 1);
      assert.ok(res.samples[row.id][0].cost!.stages.length >= 6);
      const files = await writeOutputs(join(dir, 'out'), res);
      const csv = parseCsv(await readFile(files.csv, 'utf8'));
      assert.equal(csv.length, 2);
      assert.equal(csv[1][0], row.id);
      assert.equal(JSON.parse(await readFile(files.json, 'utf8')).rows[0].id, row.id);
      assert.match(await readFile(files.html, 'utf8'), /<figure id="fig3"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
