/**
 * The OpenTelemetry SDK of one function instance. Function entry points (functions/*.ts) start
 * it; the serve code only uses @opentelemetry/api, which stays a no-op when no SDK is started.
 *
 * Spans are exported over OTLP/HTTP with JSON bodies (exporter-trace-otlp-http), and flushed
 * before every invocation returns: FC freezes an instance between invocations, so a batch left
 * in memory would leave with the next request, or never.
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, BatchSpanProcessor, NodeTracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { TelemetryConfig } from '../config.ts';
import { TelemetryError } from './errors.ts';

/** Resource attributes of one function: its spans name it as their service and FaaS. */
export interface FunctionIdentity {
  /** The function's name (HANDLER_FUNCTION, MASTER_FUNCTION, WORKER_FUNCTION). */
  functionName: string;
  /** FC's region when running on FC (FC_REGION). */
  region?: string;
  version?: string;
}

export interface Tracing {
  /** False when no OTLP endpoint is configured: spans are not recorded at all. */
  readonly enabled: boolean;
  /**
   * Runs one invocation under a SERVER span whose parent is the W3C context in `carrier`
   * (`traceparent`, `tracestate`), and flushes the instance's spans before returning.
   */
  invocation<T>(name: string, carrier: TraceCarrier, attributes: Attributes, fn: () => Promise<T>): Promise<T>;
  /** Exports whatever is buffered; never throws (a collector that is down must not fail requests). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface TraceCarrier { traceparent?: string; tracestate?: string }

/** The OTLP/HTTP traces URL from the standard variables: the signal-specific one wins. */
export function otlpTracesUrl(t: TelemetryConfig): string | undefined {
  if (t.otlpTracesEndpoint) return t.otlpTracesEndpoint;
  if (t.otlpEndpoint) return `${t.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
  return undefined;
}

/** OTEL_EXPORTER_OTLP_HEADERS: `k1=v1,k2=v2`, values percent-encoded (the OTel spec's format). */
export function parseOtlpHeaders(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw?.trim()) return out;
  raw.split(',').forEach((pair, i) => {
    const eq = pair.indexOf('=');
    const k = pair.slice(0, Math.max(0, eq)).trim();
    // Name the position only: header values are usually credentials.
    if (eq <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) throw new TelemetryError(`OTEL_EXPORTER_OTLP_HEADERS: entry ${i + 1} is not name=value`);
    try {
      out[k] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      throw new TelemetryError(`OTEL_EXPORTER_OTLP_HEADERS: the value of ${k} is not valid percent-encoding`);
    }
  });
  return out;
}

/**
 * Starts the SDK, registered globally so `trace.getTracer()` in the serve code records into it.
 * Without an OTLP endpoint nothing is recorded (every span is sampled out), but trace context
 * still flows: log lines carry the client's trace id and invocations pass it on.
 * `exporter` replaces the OTLP exporter (tests that keep spans in memory).
 */
export function startTracing(t: TelemetryConfig, id: FunctionIdentity, exporter?: SpanExporter): Tracing {
  const url = otlpTracesUrl(t);
  if (!url && !exporter) {
    new NodeTracerProvider({ sampler: new AlwaysOffSampler() }).register();
    return { ...invocations(async () => undefined), enabled: false, flush: async () => undefined, shutdown: async () => undefined };
  }
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: id.functionName,
    [ATTR_SERVICE_VERSION]: id.version ?? '0.1.0',
    'service.namespace': 'fc-tiled-cnn',
    'faas.name': id.functionName,
    'faas.instance': process.env.FC_INSTANCE_ID ?? `${process.pid}`,
    ...(id.region ? { 'cloud.provider': 'alibaba_cloud', 'cloud.platform': 'alibaba_cloud_fc', 'cloud.region': id.region } : {}),
  });
  const exp = exporter ?? new OTLPTraceExporter({
    url, headers: parseOtlpHeaders(t.otlpHeaders), timeoutMillis: t.otlpTimeoutMs,
    // A socket kept open across an FC freeze is often dead on thaw: one connection per flush.
    keepAlive: false,
  });
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exp, { exportTimeoutMillis: t.otlpTimeoutMs })] });
  provider.register();
  const flush = () => provider.forceFlush().catch(() => undefined);
  return { ...invocations(flush), enabled: true, flush, shutdown: () => provider.shutdown().catch(() => undefined) };
}

function invocations(flush: () => Promise<void>): Pick<Tracing, 'invocation'> {
  const tracer = trace.getTracer('fc-tiled-cnn');
  return {
    async invocation(name, carrier, attributes, fn) {
      const parent = contextOf(carrier);
      const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: { 'faas.trigger': 'other', ...attributes } }, parent);
      try {
        return await context.with(trace.setSpan(parent, span), fn);
      } catch (e) {
        span.recordException(e as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
        throw e;
      } finally {
        span.end();
        await flush();
      }
    },
  };
}

/** The remote parent a `traceparent`/`tracestate` pair names (the root context without one). */
export function contextOf(carrier: TraceCarrier): Context {
  if (!carrier.traceparent) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, { traceparent: carrier.traceparent, ...(carrier.tracestate ? { tracestate: carrier.tracestate } : {}) });
}
