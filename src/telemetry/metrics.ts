/**
 * Prometheus metrics of the serving path, fed once per request from what the handler already
 * computed: the HTTP status, the latency and the cost report every response carries in
 * `parameters.cost` (src/serve/cost-report.ts). Nothing is instrumented twice.
 *
 * One registry per process. On FC that is one per handler instance (docs/operations.md says how
 * to collect them); the local stack's gateway keeps one for the whole stack.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { requestCostSchema, type RequestCost } from '../serve/cost-report.ts';
import type { GatewayMetrics } from '../http/gateway.ts';
import type { RouteMetrics } from '../http/routes.ts';
import { resultBody } from '../http/fc-event.ts';

/** One answered inference request. `cost` is `parameters.cost` as the response carried it (unparsed). */
export interface RequestObservation {
  model: string;
  status: number;
  seconds: number;
  cost?: unknown;
}

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class ServeMetrics implements RouteMetrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;
  private readonly requests: Counter<'model' | 'status'>;
  private readonly latency: Histogram<'model'>;
  private readonly phase: Histogram<'model' | 'phase'>;
  private readonly unit: Histogram<'model' | 'kind' | 'unit'>;
  private readonly storeRequests: Counter<'model'>;
  private readonly storeBytes: Counter<'model' | 'direction'>;
  private readonly invocations: Counter<'model' | 'function'>;
  private readonly coldStarts: Counter<'model'>;
  private readonly retries: Counter<'model'>;
  private readonly storeRetries: Counter<'model'>;
  private readonly exchangeRequests: Counter<'model'>;
  private readonly exchangeBytes: Counter<'model' | 'direction'>;
  private readonly workerSeconds: Counter<'model' | 'activity'>;
  private readonly workerRss: Gauge<'model'>;
  private readonly billedUsd: Counter<'model'>;
  private readonly costErrors: Counter;
  /** Models the labels may name; anything else is counted as "other" (clients choose the path). */
  private readonly known?: (model: string) => boolean;

  constructor(opts: { prefix?: string; knownModel?: (model: string) => boolean } = {}) {
    const p = opts.prefix ?? 'fc_tiled_cnn_';
    const registers = [this.registry];
    this.known = opts.knownModel;
    this.requests = new Counter({ name: `${p}requests_total`, help: 'Inference requests answered, by model and HTTP status.', labelNames: ['model', 'status'], registers });
    this.latency = new Histogram({ name: `${p}request_duration_seconds`, help: 'Inference request latency, seconds.', labelNames: ['model'], buckets: LATENCY_BUCKETS, registers });
    this.phase = new Histogram({
      name: `${p}phase_duration_seconds`, help: 'Handler phases of a request: storeInput, master, fetchOutput, total (parameters.cost.ms).',
      labelNames: ['model', 'phase'], buckets: LATENCY_BUCKETS, registers,
    });
    this.unit = new Histogram({
      name: `${p}stage_duration_seconds`, help: 'Duration of each unit of the schedule: a chain of stages run by workers, or a stage the master runs.',
      labelNames: ['model', 'kind', 'unit'], buckets: LATENCY_BUCKETS, registers,
    });
    this.storeRequests = new Counter({ name: `${p}store_requests_total`, help: 'Object-store requests (handler, master and workers, polls included).', labelNames: ['model'], registers });
    this.storeBytes = new Counter({ name: `${p}store_bytes_total`, help: 'Object-store bytes, by direction (read, written).', labelNames: ['model', 'direction'], registers });
    this.invocations = new Counter({ name: `${p}invocations_total`, help: 'Function invocations made for requests, by function (master, worker).', labelNames: ['model', 'function'], registers });
    this.coldStarts = new Counter({ name: `${p}cold_starts_total`, help: 'Master and worker invocations that started an instance.', labelNames: ['model'], registers });
    this.retries = new Counter({ name: `${p}retries_total`, help: 'Worker invocations sent again after a crash, timeout or throttle.', labelNames: ['model'], registers });
    this.storeRetries = new Counter({ name: `${p}store_retries_total`, help: 'Object-store operations sent again after a transient failure.', labelNames: ['model'], registers });
    this.exchangeRequests = new Counter({ name: `${p}exchange_requests_total`, help: 'Requests to an exchange that is not the object store (EXCHANGE=redis).', labelNames: ['model'], registers });
    this.exchangeBytes = new Counter({ name: `${p}exchange_bytes_total`, help: 'Bytes through an exchange that is not the object store (EXCHANGE=redis), by direction.', labelNames: ['model', 'direction'], registers });
    this.workerSeconds = new Counter({ name: `${p}worker_seconds_total`, help: 'Worker time summed over invocations, by activity (compute, exchange, wait).', labelNames: ['model', 'activity'], registers });
    this.workerRss = new Gauge({ name: `${p}worker_peak_rss_bytes`, help: 'Peak worker RSS of the latest request (use max_over_time for the peak over a window).', labelNames: ['model'], registers });
    this.billedUsd = new Counter({ name: `${p}billed_usd_total`, help: 'Billed compute at FC list prices (parameters.cost.billed.usd).', labelNames: ['model'], registers });
    this.costErrors = new Counter({ name: `${p}cost_reports_invalid_total`, help: 'Successful responses whose parameters.cost did not parse (their cost is not counted).', registers });
  }

  observe(o: RequestObservation): void {
    const model = !this.known || this.known(o.model) ? o.model : 'other';
    this.requests.inc({ model, status: String(o.status) });
    this.latency.observe({ model }, o.seconds);
    if (o.cost === undefined) return;
    const parsed = requestCostSchema.safeParse(o.cost);
    if (!parsed.success) {
      this.costErrors.inc();
      return;
    }
    this.observeCost(model, parsed.data);
  }

  private observeCost(model: string, c: RequestCost): void {
    for (const [phase, ms] of Object.entries({ storeInput: c.ms.storeInput, master: c.ms.master, fetchOutput: c.ms.fetchOutput, total: c.ms.total })) {
      this.phase.observe({ model, phase }, ms / 1000);
    }
    for (const s of c.stages) this.unit.observe({ model, kind: s.kind, unit: String(s.id) }, s.ms / 1000);
    this.storeRequests.inc({ model }, c.store.requests);
    this.storeBytes.inc({ model, direction: 'read' }, c.store.bytesRead);
    this.storeBytes.inc({ model, direction: 'written' }, c.store.bytesWritten);
    this.invocations.inc({ model, function: 'master' }, c.invocations.master);
    this.invocations.inc({ model, function: 'worker' }, c.invocations.worker);
    this.coldStarts.inc({ model }, c.invocations.coldStarts);
    this.retries.inc({ model }, c.invocations.retries);
    this.storeRetries.inc({ model }, c.store.retries);
    if (c.exchange) {
      this.exchangeRequests.inc({ model }, c.exchange.requests);
      this.exchangeBytes.inc({ model, direction: 'read' }, c.exchange.bytesRead);
      this.exchangeBytes.inc({ model, direction: 'written' }, c.exchange.bytesWritten);
    }
    this.workerSeconds.inc({ model, activity: 'compute' }, c.workerTime.computeMs / 1000);
    this.workerSeconds.inc({ model, activity: 'exchange' }, c.workerTime.exchangeMs / 1000);
    this.workerSeconds.inc({ model, activity: 'wait' }, c.workerTime.waitMs / 1000);
    this.workerRss.set({ model }, c.peakWorkerRssMb * 1048576);
    this.billedUsd.inc({ model }, c.billed.usd);
  }

  /** The Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}

/** The model an inference path names (`/v2/models/{name}/infer`), if it is one. */
export function inferModelOf(path: string): string | undefined {
  const m = /^\/v2\/models\/([^/]+)\/infer\/?$/.exec(path);
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * `parameters.cost` of an OIP v2 response body: the JSON body, or the JSON header of a binary
 * response (`inference-header-content-length` bytes). Undefined when there is none.
 */
export function costOfResponse(body: Buffer, headers: Record<string, string>): unknown {
  const h = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const jsonLen = h['inference-header-content-length'];
  let text: string;
  if (jsonLen !== undefined && /^\d+$/.test(jsonLen)) text = body.subarray(0, Number(jsonLen)).toString('utf8');
  else if ((h['content-type'] ?? '').includes('json')) text = body.toString('utf8');
  else return undefined;
  try {
    const v = JSON.parse(text) as { parameters?: { cost?: unknown } };
    return v?.parameters?.cost;
  } catch {
    return undefined;
  }
}

/**
 * The local stack's view: the gateway sees every request whichever handler instance served it,
 * so one registry there counts them all. The cost comes from the response the handler built.
 */
export function gatewayMetrics(metrics: ServeMetrics): GatewayMetrics {
  return {
    contentType: metrics.contentType,
    render: () => metrics.render(),
    observe(event, status, seconds, result) {
      const model = inferModelOf(event.rawPath);
      if (model === undefined) return;
      const cost = result && status === 200 ? costOfResponse(resultBody(result), result.headers ?? {}) : undefined;
      metrics.observe({ model, status, seconds, cost });
    },
  };
}

/**
 * The handler's hooks for one request: the instance's registry, plus one JSON log line per
 * inference request with its cost report (what SLS turns into metrics on FC, docs/operations.md).
 */
export function requestMetrics(metrics: ServeMetrics, log: { info(obj: object, msg: string): void }, requestId: string): RouteMetrics {
  return {
    contentType: metrics.contentType,
    render: () => metrics.render(),
    observe(o) {
      metrics.observe(o);
      log.info({ requestId, model: o.model, status: o.status, ms: Math.round(o.seconds * 1000), ...(o.cost === undefined ? {} : { cost: o.cost }) }, 'inference');
    },
  };
}
