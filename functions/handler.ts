// FC entry point: the HTTP handler (FC 3.0 HTTP trigger event in, HTTP result out).
import { loadConfig } from '../src/config.ts';
import type { FunctionContext } from '../src/invoke/invoker.ts';
import { fcHttpEventSchema, errorResult, stringifyWithBody } from '../src/http/fc-event.ts';
import { route } from '../src/http/routes.ts';
import { DistributedBackend } from '../src/serve/backend.ts';
import { functionResources, makeInvoker, makeStore, parseEvent } from '../src/serve/deps.ts';
import { PlanCache } from '../src/serve/plans.ts';
import { modelEntries, readRegistry } from '../src/serve/registry.ts';

const config = loadConfig();
const store = makeStore(config);
const plans = new PlanCache(store);
let models: ReturnType<typeof modelEntries> | undefined;

export async function handler(event: Buffer, context: FunctionContext): Promise<string> {
  try {
    const ev = parseEvent(fcHttpEventSchema, event, 'HTTP');
    models ??= modelEntries(await readRegistry(store));
    const backend = new DistributedBackend({
      store, plans, invoker: makeInvoker(config, context), resources: functionResources(config),
      maxWorkers: config.functions.worker.maxInstances, timeoutMs: config.functionTimeoutMs,
      handlerFunction: config.functions.handler.name, masterFunction: config.functions.master.name, workerFunction: config.functions.worker.name,
    });
    return stringifyWithBody(await route(ev, { models, backend, topK: config.topK }));
  } catch (e) {
    return JSON.stringify(errorResult(e));
  }
}
