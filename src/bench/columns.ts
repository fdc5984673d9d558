/**
 * What one bench configuration reports: the paper's Table 1 columns, latency, throughput,
 * invocations, store traffic, memory, FC cost, the monolithic baseline and the cost model's
 * prediction. `summarizeConfig` is pure (samples and snapshots in, one row out) so that every
 * column can be tested on synthetic cost objects.
 */
import { estimateCost, FC_PRICING } from '../billing/pricing.ts';
import { max, mean, median, percentile, ratio, sum, throughput } from './stats.ts';

export type { RequestCost, StageCost } from '../serve/cost-report.ts';
import type { RequestCost } from '../serve/cost-report.ts';

/** One measured request, as the client saw it. */
export interface Sample {
  /** Served model name (plan name). */
  model: string;
  ok: boolean;
  /** Client clock (performance.now()) at send and at the end of the response. */
  startMs: number;
  endMs: number;
  latencyMs: number;
  cost?: RequestCost;
  error?: string;
  /** `http`: through the gateway and the handler function; `direct`: the handler's backend in the bench process. */
  path: 'http' | 'direct';
}

/** Table 1 of the paper, for one request. */
export interface Table1 {
  /** Slowest worker invocation of the request (ms, worker-measured handler duration). */
  maxWorkerMs: number;
  /** Sum over chains of the chain's slowest worker (ms): the request's parallel (worker) time. */
  parallelMs: number;
  /** End-to-end runtime of the request as the handler measured it (ms). */
  totalMs: number;
  /** parallelMs / totalMs: the paper's "parallel time share". */
  workerOverTotal: number;
  /** Sum of the chains' wall time (ms, the master's view: waves of workers, queueing). */
  groupMs: number;
}

export function table1OfRequest(c: RequestCost): Table1 {
  const groups = c.stages.filter((s) => s.kind === 'chain');
  const maxWorkerMs = Math.max(0, ...groups.map((s) => s.maxWorkerMs));
  const parallelMs = groups.reduce((a, s) => a + s.maxWorkerMs, 0);
  const groupMs = groups.reduce((a, s) => a + s.ms, 0);
  return { maxWorkerMs, parallelMs, totalMs: c.ms.total, workerOverTotal: c.ms.total > 0 ? parallelMs / c.ms.total : NaN, groupMs };
}

export type Suite = 'table1' | 'concurrency' | 'multitenant';
export type Mode = 'single' | 'shared' | 'separate';
export type Status = 'ok' | 'partial' | 'failed' | 'skipped';

/** Peak RSS figures read from the process pool(s) after the configuration ran. */
export interface MemorySnapshot {
  /** Largest peak RSS of any live handler / master / worker instance (MB; VmHWM where /proc exists). */
  handlerRssMb?: number;
  masterRssMb?: number;
  workerRssMb?: number;
  /** Sum of the peak RSS of the live worker instances (MB). */
  workerRssSumMb: number;
  /** Sum of the peak RSS of every live instance of every function (MB). */
  deploymentRssMb: number;
  oomKills: number;
  /** Live instances and their configured resources, for the reserved-capacity cost. */
  instances: { vcpu: number; memoryMb: number; count: number }[];
}

export interface MonoResult { p50Ms: number; rssMb: number; maxAbsDiff?: number; error?: string }

/** Columns filled from the cost model (src/cost/model.ts) when it is present. */
export interface PredictedColumns {
  latencyMs: number;
  workerPeakMb: number;
  invocations: number;
  storeRequests: number;
  storeBytes: number;
  computeUnits: number;
  fcLatencyMs?: number;
  fcComputeUnits?: number;
  /** FC latency with every profile figure at the favourable / unfavourable end of its published range. */
  fcLatencyBestMs?: number;
  fcLatencyWorstMs?: number;
}

export interface PaperRow {
  vcpu: number; memoryMb: number; batch: number; workerNum: number;
  maxWorkerMs: number; totalMemoryMb: number; totalRuntimeMs: number; workerOverTotal: number;
}

