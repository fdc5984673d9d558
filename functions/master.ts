// FC entry point: runs one request's partition plan, starting a chain of workers at a time.
import { loadConfig } from '../src/config.ts';
import type { FunctionContext } from '../src/invoke/invoker.ts';
import { ArtifactCache } from '../src/serve/artifacts.ts';
import { makeExchange, makeInvoker, makeNotifier, makeStore, parseEvent } from '../src/serve/deps.ts';
import { runMasterTask } from '../src/serve/master.ts';
import { masterTaskSchema } from '../src/serve/protocol.ts';
import { INVOKE_RETRY } from '../src/invoke/retry.ts';
import { startFunctionTelemetry } from '../src/telemetry/function.ts';

const config = loadConfig();
const store = makeStore(config);
const cache = new ArtifactCache(store, { threads: 0, maxSessions: 16 });
const exchange = makeExchange(config, store);
const telemetry = startFunctionTelemetry(config, 'master');

export async function handler(event: Buffer, context: FunctionContext): Promise<string> {
  const task = parseEvent(masterTaskSchema, event, 'master');
  return JSON.stringify(await telemetry.invocation(task, context, { 'plan.key': task.planKey, batch: task.batch }, () => runMasterTask(task, {
    store, cache, invoker: makeInvoker(config, context), workerFunction: config.functions.worker.name, concurrency: config.workerConcurrency, notifier: makeNotifier(store), exchange,
    retry: { ...INVOKE_RETRY, retries: config.invokeRetries },
  })));
}
