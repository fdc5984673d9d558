/**
 * Telemetry of one function instance, started by its entry point (functions/*.ts): the tracing
 * SDK (when OTEL_EXPORTER_OTLP_ENDPOINT is set) and the JSON logger.
 */
import { trace, type Attributes } from '@opentelemetry/api';
import type { Config } from '../config.ts';
import type { FunctionContext } from '../invoke/invoker.ts';
import { makeLogger, type Logger } from './log.ts';
import { startTracing, type TraceCarrier, type Tracing } from './tracing.ts';

export interface FunctionTelemetry {
  tracing: Tracing;
  log: Logger;
  /**
   * One invocation of a master or worker: a SERVER span under the task's trace context, a log
   * line if it fails (with the request id and trace id), spans flushed before it returns.
   */
  invocation<T>(task: TraceCarrier & { requestId: string }, context: FunctionContext, attributes: Attributes, fn: () => Promise<T>): Promise<T>;
}

export function startFunctionTelemetry(config: Config, fn: keyof Config['functions']): FunctionTelemetry {
  const name = config.functions[fn].name;
  const tracing = startTracing(config.telemetry, { functionName: name, region: config.fc?.region ?? process.env.FC_REGION });
  const log = makeLogger({ name, level: config.telemetry.logLevel });
  return {
    tracing, log,
    invocation(task, context, attributes, run) {
      const t0 = performance.now();
      return tracing.invocation(name, task, { 'faas.invocation_id': context.requestId, 'request.id': task.requestId, ...attributes }, async () => {
        try {
          const out = await run();
          log.debug({ requestId: task.requestId, ms: Math.round(performance.now() - t0), ...attributes }, 'invocation done');
          return out;
        } catch (err) {
          log.error({ err, requestId: task.requestId, ...attributes }, 'invocation failed');
          throw err;
        }
      });
    },
  };
}

/** Marks the active span with the HTTP answer (the handler's SERVER span). */
export function setHttpStatus(status: number): void {
  const span = trace.getActiveSpan();
  if (!span) return;
  span.setAttribute('http.response.status_code', status);
  if (status >= 500) span.setStatus({ code: 2, message: `HTTP ${status}` });
}