export interface ConfigInfo {
  id: string;
  suite: Suite;
  mode: Mode;
  model: string;
  plan: string;
  vcpu: number;
  memoryMb: number;
  threads: number;
  cpusPerInstance: number;
  cpuDuty: number;
  batch: number;
  concurrency: number;
  maxInstances: number;
  groups?: number;
  tiles?: number;
  redundancy?: number;
}

export interface BenchRow {
  id: string; suite: Suite; mode: Mode; model: string; plan: string; status: Status; error?: string; path?: string;
  vcpu: number; memory_mb: number; threads: number; cpus_per_instance: number; cpu_duty: number;
  batch: number; concurrency: number; max_instances: number;
  groups?: number; worker_num?: number; redundancy?: number;
  requests: number; ok: number; failed: number;
  max_workertime_ms?: number; total_memory_mb?: number; total_runtime_ms?: number; worker_over_total?: number; group_time_share?: number;
  latency_p50_ms?: number; latency_p99_ms?: number; latency_mean_ms?: number; throughput_rps?: number;
  invocations?: number; worker_invocations?: number; cold_starts?: number; store_requests?: number; store_mb?: number;
  peak_worker_rss_mb?: number; worker_rss_sum_mb?: number; master_rss_mb?: number; handler_rss_mb?: number; deployment_rss_mb?: number; oom_kills?: number;
  cu_per_1k?: number; usd_per_1k?: number; vcpu_s_per_req?: number; gb_s_per_req?: number; reserved_cu_per_1k?: number;
  mono_p50_ms?: number; mono_rss_mb?: number; mono_fits_memory?: boolean; mono_cu_per_1k?: number; latency_vs_mono?: number; cost_vs_mono?: number; max_abs_diff?: number;
  pred_latency_ms?: number; pred_worker_peak_mb?: number; pred_invocations?: number; pred_store_requests?: number; pred_store_mb?: number; pred_cu_per_1k?: number; measured_over_pred_latency?: number;
  pred_fc_latency_ms?: number; pred_fc_cu_per_1k?: number; pred_fc_latency_best_ms?: number; pred_fc_latency_worst_ms?: number;
  paper_max_workertime_ms?: number; paper_total_memory_mb?: number; paper_total_runtime_ms?: number; paper_worker_over_total?: number;
  mt_saving_billed?: number; mt_saving_reserved?: number;
}

export interface Column { key: keyof BenchRow; header: string; doc: string }

const MB = 1048576;

/**
 * Every column of results.csv, in order, with its definition (docs/bench.md repeats these).
 * Per-request quantities are medians over the successful measured requests unless said otherwise.
 */
