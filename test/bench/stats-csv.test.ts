import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mean, median, percentile, ratio, throughput } from '../../src/bench/stats.ts';
import { csvField, formatNumber, parseCsv, toCsv } from '../../src/bench/csv.ts';
import { COLUMNS, type BenchRow } from '../../src/bench/columns.ts';
import { resultsCsv, formatTable, timestampDir } from '../../src/bench/output.ts';
import { eta, formatDuration, renderBar } from '../../src/bench/progress.ts';
import { PAPER_TABLE1, PAPER_TABLE1_CSV_HEADER, paperRowFor } from '../../src/bench/paper.ts';

describe('bench stats', () => {
  it('percentiles are nearest-rank: observed values, p99 of few samples is the maximum', () => {
    const xs = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
    assert.equal(percentile(xs, 50), 5);
    assert.equal(median(xs), 5);
    assert.equal(percentile(xs, 90), 9);
    assert.equal(percentile(xs, 99), 10);
    assert.equal(percentile(xs, 100), 10);
    assert.equal(percentile(xs, 0), 1);
    assert.equal(percentile([42], 99), 42);
    assert.equal(percentile([3, 1, 2], 50), 2);
    assert.equal(percentile([1, 2, 3, 4], 50), 2);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(hundred, 99), 99);
    assert.equal(percentile(hundred, 50), 50);
    assert.equal(percentile([], 50), undefined);
    assert.equal(percentile([NaN, 4], 50), 4);
    assert.throws(() => percentile(xs, 101), RangeError);
  });

  it('mean and ratio ignore missing values', () => {
    assert.equal(mean([1, 2, 3, NaN]), 2);
    assert.equal(mean([]), undefined);
    assert.equal(ratio(6, 3), 2);
    assert.equal(ratio(6, 0), undefined);
    assert.equal(ratio(undefined, 3), undefined);
  });

  it('throughput counts successful requests over the window from first start to last end', () => {
    const s = [
      { startMs: 1000, endMs: 1500, ok: true },
      { startMs: 1100, endMs: 2000, ok: true },
      { startMs: 1500, endMs: 3000, ok: false },
    ];
    assert.equal(throughput(s), 2 / 2); // 2 ok in 2 s
    assert.equal(throughput([]), undefined);
    assert.equal(throughput([{ startMs: 5, endMs: 5, ok: true }]), undefined);
  });
});

