/**
 * Spans of the distributed runtime, through @opentelemetry/api only: without an SDK (none is
 * started unless OTEL_EXPORTER_OTLP_ENDPOINT is set, src/telemetry/tracing.ts) every call here
 * is a no-op. The W3C context crosses function boundaries inside the invocation payloads
 * (`traceparent`, `tracestate` of the task schemas).
 */
import { context, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { StoreCounters } from '../store/counting-store.ts';

const tracer = trace.getTracer('fc-tiled-cnn');

/** `traceparent`/`tracestate` as a W3C header carries them, in the invocation payloads. */
export const TRACEPARENT_RE = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export interface TraceFields { traceparent?: string; tracestate?: string }

/** The active span's context (or `span`'s), to put in a payload; empty when nothing is traced. */
export function traceFields(span?: Span): TraceFields {
  const carrier: Record<string, string> = {};
  propagation.inject(span ? trace.setSpan(context.active(), span) : context.active(), carrier);
  return carrier.traceparent ? { traceparent: carrier.traceparent, ...(carrier.tracestate ? { tracestate: carrier.tracestate } : {}) } : {};
}

function fail(span: Span, e: unknown): void {
  span.recordException(e as Error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error)?.message });
}

/** Runs `fn` under a child span of the active one. */
export async function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, kind: SpanKind = SpanKind.INTERNAL): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      fail(span, e);
      throw e;
    } finally {
      span.end();
    }
  });
}

/** Store traffic of a span: requests (polls included) and bytes, as the counters moved under it. */
export function storeDelta(counters: StoreCounters, polls: () => number): () => Attributes {
  const c0 = { ...counters };
  const p0 = polls();
  return () => ({
    'store.requests': counters.gets + counters.puts + counters.lists + counters.deletes - (c0.gets + c0.puts + c0.lists + c0.deletes) + polls() - p0,
    'store.bytes_read': counters.bytesRead - c0.bytesRead,
    'store.bytes_written': counters.bytesWritten - c0.bytesWritten,
  });
}

/** `fn` under a span that records the store traffic it caused. */
export function inStoreSpan<T>(name: string, attributes: Attributes, counters: StoreCounters, polls: () => number, fn: () => Promise<T>): Promise<T> {
  return inSpan(name, attributes, async (span) => {
    const delta = storeDelta(counters, polls);
    try {
      return await fn();
    } finally {
      span.setAttributes(delta());
    }
  });
}

/**
 * One CLIENT span per invocation of `fn`'s callee, started before its payload is built (so the
 * payload carries the span's context) and ended when `run` for it settles.
 */
export function invocationSpans(functionName: string, attributes: (i: number) => Attributes) {
  const spans = new Map<number, Span>();
  const spanOf = (i: number) => {
    let s = spans.get(i);
    if (!s) {
      s = tracer.startSpan(`invoke ${functionName}`, { kind: SpanKind.CLIENT, attributes: { 'faas.invoked_name': functionName, ...attributes(i) } });
      spans.set(i, s);
    }
    return s;
  };
  return {
    fields: (i: number): TraceFields => traceFields(spanOf(i)),
    wrap: <R>(run: (i: number) => Promise<R>) => async (i: number): Promise<R> => {
      const span = spanOf(i);
      try {
        return await context.with(trace.setSpan(context.active(), span), () => run(i));
      } catch (e) {
        fail(span, e);
        throw e;
      } finally {
        span.end();
      }
    },
  };
}