export const COLUMNS: Column[] = [
  { key: 'id', header: 'id', doc: 'configuration id (suite, resources, batch, plan, concurrency)' },
  { key: 'suite', header: 'suite', doc: '`table1` (batch x plan x vCPU/memory sweep), `concurrency` (parallel clients), `multitenant`' },
  { key: 'mode', header: 'mode', doc: '`single` (one model), `shared` (several models on one stack), `separate` (the same traffic on one stack per model)' },
  { key: 'model', header: 'model', doc: 'served model name(s); multi-tenant rows join them with `+`' },
  { key: 'plan', header: 'plan', doc: 'partition scheme: `2x2` (24 tiles), `4x4` (72 tiles), `auto` (planner search)' },
  { key: 'status', header: 'status', doc: '`ok`, `partial` (some requests failed), `failed` (none succeeded, e.g. workers killed over WORKER_MEMORY_MB), `skipped`' },
  { key: 'error', header: 'error', doc: 'first error message of the configuration, or why it was skipped' },
  { key: 'path', header: 'path', doc: '`http` (gateway + handler function) or `direct` (handler backend in the bench process; used when the request is over the HTTP/FC payload limits)' },
  { key: 'vcpu', header: 'vcpu', doc: 'worker vCPU (WORKER_VCPU, billed); emulated locally, see threads / cpus_per_instance / cpu_duty' },
  { key: 'memory_mb', header: 'memory_size_mb', doc: 'worker memory (WORKER_MEMORY_MB): billed, and the RSS limit over which the pool kills an instance' },
  { key: 'threads', header: 'threads', doc: 'ORT intra-op threads per worker (WORKER_THREADS) = ceil(vcpu), at most the machine\'s cores' },
  { key: 'cpus_per_instance', header: 'cpus_per_instance', doc: 'cores each worker process is pinned to (taskset); 0 when affinity is off or unavailable' },
  { key: 'cpu_duty', header: 'cpu_duty', doc: 'share of each 100 ms period a worker may run (its CFS quota, or a SIGSTOP/SIGCONT duty cycle where cgroups are unavailable) = vcpu / threads; 1 = not throttled' },
  { key: 'batch', header: 'batch_size', doc: 'images per request' },
  { key: 'concurrency', header: 'concurrency', doc: 'requests in flight from the client at once' },
  { key: 'max_instances', header: 'max_instances', doc: 'WORKER_MAX_INSTANCES of the stack (instance concurrency is 1, so the most tiles running at once)' },
  { key: 'groups', header: 'groups', doc: 'layer groups in the plan' },
  { key: 'worker_num', header: 'worker_num', doc: 'worker invocations per request (tiles over all groups; the paper\'s worker_num)' },
  { key: 'redundancy', header: 'redundancy', doc: 'halo redundancy of the plan: tile FLOPs / monolithic FLOPs (plan.summary.redundancy)' },
  { key: 'requests', header: 'requests', doc: 'measured requests (after warm-up): the configuration\'s, or up to 3x that so that a short row measures for about a second' },
  { key: 'ok', header: 'ok', doc: 'successful measured requests' },
  { key: 'failed', header: 'failed', doc: 'failed measured requests' },
  { key: 'max_workertime_ms', header: 'max_workertime(ms)', doc: 'Table 1: the slowest worker invocation of the request (worker handler duration, as billed)' },
  { key: 'total_memory_mb', header: 'total_memory usage(mb)', doc: 'Table 1: peak RSS of one instance of each function on the request path, summed: handler + master + the largest worker (see docs/bench.md for why not a sum over all workers)' },
  { key: 'total_runtime_ms', header: 'total_runtime(ms)', doc: 'Table 1: end-to-end runtime of the request measured by the handler (`cost.ms.total`: store the input, run the master, fetch the output)' },
  { key: 'worker_over_total', header: 'worker/total time', doc: 'Table 1: parallel time share = sum over groups of the group\'s slowest worker / total_runtime' },
  { key: 'group_time_share', header: 'group/total time', doc: 'sum of the group stages\' wall time (the master\'s view, including waves and queueing) / total_runtime' },
  { key: 'latency_p50_ms', header: 'latency_p50(ms)', doc: 'client-side latency, nearest-rank median' },
  { key: 'latency_p99_ms', header: 'latency_p99(ms)', doc: 'client-side latency, nearest-rank 99th percentile (= the maximum below 100 requests)' },
  { key: 'latency_mean_ms', header: 'latency_mean(ms)', doc: 'client-side latency, mean' },
  { key: 'throughput_rps', header: 'throughput(req/s)', doc: 'successful requests / (last response end - first request start)' },
  { key: 'invocations', header: 'invocations', doc: 'billed invocations per request: handler + master + workers' },
  { key: 'worker_invocations', header: 'worker_invocations', doc: 'worker invocations per request (cost.invocations.worker)' },
  { key: 'cold_starts', header: 'cold_starts', doc: 'cold starts over all measured requests (should be 0 after warm-up unless instances died)' },
  { key: 'store_requests', header: 'store_requests', doc: 'object-store requests per request (handler, master and workers)' },
  { key: 'store_mb', header: 'store_mb', doc: 'object-store bytes read + written per request (MiB)' },
  { key: 'peak_worker_rss_mb', header: 'peak_worker_rss(mb)', doc: 'largest peak RSS of a live worker instance (VmHWM from /proc; without /proc, the largest `cost.peakWorkerRssMb` of the requests)' },
  { key: 'worker_rss_sum_mb', header: 'worker_rss_sum(mb)', doc: 'sum of the peak RSS of all live worker instances (the aggregate worker footprint)' },
  { key: 'master_rss_mb', header: 'master_rss(mb)', doc: 'largest peak RSS of a master instance' },
  { key: 'handler_rss_mb', header: 'handler_rss(mb)', doc: 'largest peak RSS of a handler instance (absent on the direct path)' },
  { key: 'deployment_rss_mb', header: 'deployment_rss(mb)', doc: 'sum of the peak RSS of every live instance of every function (all stacks of the row)' },
  { key: 'oom_kills', header: 'oom_kills', doc: 'instances killed for exceeding their memory limit during the configuration' },
  { key: 'cu_per_1k', header: 'cu_per_1k', doc: 'FC compute units per 1,000 requests: mean `cost.billed.computeUnits` x 1000 (invocations, vCPU-s, GB-s at FC 3.0 prices)' },
  { key: 'usd_per_1k', header: 'usd_per_1k', doc: 'the same in USD (`cost.billed.usd` x 1000)' },
  { key: 'vcpu_s_per_req', header: 'vcpu_s_per_req', doc: 'billed vCPU-seconds per request (all functions)' },
  { key: 'gb_s_per_req', header: 'gb_s_per_req', doc: 'billed GB-seconds per request (all functions)' },
  { key: 'reserved_cu_per_1k', header: 'reserved_cu_per_1k', doc: 'CU per 1,000 requests if every live instance were paid for the whole measured window (vCPU-s + 0.15 GB-s, no idle discount): the capacity view multi-tenancy saves on' },
  { key: 'mono_p50_ms', header: 'mono_p50(ms)', doc: 'monolithic ORT: median of warm runs of the whole model, same input, in a process with the worker\'s threads, affinity and duty cycle' },
  { key: 'mono_rss_mb', header: 'mono_rss(mb)', doc: 'peak RSS of the monolithic process' },
  { key: 'mono_fits_memory', header: 'mono_fits_memory', doc: 'whether mono_rss fits the worker memory (a monolithic function of the worker\'s size would not be OOM-killed)' },
  { key: 'mono_cu_per_1k', header: 'mono_cu_per_1k', doc: 'CU per 1,000 requests of one monolithic function with the worker\'s vCPU and memory running for mono_p50' },
  { key: 'latency_vs_mono', header: 'latency_vs_mono', doc: 'latency_p50 / mono_p50' },
  { key: 'cost_vs_mono', header: 'cost_vs_mono', doc: 'cu_per_1k / mono_cu_per_1k' },
  { key: 'max_abs_diff', header: 'max_abs_diff', doc: 'largest |distributed - monolithic| output difference of the first successful request' },
  { key: 'pred_latency_ms', header: 'pred_latency(ms)', doc: 'cost model (src/cost/model.ts, local profile): predicted request latency' },
  { key: 'pred_worker_peak_mb', header: 'pred_worker_peak(mb)', doc: 'predicted worker peak RSS' },
  { key: 'pred_invocations', header: 'pred_invocations', doc: 'predicted billed invocations per request' },
  { key: 'pred_store_requests', header: 'pred_store_requests', doc: 'predicted store requests per request' },
  { key: 'pred_store_mb', header: 'pred_store_mb', doc: 'predicted store MiB per request' },
  { key: 'pred_cu_per_1k', header: 'pred_cu_per_1k', doc: 'predicted CU per 1,000 requests' },
  { key: 'measured_over_pred_latency', header: 'measured/pred latency', doc: 'total_runtime / pred_latency (1 = exact)' },
  { key: 'pred_fc_latency_ms', header: 'pred_fc_latency(ms)', doc: 'the cost model\'s prediction for Function Compute (FC profile)' },
  { key: 'pred_fc_cu_per_1k', header: 'pred_fc_cu_per_1k', doc: 'predicted CU per 1,000 requests on Function Compute' },
  { key: 'pred_fc_latency_best_ms', header: 'pred_fc_latency_best(ms)', doc: 'FC prediction with every profile figure at the favourable end of its published range (profiles/fc.json)' },
  { key: 'pred_fc_latency_worst_ms', header: 'pred_fc_latency_worst(ms)', doc: 'FC prediction with every profile figure at the unfavourable end of its range' },
  { key: 'paper_max_workertime_ms', header: 'paper_max_workertime(ms)', doc: 'the paper\'s Table 1 value for the same vCPU, memory, batch and worker_num (empty when the paper has no such row)' },
  { key: 'paper_total_memory_mb', header: 'paper_total_memory usage(mb)', doc: 'the paper\'s value, as above' },
  { key: 'paper_total_runtime_ms', header: 'paper_total_runtime(ms)', doc: 'the paper\'s value, as above' },
  { key: 'paper_worker_over_total', header: 'paper_worker/total time', doc: 'the paper\'s value, as above' },
  { key: 'mt_saving_billed', header: 'mt_saving_billed', doc: 'shared rows: 1 - cu_per_1k(shared) / cu_per_1k(separate)' },
  { key: 'mt_saving_reserved', header: 'mt_saving_reserved', doc: 'shared rows: 1 - reserved_cu_per_1k(shared) / reserved_cu_per_1k(separate)' },
];

