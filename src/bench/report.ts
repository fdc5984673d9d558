/**
 * report.html: one self-contained page (inline SVG and CSS, no scripts, fonts or URLs) with the
 * paper's figures 3-7 redrawn from this run (and the paper's own Table 1 next to them), latency,
 * cost, predicted vs measured, concurrency and multi-tenancy, and every row.
 */
import { COLUMNS, type BenchRow } from './columns.ts';
import { PAPER_TABLE1 } from './paper.ts';
import type { BenchResult } from './runner.ts';
import { barChart, emptyChart, esc, heatmap, lineChart, PALETTE } from './svg.ts';

/** Figure ids in the report, in order; tests check that each one is present. */
export const FIGURES = ['fig3', 'fig4', 'fig5', 'fig6', 'fig7', 'latency', 'cost', 'predicted', 'concurrency', 'multitenant'] as const;

const uniq = <T>(xs: T[]) => [...new Set(xs)];
const byNum = (a: number, b: number) => a - b;
const resLabel = (r: { vcpu: number; memory_mb: number }) => `${r.vcpu} vCPU / ${r.memory_mb} MB`;
/** `24 (2x2)`: the worker count when the plan has one (auto plans differ by batch and resources). */
const planLabel = (plan: string, rows: BenchRow[]) => {
  const n = uniq(rows.filter((r) => r.plan === plan && r.worker_num !== undefined).map((r) => r.worker_num));
  return n.length === 1 ? `${n[0]} (${plan})` : plan;
};
const measured = (r: BenchRow) => r.status === 'ok' || r.status === 'partial';
export const shortLabel = (r: BenchRow) =>
  r.suite === 'multitenant' ? `${r.mode} ${r.model}` : `${r.plan} b${r.batch}${r.concurrency > 1 ? ` c${r.concurrency}` : ''} ${r.vcpu}v/${r.memory_mb}`;

function figure(id: string, heading: string, charts: string[], caption: string): string {
  return `<figure id="${id}" data-figure="${id}"><h2>${esc(heading)}</h2><div class="charts">${charts.map((c) => `<div class="chart">${c}</div>`).join('')}</div><figcaption>${caption}</figcaption></figure>`;
}

function grid<R, C>(rowsK: R[], colsK: C[], get: (r: R, c: C) => number | undefined): (number | undefined)[][] {
  return rowsK.map((r) => colsK.map((c) => get(r, c)));
}

function paperHeatmap(vcpu: number, mem: number, field: 'totalRuntimeMs' | 'totalMemoryMb', title: string, unit: string): string {
  const p = PAPER_TABLE1.filter((r) => r.vcpu === vcpu && r.memoryMb === mem);
  const batches = uniq(p.map((r) => r.batch)).sort(byNum);
  const workers = uniq(p.map((r) => r.workerNum)).sort(byNum);
  return heatmap({
    title, rowLabel: 'batch size', colLabel: 'workers (paper)', rows: batches.map(String), cols: workers.map((w) => `${w} (${w === 24 ? '2x2' : '4x4'})`), unit,
    values: grid(batches, workers, (b, w) => p.find((r) => r.batch === b && r.workerNum === w)?.[field]),
  });
}

