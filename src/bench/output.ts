/** Writers: bench-out/<timestamp>/results.csv, results.json, report.html, and the printed table. */
import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COLUMNS, type BenchRow } from './columns.ts';
import { toCsv } from './csv.ts';
import { renderReport } from './report.ts';
import type { BenchResult } from './runner.ts';

export function resultsCsv(rows: readonly BenchRow[]): string {
  return toCsv(rows, COLUMNS.map((c) => ({ header: c.header, get: (r: BenchRow) => r[c.key] })));
}

/** `2025-01-31T12-34-56Z`: sortable, and valid in file names everywhere. */
export function timestampDir(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

export async function writeOutputs(dir: string, res: BenchResult): Promise<{ csv: string; json: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const csv = join(dir, 'results.csv');
  const json = join(dir, 'results.json');
  const html = join(dir, 'report.html');
  await writeFile(csv, resultsCsv(res.rows));
  await writeFile(json, JSON.stringify({ ...res, columns: COLUMNS.map(({ key, header, doc }) => ({ key, header, doc })) }, null, 1));
  await writeFile(html, renderReport(res));
  return { csv, json, html };
}

const PRINTED: { key: keyof BenchRow; header: string }[] = [
  { key: 'id', header: 'config' },
  { key: 'status', header: 'status' },
  { key: 'worker_num', header: 'workers' },
  { key: 'max_workertime_ms', header: 'max_worker ms' },
  { key: 'total_memory_mb', header: 'total_mem MB' },
  { key: 'total_runtime_ms', header: 'runtime ms' },
  { key: 'worker_over_total', header: 'w/total' },
  { key: 'latency_p50_ms', header: 'p50 ms' },
  { key: 'latency_p99_ms', header: 'p99 ms' },
  { key: 'throughput_rps', header: 'req/s' },
  { key: 'store_requests', header: 'store req' },
  { key: 'cu_per_1k', header: 'CU/1k' },
  { key: 'mono_p50_ms', header: 'mono ms' },
  { key: 'latency_vs_mono', header: 'x mono' },
  { key: 'pred_latency_ms', header: 'pred ms' },
  { key: 'measured_over_pred_latency', header: 'meas/pred' },
  // Predicted on FC (profiles/fc.json): typical, and both ends of its published ranges.
  { key: 'pred_fc_latency_ms', header: 'FC ms' },
  { key: 'pred_fc_latency_best_ms', header: 'FC best' },
  { key: 'pred_fc_latency_worst_ms', header: 'FC worst' },
];

/** A fixed-width text table of the main columns. */
export function formatTable(rows: readonly BenchRow[]): string {
  const cells = rows.map((r) => PRINTED.map((c) => {
    const v = r[c.key];
    if (v === undefined) return '-';
    if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
    return String(v);
  }));
  const widths = PRINTED.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i].length)));
  const line = (xs: string[]) => xs.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  return [line(PRINTED.map((c) => c.header)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/**
 * Function instances' output (the process pool forwards it to stderr as `[<instance id>] line`,
 * e.g. a handler logging a 502 after a worker was killed over its memory limit) goes to a file,
 * so that the bench's progress bar and the calibration's own lines stay readable. Returns a function that restores stderr and says how
 * many lines were captured.
 */
export function captureInstanceLogs(file: string): () => Promise<number> {
  const out = createWriteStream(file);
  const write = process.stderr.write.bind(process.stderr);
  const INSTANCE_LINE = /^\[[A-Za-z_][\w-]*-\d+-[0-9a-f]{8}\] /;
  let lines = 0;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (INSTANCE_LINE.test(text)) {
      lines += text.split('\n').filter(Boolean).length;
      out.write(text);
      const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    }
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  return async () => {
    process.stderr.write = write;
    await new Promise<void>((r) => out.end(r));
    if (!lines) await rm(file, { force: true });
    return lines;
  };
}
