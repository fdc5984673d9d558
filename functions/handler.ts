// FC entry point: the HTTP handler (FC 3.0 HTTP trigger event in, HTTP result out; FC 2.0's trigger via httpHandler).
import { loadConfig } from '../src/config.ts';
import type { FunctionContext } from '../src/invoke/invoker.ts';
import { fcHttpEventPayload, errorResult, eventHeader, fc2HttpHandler, stringifyWithBody } from '../src/http/fc-event.ts';
import { route } from '../src/http/routes.ts';
import { ApiKeys } from '../src/http/access.ts';
import { Admission } from '../src/http/admission.ts';
import { DistributedBackend } from '../src/serve/backend.ts';
import { functionResources, makeExchange, makeInvoker, makeStore, parseEvent } from '../src/serve/deps.ts';
import { PlanCache } from '../src/serve/plans.ts';
import { ShapePlans } from '../src/serve/shape-plans.ts';
import { modelEntries, readRegistry } from '../src/serve/registry.ts';
import { setHttpStatus, startFunctionTelemetry } from '../src/telemetry/function.ts';
import { requestMetrics, ServeMetrics } from '../src/telemetry/metrics.ts';

const config = loadConfig();
const store = makeStore(config);
const plans = new PlanCache(store);
// Models without a committed plan are planned here, per input shape, on first use (src/serve/shape-plans.ts).
const shapePlans = new ShapePlans(store, { log: (e) => telemetry.log.info({ model: e.model, shape: e.shape, planKey: e.planKey, planMs: Math.round(e.planMs), guardMs: Math.round(e.guard.ms), guardShape: e.guard.shape, tiles: e.tiles, choice: e.label }, 'plan made and checked') });
const exchange = makeExchange(config, store);
let models: ReturnType<typeof modelEntries> | undefined;
// Per instance: FC may send one instance several requests at once (instanceConcurrency).
const access = new ApiKeys(config.apiKeys);
const admission = new Admission({ maxInflight: config.maxInflight, maxQueue: config.maxQueue });
const telemetry = startFunctionTelemetry(config, 'handler');
// This instance's requests: GET /metrics through the trigger reads the instance that serves it.
const metrics = new ServeMetrics();

export async function handler(event: Buffer, context: FunctionContext): Promise<string> {
  try {
    const ev = parseEvent(fcHttpEventPayload, event, 'HTTP');
    const requestId = ev.requestContext.requestId;
    const method = ev.requestContext.http.method.toUpperCase();
    // The client's W3C trace context joins this request to its trace.
    const carrier = { traceparent: eventHeader(ev, 'traceparent'), tracestate: eventHeader(ev, 'tracestate') };
    const spanName = `${method} ${ev.rawPath.replace(/^\/v2\/models\/[^/]+/, '/v2/models/{name}')}`;
    const attributes = { 'faas.trigger': 'http', 'http.request.method': method, 'url.path': ev.rawPath, 'faas.invocation_id': context.requestId, 'request.id': requestId };
    return await telemetry.tracing.invocation(spanName, carrier, attributes, async () => {
      models ??= modelEntries(await readRegistry(store));
      const backend = new DistributedBackend({
        store, plans, invoker: makeInvoker(config, context), resources: functionResources(config),
        maxWorkers: config.functions.worker.maxInstances, timeoutMs: config.functionTimeoutMs, exchange,
        handlerFunction: config.functions.handler.name, masterFunction: config.functions.master.name, workerFunction: config.functions.worker.name,
        shapePlans,
      });
      const result = await route(ev, {
        models, backend, topK: config.topK, access, admission, requestTimeoutMs: config.requestTimeoutMs,
        metrics: requestMetrics(metrics, telemetry.log, requestId),
        onError: (err) => telemetry.log.error({ err, requestId, method, path: ev.rawPath }, 'request failed'),
      });
      setHttpStatus(result.statusCode);
      return stringifyWithBody(result);
    });
  } catch (e) {
    telemetry.log.error({ err: e }, 'unusable HTTP event');
    return JSON.stringify(errorResult(e));
  }
}

/** FC 2.0's HTTP trigger calls `(req, resp, context)`: adapted to the event handler above (deploy/s-fc2.yaml). */
export const httpHandler = fc2HttpHandler(handler);