export function renderReport(res: BenchResult): string {
  const rows = res.rows;
  const t1 = rows.filter((r) => r.suite === 'table1');
  const t1ok = t1.filter(measured);
  const resources = uniq(t1.map((r) => `${r.vcpu}|${r.memory_mb}`)).map((k) => { const [v, m] = k.split('|').map(Number); return { vcpu: v, memory_mb: m }; });
  const batches = uniq(t1.map((r) => r.batch)).sort(byNum);
  // Plans in sweep order, without those never measured (e.g. auto before the planner supports it).
  const plans = ['2x2', '4x4', 'auto', ...uniq(t1.map((r) => r.plan))].filter((p, i, a) => a.indexOf(p) === i && t1ok.some((r) => r.plan === p));
  const vcpus = uniq(t1.map((r) => r.vcpu)).sort(byNum);
  const mems = uniq(t1.map((r) => r.memory_mb)).sort(byNum);
  const find = (q: Partial<BenchRow>) => t1ok.find((r) => Object.entries(q).every(([k, v]) => r[k as keyof BenchRow] === v));
  const figs: string[] = [];

  // Figure 3: total runtime by batch x workers (plan), one heatmap per resource setting, plus bars.
  {
    const charts: string[] = [];
    for (const rs of resources) {
      charts.push(heatmap({
        title: `Total runtime, ${resLabel(rs)}`, rowLabel: 'batch size', colLabel: 'workers (plan)', unit: 'ms',
        rows: batches.map(String), cols: plans.map((p) => planLabel(p, t1)),
        values: grid(batches, plans, (b, p) => find({ vcpu: rs.vcpu, memory_mb: rs.memory_mb, batch: b, plan: p })?.total_runtime_ms),
      }));
    }
    const rs0 = resources[0];
    if (rs0) {
      charts.push(barChart({
        title: `Total runtime by batch, ${resLabel(rs0)}`, categories: batches.map((b) => `batch ${b}`), yLabel: 'ms',
        series: plans.map((p) => ({ name: planLabel(p, t1), values: batches.map((b) => find({ vcpu: rs0.vcpu, memory_mb: rs0.memory_mb, batch: b, plan: p })?.total_runtime_ms) })),
      }));
    }
    if (!charts.length) charts.push(emptyChart('Total runtime by batch and workers', 'no table1 rows in this run'));
    charts.push(paperHeatmap(1.5, 4096, 'totalRuntimeMs', 'Paper: total runtime, 1.5 vCPU / 4096 MB (FC)', 'ms'));
    figs.push(figure('fig3', 'Figure 3: total runtime by batch size and worker count', charts,
      'Median handler-measured runtime (<code>total_runtime(ms)</code>) per request. Hatched cells: not run, failed or skipped. The last panel is the paper\'s Table 1 on Function Compute.'));
  }

  // Figure 4: parallel time share by batch and plan.
  {
    const charts: string[] = [];
    for (const rs of resources) {
      charts.push(barChart({
        title: `Parallel time share, ${resLabel(rs)}`, categories: batches.map((b) => `batch ${b}`), yLabel: 'worker / total time', fmt: (v) => v.toFixed(2),
        series: plans.map((p) => ({ name: planLabel(p, t1), values: batches.map((b) => find({ vcpu: rs.vcpu, memory_mb: rs.memory_mb, batch: b, plan: p })?.worker_over_total) })),
      }));
    }
    const p15 = PAPER_TABLE1.filter((r) => r.vcpu === 1.5);
    const pb = uniq(p15.map((r) => r.batch)).sort(byNum);
    charts.push(barChart({
      title: 'Paper: parallel time share, 1.5 vCPU / 4096 MB', categories: pb.map((b) => `batch ${b}`), yLabel: 'worker / total time', fmt: (v) => v.toFixed(2),
      series: [24, 72].map((w, i) => ({ name: `${w} (${w === 24 ? '2x2' : '4x4'})`, color: PALETTE[i], hatch: true, values: pb.map((b) => p15.find((r) => r.batch === b && r.workerNum === w)?.workerOverTotal) })),
    }));
    figs.push(figure('fig4', 'Figure 4: parallel time share by batch size', charts,
      '<code>worker/total time</code> = sum over groups of the group\'s slowest worker / total runtime. Hatched: the paper.'));
  }

  // Figure 5: total runtime by vCPU x memory.
  {
    const charts: string[] = [];
    for (const p of plans) for (const b of batches) {
      const values = grid(vcpus, mems, (v, m) => find({ vcpu: v, memory_mb: m, batch: b, plan: p })?.total_runtime_ms);
      if (!values.flat().some((v) => v !== undefined)) continue;
      charts.push(heatmap({ title: `Total runtime, plan ${planLabel(p, t1)}, batch ${b}`, rowLabel: 'worker vCPU', colLabel: 'worker memory (MB)', unit: 'ms', rows: vcpus.map(String), cols: mems.map(String), values }));
    }
    if (!charts.length) charts.push(emptyChart('Total runtime by vCPU and memory', 'no table1 rows in this run'));
    figs.push(figure('fig5', 'Figure 5: total runtime by vCPU count and memory size', charts,
      'Locally, vCPU is emulated by ORT threads, CPU affinity and a SIGSTOP/SIGCONT duty cycle; memory is the worker RSS limit (see docs/bench.md). Hatched: combinations FC rejects or not run.'));
  }

  // Figure 6: parallel time share by batch and vCPU.
  {
    const charts: string[] = [];
    for (const p of plans) {
      charts.push(barChart({
        title: `Parallel time share, plan ${planLabel(p, t1)}`, categories: batches.map((b) => `batch ${b}`), yLabel: 'worker / total time', fmt: (v) => v.toFixed(2),
        series: resources.map((rs) => ({ name: resLabel(rs), values: batches.map((b) => find({ vcpu: rs.vcpu, memory_mb: rs.memory_mb, batch: b, plan: p })?.worker_over_total) })),
      }));
    }
    if (!charts.length) charts.push(emptyChart('Parallel time share by vCPU', 'no table1 rows in this run'));
    figs.push(figure('fig6', 'Figure 6: parallel time share by batch size and vCPU count', charts, 'One series per worker vCPU / memory setting.'));
  }

  // Figure 7: memory.
  {
    const charts: string[] = [];
    for (const rs of resources) {
      charts.push(heatmap({
        title: `Total memory, ${resLabel(rs)}`, rowLabel: 'batch size', colLabel: 'workers (plan)', unit: 'MB',
        rows: batches.map(String), cols: plans.map((p) => planLabel(p, t1)),
        values: grid(batches, plans, (b, p) => find({ vcpu: rs.vcpu, memory_mb: rs.memory_mb, batch: b, plan: p })?.total_memory_mb),
      }));
    }
    const b0 = batches[0];
    for (const p of plans) {
      const values = grid(vcpus, mems, (v, m) => find({ vcpu: v, memory_mb: m, batch: b0, plan: p })?.total_memory_mb);
      if (values.flat().some((v) => v !== undefined) && resources.length > 1) {
        charts.push(heatmap({ title: `Total memory, plan ${planLabel(p, t1)}, batch ${b0}`, rowLabel: 'worker vCPU', colLabel: 'worker memory (MB)', unit: 'MB', rows: vcpus.map(String), cols: mems.map(String), values }));
      }
    }
    const mrows = rows.filter((r) => measured(r) && r.suite !== 'concurrency' && !r.id.includes(':'));
    if (mrows.length) {
      charts.push(barChart({
        title: 'Peak RSS by function', categories: mrows.map(shortLabel), yLabel: 'MB', labels: false,
        series: [
          { name: 'handler', values: mrows.map((r) => r.handler_rss_mb) },
          { name: 'master', values: mrows.map((r) => r.master_rss_mb) },
          { name: 'largest worker', values: mrows.map((r) => r.peak_worker_rss_mb) },
          { name: 'all workers', values: mrows.map((r) => r.worker_rss_sum_mb) },
          { name: 'monolithic', values: mrows.map((r) => r.mono_rss_mb), hatch: true },
        ],
      }));
    }
    charts.push(paperHeatmap(1.5, 4096, 'totalMemoryMb', 'Paper: total memory, 1.5 vCPU / 4096 MB (FC)', 'MB'));
    figs.push(figure('fig7', 'Figure 7: memory usage', charts,
      '<code>total_memory usage(mb)</code> = peak RSS of the handler + the master + the largest worker instance. The bar chart splits it and adds the sum over all worker instances and the monolithic process.'));
  }

  // Latency p50 / p99.
  const lrows = rows.filter((r) => measured(r) && !r.id.includes(':'));
  figs.push(figure('latency', 'Latency: p50 and p99 (client side), with monolithic ORT', [lrows.length ? barChart({
    title: 'Request latency', categories: lrows.map(shortLabel), yLabel: 'ms', labels: lrows.length <= 8,
    series: [
      { name: 'p50', values: lrows.map((r) => r.latency_p50_ms) },
      { name: 'p99', values: lrows.map((r) => r.latency_p99_ms) },
      { name: 'monolithic p50', values: lrows.map((r) => r.mono_p50_ms), hatch: true },
    ],
  }) : emptyChart('Request latency', 'no successful configuration')], 'Nearest-rank percentiles over the measured requests (p99 of fewer than 100 requests is the maximum).'));

  // Cost.
  figs.push(figure('cost', 'Cost per 1,000 requests (FC compute units)', [lrows.length ? barChart({
    title: 'Billed CU per 1,000 requests', categories: lrows.map(shortLabel), yLabel: 'CU', labels: lrows.length <= 8,
    series: [
      { name: 'distributed (measured)', values: lrows.map((r) => r.cu_per_1k) },
      { name: 'monolithic', values: lrows.map((r) => r.mono_cu_per_1k) },
      { name: 'predicted (local)', values: lrows.map((r) => r.pred_cu_per_1k), hatch: true },
    ],
  }) : emptyChart('Billed CU per 1,000 requests', 'no successful configuration'),
  lrows.length ? barChart({
    title: 'Cost and latency relative to monolithic ORT', categories: lrows.map(shortLabel), yLabel: 'x monolithic', fmt: (v) => v.toFixed(1), labels: lrows.length <= 8,
    ref: { value: 1, label: 'monolithic' },
    series: [{ name: 'latency', values: lrows.map((r) => r.latency_vs_mono) }, { name: 'cost', values: lrows.map((r) => r.cost_vs_mono) }],
  }) : ''].filter(Boolean), 'From <code>parameters.cost.billed</code>: invocations x 0.0075 CU + vCPU-s + 0.15 x GB-s over handler, master and workers; 1 CU = $0.00002. Monolithic: one function with the worker\'s vCPU and memory running the whole model.'));

  // Predicted vs measured.
  {
    const prow = rows.filter((r) => measured(r) && r.pred_latency_ms !== undefined);
    const charts = prow.length ? [
      barChart({
        title: 'Runtime: measured vs predicted', categories: prow.map(shortLabel), yLabel: 'ms', labels: prow.length <= 8,
        series: [{ name: 'measured total_runtime', values: prow.map((r) => r.total_runtime_ms) }, { name: 'predicted (local profile)', values: prow.map((r) => r.pred_latency_ms), hatch: true }],
      }),
      barChart({
        title: 'Worker peak RSS: measured vs predicted', categories: prow.map(shortLabel), yLabel: 'MB', labels: prow.length <= 8,
        series: [{ name: 'measured', values: prow.map((r) => r.peak_worker_rss_mb) }, { name: 'predicted', values: prow.map((r) => r.pred_worker_peak_mb), hatch: true }],
      }),
      barChart({
        title: 'Store requests: measured vs predicted', categories: prow.map(shortLabel), yLabel: 'requests', labels: prow.length <= 8,
        series: [{ name: 'measured', values: prow.map((r) => r.store_requests) }, { name: 'predicted', values: prow.map((r) => r.pred_store_requests), hatch: true }],
      }),
    ] : [emptyChart('Measured vs predicted', res.notes.find((n) => n.startsWith('predicted columns')) ?? 'no predictions in this run')];
    figs.push(figure('predicted', 'Predicted vs measured (cost model)', charts, 'Predictions from <code>src/cost/model.ts</code> with the local profile; <code>measured/pred latency</code> in the table.'));
  }

  // Concurrency.
  {
    const ccOnly = rows.filter((r) => r.suite === 'concurrency' && measured(r));
    // Concurrency 1 comes from the table1 row with the same resources, batch and plan.
    const cc = [...ccOnly, ...t1ok.filter((r) => ccOnly.some((c) => c.vcpu === r.vcpu && c.memory_mb === r.memory_mb && c.batch === r.batch && c.plan === r.plan) && !ccOnly.some((c) => c.concurrency === 1 && c.plan === r.plan))];
    const cs = uniq(cc.map((r) => r.concurrency)).sort(byNum);
    const cplans = uniq(cc.map((r) => r.plan));
    const charts = cs.length ? [
      lineChart({ title: 'Throughput vs concurrency', xLabel: 'concurrent requests', yLabel: 'req/s', x: cs, series: cplans.map((p) => ({ name: p, values: cs.map((c) => cc.find((r) => r.plan === p && r.concurrency === c)?.throughput_rps) })), fmt: (v) => v.toFixed(2) }),
      lineChart({ title: 'Latency vs concurrency', xLabel: 'concurrent requests', yLabel: 'ms', x: cs, series: cplans.flatMap((p) => [
        { name: `${p} p50`, values: cs.map((c) => cc.find((r) => r.plan === p && r.concurrency === c)?.latency_p50_ms) },
        { name: `${p} p99`, dashed: true, values: cs.map((c) => cc.find((r) => r.plan === p && r.concurrency === c)?.latency_p99_ms) },
      ]) }),
    ] : [emptyChart('Concurrency', 'concurrency suite not run')];
    figs.push(figure('concurrency', 'Concurrency: parallel client requests', charts, 'Same stack and resources; only the number of requests in flight changes.'));
  }

  // Multi-tenant.
  {
    const sh = rows.find((r) => r.mode === 'shared' && !r.id.includes(':'));
    const se = rows.find((r) => r.mode === 'separate' && !r.id.includes(':'));
    const charts: string[] = [];
    if (sh && se) {
      charts.push(barChart({
        title: 'Cost per 1,000 requests', categories: ['billed (pay per use)', 'reserved capacity'], yLabel: 'CU',
        series: [{ name: 'shared stack', values: [sh.cu_per_1k, sh.reserved_cu_per_1k] }, { name: 'separate stacks', values: [se.cu_per_1k, se.reserved_cu_per_1k] }],
      }));
      const per = rows.filter((r) => r.id.includes(':') && measured(r));
      const models = uniq(per.map((r) => r.model));
      charts.push(barChart({
        title: 'Latency per tenant', categories: models, yLabel: 'ms',
        series: [
          { name: 'shared p50', values: models.map((m) => per.find((r) => r.mode === 'shared' && r.model === m)?.latency_p50_ms) },
          { name: 'separate p50', values: models.map((m) => per.find((r) => r.mode === 'separate' && r.model === m)?.latency_p50_ms) },
          { name: 'shared p99', hatch: true, color: PALETTE[0], values: models.map((m) => per.find((r) => r.mode === 'shared' && r.model === m)?.latency_p99_ms) },
          { name: 'separate p99', hatch: true, color: PALETTE[1], values: models.map((m) => per.find((r) => r.mode === 'separate' && r.model === m)?.latency_p99_ms) },
        ],
      }));
      charts.push(barChart({
        title: 'Deployment footprint', categories: ['all instances RSS', 'worker RSS'], yLabel: 'MB',
        series: [{ name: 'shared stack', values: [sh.deployment_rss_mb, sh.worker_rss_sum_mb] }, { name: 'separate stacks', values: [se.deployment_rss_mb, se.worker_rss_sum_mb] }],
      }));
    } else charts.push(emptyChart('Multi-tenant serving', 'multi-tenant suite not run (or failed)'));
    const saving = sh?.mt_saving_billed !== undefined
      ? ` Saving of the shared stack: ${(100 * sh.mt_saving_billed).toFixed(1)}% billed, ${sh.mt_saving_reserved === undefined ? 'n/a' : `${(100 * sh.mt_saving_reserved).toFixed(1)}%`} reserved (Perseus reports up to 12%).`
      : '';
    figs.push(figure('multitenant', 'Multi-tenant serving: one worker function for several models vs one stack per model', charts,
      `The same interleaved request stream goes to one stack serving every model, or to one stack per model (equal total worker instances).${esc(saving)}`));
  }

  const table1Rows = rows.filter((r) => r.suite === 'table1');
  const mainCols: (keyof BenchRow)[] = ['id', 'status', 'vcpu', 'memory_mb', 'batch', 'worker_num', 'max_workertime_ms', 'total_memory_mb', 'total_runtime_ms', 'worker_over_total', 'latency_p50_ms', 'latency_p99_ms', 'throughput_rps', 'cu_per_1k', 'latency_vs_mono', 'cost_vs_mono', 'pred_latency_ms', 'paper_total_runtime_ms'];
  const head = (cols: (keyof BenchRow)[]) => `<tr>${cols.map((c) => `<th>${esc(COLUMNS.find((x) => x.key === c)?.header ?? c)}</th>`).join('')}</tr>`;
  const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'number' ? fmtCell(v) : esc(String(v)));
  const body = (rs: BenchRow[], cols: (keyof BenchRow)[]) => rs.map((r) => `<tr class="${r.status}">${cols.map((c) => `<td>${cell(r[c])}</td>`).join('')}</tr>`).join('');
  const allCols = COLUMNS.map((c) => c.key);
  const failed = rows.filter((r) => r.status === 'failed' || r.status === 'partial' || r.status === 'skipped');

  const paperTable = `<table><tr><th>vcpu</th><th>memory_size_mb</th><th>batch_size</th><th>worker_num</th><th>max_workertime(ms)</th><th>total_memory usage(mb)</th><th>total_runtime(ms)</th><th>worker/total time</th></tr>${PAPER_TABLE1.map((p) => `<tr><td>${p.vcpu}</td><td>${p.memoryMb}</td><td>${p.batch}</td><td>${p.workerNum}</td><td>${p.maxWorkerMs}</td><td>${p.totalMemoryMb}</td><td>${p.totalRuntimeMs}</td><td>${p.workerOverTotal.toFixed(3)}</td></tr>`).join('')}</table>`;

  const m = res.meta;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>fc-tiled-cnn bench ${esc(m.startedAt)}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;color:#222;line-height:1.4}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin:0 0 8px}