describe('bench CSV', () => {
  it('quotes commas, quotes, newlines and edge spaces; leaves the rest alone', () => {
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    assert.equal(csvField('cr\rhere'), '"cr\rhere"');
    assert.equal(csvField(' padded'), '" padded"');
    assert.equal(csvField(undefined), '');
    assert.equal(csvField(null), '');
    assert.equal(csvField(true), 'true');
    assert.equal(csvField(NaN), '');
    assert.equal(csvField(Infinity), '');
    assert.equal(csvField(3), '3');
    assert.equal(csvField(0.1 + 0.2), '0.3');
    assert.equal(csvField(1234.56789), '1234.568');
  });

  it('formats numbers compactly', () => {
    assert.equal(formatNumber(2), '2');
    assert.equal(formatNumber(2.5), '2.5');
    assert.equal(formatNumber(0.000123456), '0.000123');
    assert.equal(formatNumber(1e-9), '1e-9');
    assert.equal(formatNumber(-3.14159), '-3.1416');
  });

  it('round-trips through an RFC 4180 parser', () => {
    const rows = [{ a: 'x,y', b: 1.5, c: 'he said "no"\nthen left' }, { a: '', b: undefined, c: ' s ' }];
    const text = toCsv(rows, [{ header: 'a', get: (r) => r.a }, { header: 'b (ms)', get: (r) => r.b }, { header: 'c,d', get: (r) => r.c }]);
    const parsed = parseCsv(text);
    assert.deepEqual(parsed, [['a', 'b (ms)', 'c,d'], ['x,y', '1.5', 'he said "no"\nthen left'], ['', '', ' s ']]);
  });

  it('results.csv has one header per column, Table 1 names as in the paper, one line per row', () => {
    const row = { id: 't1-x', suite: 'table1', mode: 'single', model: 'resnet18-224-2x2', plan: '2x2', status: 'failed', error: 'HTTP 502: worker killed, out of memory', vcpu: 0.35, memory_mb: 512, threads: 1, cpus_per_instance: 1, cpu_duty: 0.35, batch: 16, concurrency: 1, max_instances: 4, requests: 3, ok: 0, failed: 3 } as BenchRow;
    const parsed = parseCsv(resultsCsv([row]));
    assert.equal(parsed.length, 2);
    assert.deepEqual(parsed[0], COLUMNS.map((c) => c.header));
    for (const h of ['max_workertime(ms)', 'total_memory usage(mb)', 'total_runtime(ms)', 'worker/total time']) assert.ok(parsed[0].includes(h), h);
    assert.equal(parsed[1][parsed[0].indexOf('error')], 'HTTP 502: worker killed, out of memory');
    assert.equal(parsed[1][parsed[0].indexOf('total_runtime(ms)')], '');
    assert.equal(new Set(COLUMNS.map((c) => c.key)).size, COLUMNS.length);
    const table = formatTable([row]);
    assert.match(table, /t1-x\s+failed/);
  });

  it('docs/bench.md documents every column', () => {
    const docs = readFileSync(new URL('../../docs/bench.md', import.meta.url), 'utf8');
    for (const c of COLUMNS) assert.ok(docs.includes(`| \`${c.header}\` |`), `column ${c.header} missing from docs/bench.md`);
  });

  it('timestamp directories are sortable and have no colons', () => {
    assert.equal(timestampDir(new Date('2025-03-04T05:06:07.891Z')), '2025-03-04T05-06-07Z');
  });
});

describe('paper Table 1', () => {
  it('the embedded table equals the fixture copy of ../shared/data/paper-table1.csv', () => {
    const csv = parseCsv(readFileSync(new URL('../fixtures/paper-table1.csv', import.meta.url), 'utf8')).filter((r) => r.length > 1);
    assert.equal(csv[0].join(','), PAPER_TABLE1_CSV_HEADER);
    const rows = csv.slice(1).map((r) => r.map(Number));
    assert.equal(rows.length, PAPER_TABLE1.length);
    rows.forEach((r, i) => {
      const p = PAPER_TABLE1[i];
      assert.deepEqual(r, [p.vcpu, p.memoryMb, p.batch, p.workerNum, p.maxWorkerMs, p.totalMemoryMb, p.totalRuntimeMs, p.workerOverTotal]);
    });
  });

  it('its parallel share is 6 x max_workertime / total_runtime in every row (docs/bench.md)', () => {
    for (const p of PAPER_TABLE1) assert.ok(Math.abs((6 * p.maxWorkerMs) / p.totalRuntimeMs - p.workerOverTotal) < 1e-6, JSON.stringify(p));
  });

  it('rows match on vCPU, memory, batch and worker count', () => {
    assert.equal(paperRowFor({ vcpu: 0.35, memoryMb: 512, batch: 16, workerNum: 24 })?.totalRuntimeMs, 32853);
    assert.equal(paperRowFor({ vcpu: 1, memoryMb: 2048, batch: 1, workerNum: 24 }), undefined);
    assert.equal(paperRowFor({ vcpu: 0.35, memoryMb: 512, batch: 1 }), undefined);
  });
});

describe('bench progress', () => {
  it('formats durations and ETA', () => {
    assert.equal(formatDuration(4_400), '4s');
    assert.equal(formatDuration(125_000), '2m05s');
    assert.equal(formatDuration(3_900_000), '1h05m');
    assert.equal(eta(10_000, 0, 5), undefined);
    assert.equal(eta(10_000, 2, 5), 15_000);
    const bar = renderBar(2, 5, 10_000, 'cfg');
    assert.match(bar, /^\[#{10}-{14}\] 2\/5 +40% elapsed 10s ETA 15s {2}cfg$/);
  });
});