/** CU per second of keeping these instances alive (FC 3.0 vCPU-s and GB-s prices, no invocation fee). */
export function reservedCuPerSecond(instances: MemorySnapshot['instances']): number {
  return instances.reduce((a, i) => a + i.count * (i.vcpu * FC_PRICING.cuPerVcpuSecond + (i.memoryMb / 1024) * FC_PRICING.cuPerGbSecond), 0);
}

export function monoComputeUnits(ms: number, vcpu: number, memoryMb: number): number {
  return estimateCost([{ function: 'mono', durationMs: ms }], { mono: { vcpu, memoryMb } }).computeUnits;
}

export interface SummaryInput {
  config: ConfigInfo;
  samples: Sample[];
  memory?: MemorySnapshot;
  mono?: MonoResult;
  predicted?: PredictedColumns;
  paper?: PaperRow;
  maxAbsDiff?: number;
  /** Error that prevented the configuration from running at all. */
  error?: string;
  skipped?: string;
}

const round = (x: number | undefined, digits = 1) => (x === undefined || !Number.isFinite(x) ? undefined : Math.round(x * 10 ** digits) / 10 ** digits);

export function summarizeConfig(inp: SummaryInput): BenchRow {
  const c = inp.config;
  const ok = inp.samples.filter((s) => s.ok && s.cost);
  const failed = inp.samples.filter((s) => !s.ok);
  const costs = ok.map((s) => s.cost!);
  const t1 = costs.map(table1OfRequest);
  const status: Status = inp.skipped ? 'skipped' : ok.length === 0 ? 'failed' : failed.length ? 'partial' : 'ok';
  const row: BenchRow = {
    id: c.id, suite: c.suite, mode: c.mode, model: c.model, plan: c.plan, status,
    error: inp.skipped ?? inp.error ?? failed[0]?.error,
    path: [...new Set(inp.samples.map((s) => s.path))].join('+') || undefined,
    vcpu: c.vcpu, memory_mb: c.memoryMb, threads: c.threads, cpus_per_instance: c.cpusPerInstance, cpu_duty: round(c.cpuDuty, 3)!,
    batch: c.batch, concurrency: c.concurrency, max_instances: c.maxInstances,
    groups: c.groups, worker_num: c.tiles, redundancy: round(c.redundancy, 3),
    requests: inp.samples.length, ok: ok.length, failed: failed.length,
  };
  const m = inp.memory;
  if (m) {
    row.worker_rss_sum_mb = round(m.workerRssSumMb);
    row.master_rss_mb = round(m.masterRssMb);
    row.handler_rss_mb = round(m.handlerRssMb);
    row.deployment_rss_mb = round(m.deploymentRssMb);
    row.oom_kills = m.oomKills;
  }
  if (ok.length) {
    const lat = ok.map((s) => s.latencyMs);
    row.max_workertime_ms = round(median(t1.map((t) => t.maxWorkerMs)));
    row.total_runtime_ms = round(median(t1.map((t) => t.totalMs)));
    row.worker_over_total = round(median(t1.map((t) => t.workerOverTotal)), 3);
    row.group_time_share = round(median(t1.map((t) => t.groupMs / t.totalMs)), 3);
    row.latency_p50_ms = round(percentile(lat, 50));
    row.latency_p99_ms = round(percentile(lat, 99));
    row.latency_mean_ms = round(mean(lat));
    row.throughput_rps = round(throughput(inp.samples), 3);
    row.invocations = round(mean(costs.map((x) => x.billed.invocations)), 2);
    row.worker_invocations = round(mean(costs.map((x) => x.invocations.worker)), 2);
    row.cold_starts = sum(costs.map((x) => x.invocations.coldStarts));
    row.store_requests = round(mean(costs.map((x) => x.store.requests)), 1);
    row.store_mb = round(mean(costs.map((x) => (x.store.bytesRead + x.store.bytesWritten) / MB)), 2);
    // The instances' own high-water mark when the runner could read it; else what the responses reported.
    row.peak_worker_rss_mb = round(m?.workerRssMb ?? max(costs.map((x) => x.peakWorkerRssMb)));
    if (m) row.total_memory_mb = round((m.handlerRssMb ?? 0) + (m.masterRssMb ?? 0) + (row.peak_worker_rss_mb ?? 0));
    const cu = mean(costs.map((x) => x.billed.computeUnits))!;
    row.cu_per_1k = round(cu * 1000, 3);
    row.usd_per_1k = round(mean(costs.map((x) => x.billed.usd))! * 1000, 6);
    row.vcpu_s_per_req = round(mean(costs.map((x) => x.billed.vcpuSeconds)), 4);
    row.gb_s_per_req = round(mean(costs.map((x) => x.billed.gbSeconds)), 4);
    if (m) {
      const t0 = Math.min(...inp.samples.map((s) => s.startMs));
      const tEnd = Math.max(...inp.samples.map((s) => s.endMs));
      row.reserved_cu_per_1k = round((reservedCuPerSecond(m.instances) * ((tEnd - t0) / 1000) / ok.length) * 1000, 3);
    }
  }
  const mono = inp.mono;
  if (mono && !mono.error) {
    row.mono_p50_ms = round(mono.p50Ms);
    row.mono_rss_mb = round(mono.rssMb);
    row.mono_fits_memory = mono.rssMb <= c.memoryMb;
    row.mono_cu_per_1k = round(monoComputeUnits(mono.p50Ms, c.vcpu, c.memoryMb) * 1000, 3);
    row.latency_vs_mono = round(ratio(row.latency_p50_ms, mono.p50Ms), 2);
    row.cost_vs_mono = round(ratio(row.cu_per_1k, row.mono_cu_per_1k), 2);
  }
  if (inp.maxAbsDiff !== undefined) row.max_abs_diff = inp.maxAbsDiff;
  const p = inp.predicted;
  if (p) {
    row.pred_latency_ms = round(p.latencyMs);
    row.pred_worker_peak_mb = round(p.workerPeakMb);
    row.pred_invocations = p.invocations;
    row.pred_store_requests = p.storeRequests;
    row.pred_store_mb = round(p.storeBytes / MB, 2);
    row.pred_cu_per_1k = round(p.computeUnits * 1000, 3);
    row.measured_over_pred_latency = round(ratio(row.total_runtime_ms, p.latencyMs), 2);
    row.pred_fc_latency_ms = round(p.fcLatencyMs);
    row.pred_fc_cu_per_1k = p.fcComputeUnits === undefined ? undefined : round(p.fcComputeUnits * 1000, 3);
    row.pred_fc_latency_best_ms = round(p.fcLatencyBestMs);
    row.pred_fc_latency_worst_ms = round(p.fcLatencyWorstMs);
  }
  const pr = inp.paper;
  if (pr) {
    row.paper_max_workertime_ms = pr.maxWorkerMs;
    row.paper_total_memory_mb = pr.totalMemoryMb;
    row.paper_total_runtime_ms = pr.totalRuntimeMs;
    row.paper_worker_over_total = round(pr.workerOverTotal, 3);
  }
  return row;
}

/** Fills the multi-tenant saving columns of `shared` from its `separate` counterpart. */
export function multiTenantSaving(shared: BenchRow, separate: BenchRow): void {
  const s = (a?: number, b?: number) => (a === undefined || b === undefined || b === 0 ? undefined : round(1 - a / b, 3));
  shared.mt_saving_billed = s(shared.cu_per_1k, separate.cu_per_1k);
  shared.mt_saving_reserved = s(shared.reserved_cu_per_1k, separate.reserved_cu_per_1k);
}
