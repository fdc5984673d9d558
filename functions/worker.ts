// FC entry point: one tile of every stage of a chain.
import { loadConfig } from '../src/config.ts';
import type { FunctionContext } from '../src/invoke/invoker.ts';
import { ArtifactCache } from '../src/serve/artifacts.ts';
import { makeExchange, makeNotifier, makeStore, parseEvent } from '../src/serve/deps.ts';
import { runWorkerTask } from '../src/serve/worker.ts';
import { workerTaskSchema } from '../src/serve/protocol.ts';
import { startFunctionTelemetry } from '../src/telemetry/function.ts';

const config = loadConfig();
const store = makeStore(config);
const notifier = makeNotifier(store);
// Per instance: the exchange's connections (EXCHANGE=redis) are reused by warm invocations.
const exchange = makeExchange(config, store);
const telemetry = startFunctionTelemetry(config, 'worker');
// Per instance: plans and ORT sessions survive across warm invocations.
const cache = new ArtifactCache(store, { threads: config.workerThreads, maxSessions: config.workerMaxSessions, memArena: config.workerMemArena });

export async function handler(event: Buffer, context: FunctionContext): Promise<string> {
  const task = parseEvent(workerTaskSchema, event, 'worker');
  return JSON.stringify(await telemetry.invocation(task, context, { 'chain.id': task.chain, worker: task.worker }, () => runWorkerTask(task, { store, cache, notifier, exchange })));
}
