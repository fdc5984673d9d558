import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.ts';
import { ensureModel } from '../models/index.ts';
import { parsePlan } from '../planner/materialize.ts';
import { ProcessPoolInvoker } from '../invoke/process-pool.ts';
import { startGateway } from '../http/gateway.ts';
import { fcHttpResultSchema } from '../http/fc-event.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { publishPlan } from './artifacts.ts';
import { makeStore } from './deps.ts';
import { REGISTRY_KEY, type Registry } from './registry.ts';
import { ServeError } from './errors.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Publishes every configured plan and a registry naming the served models. */
export async function publishModel(config: Config, store: ObjectStore, modelBytes: Uint8Array): Promise<Registry> {
  const models: Registry['models'] = [];
  for (const file of config.plans) {
    const plan = parsePlan(JSON.parse(await readFile(file, 'utf8')), file);
    const name = basename(file).replace(/\.json$/, '');
    const { planKey } = await publishPlan(store, modelBytes, plan, name);
    const [, c, h, w] = plan.input.shape;
    const entry = {
      planKey, inputName: plan.input.name, inputShape: [-1, c, h, w],
      outputName: plan.outputs[0].name, outputShape: [-1, ...plan.outputs[0].shape.slice(1)],
      preprocessing: c === 3 ? { width: w, height: h } : undefined,
    };
    models.push({ name, ...entry });
    if (name === config.defaultPlan) models.unshift({ name: config.model, ...entry });
  }
  if (!models.some((m) => m.name === config.model)) {
    throw new ServeError(`DEFAULT_PLAN ${config.defaultPlan} is not among PLANS (${config.plans.join(', ')})`);
  }
  const registry: Registry = { version: 1, models };
  await store.put(REGISTRY_KEY, Buffer.from(JSON.stringify(registry)));
  return registry;
}

export interface LocalStack {
  url: string;
  pool: ProcessPoolInvoker;
  registry: Registry;
  store: ObjectStore;
  close(): Promise<void>;
}

/**
 * The embedded default: the filesystem store, every function instance a separate Node process,
 * and a gateway that plays FC's HTTP trigger in front of the handler.
 */
export async function startLocalStack(config: Config, env: Record<string, string> = {}): Promise<LocalStack> {
  const modelPath = await ensureModel(config.model, config.modelPath);
  const store = makeStore(config);
  const registry = await publishModel(config, store, await readFile(modelPath));
  const f = config.functions;
  const fnEnv = { ...env, DATA_DIR: resolve(config.dataDir) };
  const pool = new ProcessPoolInvoker({
    functions: {
      [f.handler.name]: { entry: join(root, 'functions/handler.ts'), maxInstances: f.handler.maxInstances, timeoutMs: config.functionTimeoutMs, env: fnEnv },
      [f.master.name]: { entry: join(root, 'functions/master.ts'), maxInstances: f.master.maxInstances, timeoutMs: config.functionTimeoutMs, env: fnEnv },
      [f.worker.name]: { entry: join(root, 'functions/worker.ts'), maxInstances: f.worker.maxInstances, timeoutMs: config.functionTimeoutMs, memoryLimitMb: f.worker.memoryMb, env: fnEnv },
    },
  });
  const gateway = await startGateway({
    host: config.host, port: config.port, maxBodyBytes: config.maxBodyBytes,
    invoke: async (event) => {
      const res = await pool.invoke(f.handler.name, Buffer.from(JSON.stringify(event)));
      return fcHttpResultSchema.parse(JSON.parse(res.payload.toString('utf8')));
    },
  });
  return {
    url: gateway.url, pool, registry, store,
    async close() { await gateway.close(); await pool.close(); },
  };
}
