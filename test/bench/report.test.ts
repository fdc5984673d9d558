import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FIGURES, renderReport } from '../../src/bench/report.ts';
import type { BenchRow } from '../../src/bench/columns.ts';
import type { BenchResult } from '../../src/bench/runner.ts';
import { barChart, heatmap, lineChart, niceTicks, rampColor } from '../../src/bench/svg.ts';

const VOID = new Set(['meta', 'br', 'hr', 'img', 'input', 'link', 'col', 'area', 'base', 'wbr', 'source']);

/** Every element closed in order (void elements and `/>` excepted); returns the problems found. */
function tagBalance(html: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const body = html.replace(/<!DOCTYPE[^>]*>/i, '').replace(/<!--[\s\S]*?-->/g, '').replace(/<style>[\s\S]*?<\/style>/g, '<style></style>');
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][\w-]*)([^>]*?)(\/?)>/g)) {
    const [, close, name, , self] = m;
    const tag = name.toLowerCase();
    if (self || (VOID.has(tag) && !close)) continue;
    if (!close) { stack.push(tag); continue; }
    const top = stack.pop();
    if (top !== tag) { problems.push(`</${tag}> closes <${top}> at ${m.index}`); break; }
  }
  if (stack.length) problems.push(`unclosed: ${stack.slice(-5).join(', ')}`);
  return problems;
}

function row(p: Partial<BenchRow>): BenchRow {
  return {
    id: 'x', suite: 'table1', mode: 'single', model: 'resnet18-224-2x2', plan: '2x2', status: 'ok', vcpu: 1, memory_mb: 2048, threads: 1, cpus_per_instance: 1, cpu_duty: 1,
    batch: 1, concurrency: 1, max_instances: 4, requests: 3, ok: 3, failed: 0, ...p,
  } as BenchRow;
}

function synthetic(): BenchResult {
  const rows: BenchRow[] = [];
  for (const [vcpu, mem] of [[1, 2048], [0.5, 1024]]) for (const batch of [1, 4]) for (const [plan, tiles] of [['2x2', 24], ['4x4', 72]] as const) {
    rows.push(row({
      id: `t1-v${vcpu}-m${mem}-b${batch}-${plan}-c1`, vcpu, memory_mb: mem, batch, plan, worker_num: tiles, model: `resnet18-224-${plan}`,
      max_workertime_ms: 50 * batch / vcpu, total_runtime_ms: 300 * batch * (tiles / 24) / vcpu, worker_over_total: 0.4 + batch / 100, total_memory_mb: 600 + batch * 10,
      latency_p50_ms: 320 * batch, latency_p99_ms: 400 * batch, throughput_rps: 3 / batch, cu_per_1k: 1500 * batch, mono_p50_ms: 60 * batch, mono_cu_per_1k: 70 * batch,
      latency_vs_mono: 5, cost_vs_mono: 20, handler_rss_mb: 150, master_rss_mb: 170, peak_worker_rss_mb: 350, worker_rss_sum_mb: 1400, mono_rss_mb: 330,
      pred_latency_ms: 280 * batch, pred_worker_peak_mb: 330, pred_store_requests: 190, store_requests: 188, pred_cu_per_1k: 1400 * batch,
    }));
  }
  rows.push(row({ id: 't1-v1-m2048-b1-auto-c1', plan: 'auto', status: 'skipped', error: 'plan auto not available', ok: 0, requests: 0 }));
  rows.push(row({ id: 't1-v0.35-m512-b16-2x2-c1', vcpu: 0.35, memory_mb: 512, batch: 16, status: 'failed', ok: 0, failed: 3, error: 'HTTP 502: <out of memory> & "killed"' }));
  for (const c of [2, 4]) rows.push(row({ id: `cc-b1-2x2-c${c}`, suite: 'concurrency', concurrency: c, throughput_rps: 2 * c, latency_p50_ms: 300 * c, latency_p99_ms: 450 * c }));
  rows.push(row({ id: 'mt-shared', suite: 'multitenant', mode: 'shared', model: 'resnet18+mobilenetv2', cu_per_1k: 1300, reserved_cu_per_1k: 900, deployment_rss_mb: 2000, worker_rss_sum_mb: 1500, mt_saving_billed: 0.05, mt_saving_reserved: 0.4 }));
  rows.push(row({ id: 'mt-shared:resnet18', suite: 'multitenant', mode: 'shared', model: 'resnet18-224-2x2', latency_p50_ms: 500, latency_p99_ms: 700 }));
  rows.push(row({ id: 'mt-shared:mobilenetv2', suite: 'multitenant', mode: 'shared', model: 'mobilenetv2-224-2x2', latency_p50_ms: 300, latency_p99_ms: 420 }));
  rows.push(row({ id: 'mt-separate', suite: 'multitenant', mode: 'separate', model: 'resnet18+mobilenetv2', cu_per_1k: 1370, reserved_cu_per_1k: 1500, deployment_rss_mb: 2600, worker_rss_sum_mb: 1700 }));
  rows.push(row({ id: 'mt-separate:resnet18', suite: 'multitenant', mode: 'separate', model: 'resnet18-224-2x2', latency_p50_ms: 450, latency_p99_ms: 600 }));
  return {
    meta: {
      startedAt: '2025-01-01T00:00:00.000Z', finishedAt: '2025-01-01T00:02:00.000Z', durationMs: 120000, host: { cores: 2, node: 'v20', platform: 'linux-x64' },
      emulation: { affinity: true, throttle: true, taskset: true }, costModel: 'absent', configs: rows.length,
    },
    notes: ['plan auto skipped: <planner> says "no"'],
    rows,
    samples: {},
  };
}

