/**
 * Structured JSON logs (pino) for the functions and the gateway. Every line carries the
 * function's name and, inside a traced invocation, the active trace and span ids, so SLS can
 * join logs to traces. Callers add `requestId`; nobody logs bodies, headers or API keys.
 */
import { trace } from '@opentelemetry/api';
import { pino, type Logger, type LoggerOptions } from 'pino';
import type { TelemetryConfig } from '../config.ts';

export type { Logger } from 'pino';

/** `destination`: where lines go (default: stdout, which FC ships to SLS when logging is configured). */
export function makeLogger(opts: { name: string; level?: TelemetryConfig['logLevel']; destination?: NodeJS.WritableStream }): Logger {
  const options: LoggerOptions = {
    name: opts.name,
    level: opts.level ?? 'info',
    base: { pid: process.pid },
    // The trace the line belongs to, read from the active OpenTelemetry context at log time.
    mixin() {
      const sc = trace.getActiveSpan()?.spanContext();
      return sc ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
    },
    // Errors carrying request details (ServeError, FunctionError) keep them; no header or body fields exist to leak.
    serializers: { err: pino.stdSerializers.err },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