.meta{color:#555;font-size:13px}
figure{margin:28px 0;padding:16px;border:1px solid #e3e3e3;border-radius:6px;background:#fff}
.charts{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.chart{overflow-x:auto;max-width:100%}
figcaption{font-size:13px;color:#555;margin-top:8px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f5f5f5;position:sticky;top:0}
td:first-child,th:first-child{text-align:left}
tr.failed td{background:#fdecea}tr.partial td{background:#fff6e0}tr.skipped td{color:#888}
.scroll{overflow-x:auto;max-width:100%}
code{background:#f3f3f3;padding:0 3px;border-radius:3px}
ul.notes li{font-size:13px}
dl{font-size:13px}dt{font-weight:600;margin-top:6px}dd{margin-left:18px;color:#444}
</style></head><body>
<h1>fc-tiled-cnn: distributed CNN inference bench</h1>
<p class="meta">Run ${esc(m.startedAt)} &ndash; ${esc(m.finishedAt)} (${(m.durationMs / 1000).toFixed(0)} s), ${m.configs} configurations, ${m.host.cores} cores, Node ${esc(m.host.node)}, ${esc(m.host.platform)}.
CPU emulation: affinity ${m.emulation.affinity && m.emulation.taskset ? 'on (taskset)' : 'off'}, duty-cycle throttling ${m.emulation.throttle ? 'on' : 'off'}. Cost model: ${esc(m.costModel)}.</p>
${res.notes.length ? `<h2>Notes</h2><ul class="notes">${res.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
${failed.length ? `<h2>Failed, partial and skipped configurations</h2><div class="scroll"><table>${head(['id', 'status', 'ok', 'failed', 'error'])}${body(failed, ['id', 'status', 'ok', 'failed', 'error'])}</table></div>` : ''}
<h2>Table 1 (this run)</h2>
<div class="scroll"><table>${head(mainCols)}${body(table1Rows.length ? table1Rows : rows, mainCols)}</table></div>
${figs.join('\n')}
<h2>The paper's Table 1 (ResNet-18 on Function Compute)</h2>
<div class="scroll">${paperTable}</div>
<p class="meta">In every paper row, worker/total time = 6 &times; max_workertime / total_runtime: the paper counts each of the 6 groups at the slowest worker time; this bench sums each group's own slowest worker.</p>
<h2>All rows</h2>
<div class="scroll"><table>${head(allCols)}${body(rows, allCols)}</table></div>
<h2>Column definitions</h2>
<dl>${COLUMNS.map((c) => `<dt>${esc(c.header)}</dt><dd>${esc(c.doc)}</dd>`).join('')}</dl>
</body></html>
`;
}

function fmtCell(v: number): string {
  if (!Number.isFinite(v)) return '';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