describe('bench HTML report', () => {
  const html = renderReport(synthetic());

  it('is well-formed: doctype, balanced elements, escaped text', () => {
    assert.match(html, /^<!DOCTYPE html>\n<html lang="en">/);
    assert.deepEqual(tagBalance(html), []);
    assert.ok(html.includes('HTTP 502: &lt;out of memory&gt; &amp; &quot;killed&quot;'));
    assert.ok(!html.includes('<out of memory>'));
    assert.ok(!/NaN|undefined|\[object Object\]/.test(html.replace(/<style>[\s\S]*?<\/style>/, '')), 'no NaN/undefined leaks');
  });

  it('is self-contained: no URLs, external scripts, stylesheets, fonts or images', () => {
    assert.ok(!/https?:\/\//i.test(html), 'no http(s) URLs');
    assert.ok(!/<script/i.test(html), 'no scripts');
    assert.ok(!/<link|@import|@font-face|url\((?!#)/i.test(html), 'no external styles or fonts');
    assert.ok(!/<img|<iframe|<object|<embed/i.test(html), 'no external media');
    assert.ok(!/\bsrc=|\bhref=(?!"#)/i.test(html), 'no src/href');
  });

  it('has one figure per paper figure (3-7) plus latency, cost, predicted, concurrency and multi-tenant', () => {
    for (const id of FIGURES) {
      const n = html.split(`<figure id="${id}"`).length - 1;
      assert.equal(n, 1, `figure ${id}`);
      const fig = html.slice(html.indexOf(`<figure id="${id}"`));
      const inner = fig.slice(0, fig.indexOf('</figure>'));
      assert.ok(inner.includes('<svg'), `figure ${id} has a chart`);
    }
    const fig = (id: string) => { const s = html.slice(html.indexOf(`<figure id="${id}"`)); return s.slice(0, s.indexOf('</figure>')); };
    assert.ok(fig('fig3').includes('Total runtime, 1 vCPU / 2048 MB'));
    assert.ok(fig('fig3').includes('Paper: total runtime'));
    assert.ok(fig('fig5').includes('worker vCPU'));
    assert.ok(fig('fig7').includes('Peak RSS by function'));
    assert.ok(fig('predicted').includes('measured vs predicted'));
    assert.ok(fig('multitenant').includes('separate stacks'));
    assert.ok(fig('multitenant').includes('5.0% billed'));
    assert.ok(fig('concurrency').includes('<polyline'));
    assert.equal((html.match(/<svg /g) ?? []).length, (html.match(/<\/svg>/g) ?? []).length);
  });

  it('renders empty placeholders rather than failing when suites are missing', () => {
    const r = synthetic();
    r.rows = [];
    r.notes = ['predicted columns empty: src/cost/model.ts does not exist yet'];
    const h = renderReport(r);
    assert.deepEqual(tagBalance(h), []);
    for (const id of FIGURES) assert.ok(h.includes(`<figure id="${id}"`), id);
    assert.ok(h.includes('src/cost/model.ts does not exist yet'));
  });
});

describe('SVG charts', () => {
  it('heatmap: one cell per value, n/a for missing, a colour per value on the ramp', () => {
    const s = heatmap({ title: 't', rowLabel: 'r', colLabel: 'c', rows: ['1', '16'], cols: ['24', '72'], values: [[1, 2], [3, undefined]], unit: 'ms' });
    assert.equal((s.match(/<title>/g) ?? []).length, 3);
    assert.ok(s.includes('n/a'));
    assert.ok(s.includes(rampColor(0)) && s.includes(rampColor(1)));
    assert.deepEqual(tagBalance(s), []);
  });

  it('bar and line charts are balanced and scale to nice ticks', () => {
    assert.deepEqual(niceTicks(95), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(0.9), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    const b = barChart({ title: 'b', categories: ['a', 'b'], series: [{ name: 's1', values: [1, undefined] }, { name: 's2', values: [2, 3], hatch: true }], ref: { value: 1, label: 'one' } });
    assert.equal((b.match(/<rect [^>]*><title>/g) ?? []).length, 3);
    assert.deepEqual(tagBalance(b), []);
    const l = lineChart({ title: 'l', xLabel: 'x', yLabel: 'y', x: [1, 2, 4], series: [{ name: 'a', values: [1, 2, 3] }] });
    assert.ok(l.includes('<polyline'));
    assert.deepEqual(tagBalance(l), []);
  });
});
