/**
 * Table 1 of the seed paper (ResNet-18 on Function Compute; ../shared/data/paper-table1.csv, copied
 * to test/fixtures/paper-table1.csv, which a test compares with this constant). worker_num 24 is
 * the 2x2 scheme, 72 the 4x4 one.
 *
 * Note: in every row, worker_over_total_time = 6 * max_workertime / total_runtime exactly, i.e.
 * the paper counted each of the 6 groups at the request's slowest worker time. The bench sums each
 * group's own slowest worker instead (equal when the groups are balanced).
 */
import type { PaperRow } from './columns.ts';

/** Groups in the paper's ResNet-18 schemes: each is a round of worker invocations per request. */
export const PAPER_GROUPS = 6;

export const PAPER_TABLE1_CSV_HEADER = 'vcpu,memory_size_mb,batch_size,worker_num,max_workertime_ms,total_memory_usage_mb,total_runtime_ms,worker_over_total_time';

const RAW: [number, number, number, number, number, number, number, number][] = [
  [0.35, 512, 1, 72, 2814.7, 379.24, 28639, 0.589692378],
  [0.35, 512, 1, 24, 2784, 389.82, 21619, 0.772653684],
  [0.35, 512, 16, 72, 3069, 481.53, 50415, 0.365248438],
  [0.35, 512, 16, 24, 3633.7, 481.31, 32853, 0.663628892],
  [1.5, 4096, 1, 72, 2434.2, 407.1, 21764, 0.671071494],
  [1.5, 4096, 1, 24, 2292.2, 391.8, 16724, 0.822363071],
  [1.5, 4096, 16, 72, 3418, 601.6, 48218, 0.425318346],
  [1.5, 4096, 16, 24, 2991.1, 567.7, 26557, 0.675776631],
  [1.5, 4096, 64, 72, 4638.9, 1242.9, 110743, 0.251333267],
  [1.5, 4096, 64, 24, 4638.5, 1142.3, 58482, 0.475890017],
  [1.5, 4096, 128, 72, 6466.7, 2020.3, 197641, 0.196316554],
];

export const PAPER_TABLE1: PaperRow[] = RAW.map(([vcpu, memoryMb, batch, workerNum, maxWorkerMs, totalMemoryMb, totalRuntimeMs, workerOverTotal]) => ({
  vcpu, memoryMb, batch, workerNum, maxWorkerMs, totalMemoryMb, totalRuntimeMs, workerOverTotal,
}));

export function paperRowFor(q: { vcpu: number; memoryMb: number; batch: number; workerNum?: number }): PaperRow | undefined {
  if (q.workerNum === undefined) return undefined;
  return PAPER_TABLE1.find((r) => Math.abs(r.vcpu - q.vcpu) < 1e-9 && r.memoryMb === q.memoryMb && r.batch === q.batch && r.workerNum === q.workerNum);
}
