import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { functionEnv, type Config } from '../config.ts';
import { ProcessPoolInvoker } from '../invoke/process-pool.ts';
import { sharedLocalBundles } from '../deploy/local-bundles.ts';
import { FUNCTION_ENTRIES, type FunctionKey } from '../deploy/package.ts';
import { startGateway } from '../http/gateway.ts';
import { gatewayMetrics, ServeMetrics } from '../telemetry/metrics.ts';
import { makeLogger } from '../telemetry/log.ts';
import { ApiKeys } from '../http/access.ts';
import { Admission } from '../http/admission.ts';
import { encodeFcPayload, parseFcHttpResult } from '../http/fc-event.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { publishServedModels } from '../serve/model-sources.ts';
import { functionResources, makeExchange, makeStore } from '../serve/deps.ts';
import { DistributedBackend, runRequest, type RequestResult } from '../serve/backend.ts';
import { PlanCache } from '../serve/plans.ts';
import { ShapePlans } from '../serve/shape-plans.ts';
import type { Tensor } from '../runtime/ort.ts';
import type { Registry } from '../serve/registry.ts';
import { ServeError } from '../serve/errors.ts';
import { emulatorCredentials, staticCredentials } from '../cloud/credentials.ts';
import { startOssServer, type OssServer } from '../emulators/oss-server.ts';
import { startFcServer, type FcServer } from '../emulators/fc-server.ts';
import { FcInvoker } from '../invoke/fc-invoker.ts';
import { Fc2Invoker } from '../invoke/fc2-invoker.ts';
import type { Invoker } from '../invoke/invoker.ts';
import type { LocalFunctionConfig } from '../invoke/process-pool.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Publishes every served model (committed plans, checked by the guard; models planned per
 * shape; src/serve/model-sources.ts) and a registry naming them. Fails, naming the model and
 * field, before anything is served.
 */
export async function publishModel(config: Config, store: ObjectStore, planModelBytes?: Uint8Array): Promise<Registry> {
  return (await publishServedModels(config, store, planModelBytes)).registry;
}

export interface LocalStack {
  url: string;
  /** What the gateway uses to reach the handler (the pool, or FC's API on the emulator). */
  invoker: Invoker;
  /** The pool running the function processes (inside the FC emulator in INVOKER=fc mode): stats. */
  pool: ProcessPoolInvoker;
  /** INVOKER=fc|fc2: the loopback FC server (its request log, injected faults). */
  fcServer?: FcServer;
  /** STORE=oss without OSS_ENDPOINT: the loopback OSS server (its stats, injected faults). */
  ossServer?: OssServer;
  registry: Registry;
  store: ObjectStore;
  /** The handler's side of one request without HTTP (large tensors, calibration): see runRequest. */
  request(planKey: string, input: Tensor, requestId: string): Promise<RequestResult>;
  /** The handler's backend, for direct calls with a cost report. */
  backend: DistributedBackend;
  close(): Promise<void>;
}

/**
 * Settings that let `STORE=oss` / `INVOKER=fc` run on one machine: with no OSS_ENDPOINT or
 * INVOKE_ENDPOINT, the stack starts loopback OSS and FC servers that verify the SDKs'
 * signatures, so the production adapters carry every byte and every invocation.
 */
export function withEmulatorDefaults(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const out = { ...env };
  if (out.STORE === 'oss' && !out.OSS_ENDPOINT) out.OSS_BUCKET ??= 'fc-tiled-cnn-local';
  if ((out.STORE === 'oss' && !out.OSS_ENDPOINT) || ((out.INVOKER === 'fc' || out.INVOKER === 'fc2') && !out.INVOKE_ENDPOINT)) {
    out.ALIBABA_REGION ??= 'cn-hangzhou';
    out.ALIBABA_ACCOUNT_ID ??= '1234567890123456';
  }
  return out;
}

/**
 * The embedded default: the filesystem store, every function instance a separate Node process,
 * and a gateway that plays FC's HTTP trigger in front of the handler. With STORE=oss and/or
 * INVOKER=fc and no endpoints, loopback OSS/FC servers stand in for the cloud.
 */
export async function startLocalStack(config: Config, env: Record<string, string> = {}): Promise<LocalStack> {
  const closers: (() => Promise<void>)[] = [];
  const fnEnv: Record<string, string> = { ...functionEnv(config), ...env, DATA_DIR: resolve(config.dataDir), STORE: config.store, INVOKER: config.invoker };
  // One STS-style credential plays the functions' role for both emulators.
  const role = emulatorCredentials();
  let cfg = config;
  let ossServer: OssServer | undefined;
  if (config.store === 'oss') {
    const o = config.oss!;
    if (!o.endpoint) {
      // A bad OSS_EMULATOR_FAULTS spec fails here, before anything starts, naming the variable.
      const oss = await startOssServer({ bucket: o.bucket, credentials: [role], faults: o.emulatorFaults });
      ossServer = oss;
      closers.push(() => oss.close());
      cfg = { ...cfg, oss: { ...o, endpoint: oss.endpoint } };
      Object.assign(fnEnv, { OSS_ENDPOINT: oss.endpoint, OSS_BUCKET: o.bucket, ALIBABA_CLOUD_ACCESS_KEY_ID: role.accessKeyId, ALIBABA_CLOUD_ACCESS_KEY_SECRET: role.accessKeySecret, ALIBABA_CLOUD_SECURITY_TOKEN: role.securityToken });
    } else {
      Object.assign(fnEnv, { OSS_ENDPOINT: o.endpoint, OSS_BUCKET: o.bucket });
    }
    if (o.region) fnEnv.ALIBABA_REGION = o.region;
  }
  const store = makeStore(cfg, config.store === 'oss' && !config.oss!.endpoint ? staticCredentials(role) : undefined);
  const registry = await publishModel(cfg, store);
  // The handler side of in-process requests (`request`, `backend`) uses the functions' exchange.
  const exchange = makeExchange(cfg, store);
  closers.push(() => exchange.close());
  const f = config.functions;
  // Instances run the functions bundled as deployed (no TypeScript loader at start-up), or the sources.
  const bundles = config.localBundles ? await sharedLocalBundles(root) : undefined;
  const entry = (k: FunctionKey) => (bundles ? { entry: bundles.entries[k], bundled: true } : { entry: join(root, FUNCTION_ENTRIES[k]) });
  const functions = (extra: Record<string, string>): Record<string, LocalFunctionConfig> => ({
    [f.handler.name]: { ...entry('handler'), maxInstances: f.handler.maxInstances, timeoutMs: config.functionTimeoutMs, env: { ...fnEnv, ...extra } },
    [f.master.name]: { ...entry('master'), maxInstances: f.master.maxInstances, timeoutMs: config.functionTimeoutMs, env: { ...fnEnv, ...extra } },
    [f.worker.name]: { ...entry('worker'), maxInstances: f.worker.maxInstances, timeoutMs: config.functionTimeoutMs, memoryLimitMb: f.worker.memoryMb, env: { ...fnEnv, ...extra } },
  });
  let invoker: Invoker;
  let pool: ProcessPoolInvoker;
  let fcServer: FcServer | undefined;
  if (config.invoker === 'fc' || config.invoker === 'fc2') {
    const c = config.fc!;
    if (c.endpoint) throw new ServeError('INVOKE_ENDPOINT is set: the local stack only runs functions itself against its own FC emulator; unset it');
    // The emulator adds FC's environment (its endpoint, the role's credentials) to every function;
    // it serves both API generations, and in fc2 mode each function only under its service.
    const fc2Services = c.services && { [f.handler.name]: c.services.handler, [f.master.name]: c.services.master, [f.worker.name]: c.services.worker };
    const server = await startFcServer({
      accountId: c.accountId, region: c.region, credentials: [role], functions: functions({}), faults: c.emulatorFaults,
      ...(config.invoker === 'fc2' ? { functionInvoker: 'fc2' as const, fc2Services } : {}),
    });
    closers.push(() => server.close());
    fcServer = server;
    pool = server.pool;
    invoker = config.invoker === 'fc2'
      ? new Fc2Invoker({ accountId: c.accountId, region: c.region, endpoint: server.endpoint, credentials: staticCredentials(role), timeoutMs: config.functionTimeoutMs, services: fc2Services })
      : new FcInvoker({ accountId: c.accountId, region: c.region, endpoint: server.endpoint, credentials: staticCredentials(role), timeoutMs: config.functionTimeoutMs });
  } else {
    const local = new ProcessPoolInvoker({ functions: functions({}) });
    closers.push(() => local.close());
    invoker = pool = local;
  }
  const gatewayLog = makeLogger({ name: 'gateway', level: config.telemetry.logLevel });
  const gateway = await startGateway({
    host: config.host, port: config.port, maxBodyBytes: config.maxBodyBytes,
    // The trigger's side of access and admission: the handler instances run one request each
    // here, so the bound on concurrent requests is applied in front of them.
    access: new ApiKeys(config.apiKeys), requestTimeoutMs: config.requestTimeoutMs,
    admission: new Admission({ maxInflight: config.maxInflight, maxQueue: config.maxQueue }),
    // GET /metrics here: the trigger sees every request, whichever handler instance served it.
    metrics: gatewayMetrics(new ServeMetrics({ knownModel: (m) => registry.models.some((x) => x.name === m) })),
    onError: (err, event) => gatewayLog.error({ err, requestId: event.requestContext.requestId, method: event.requestContext.http.method, path: event.rawPath }, 'request failed'),
    invoke: async (event) => {
      const res = await invoker.invoke(f.handler.name, encodeFcPayload(event));
      return parseFcHttpResult(res.payload);
    },
  });
  const plans = new PlanCache(store);
  const requestDeps = { store, invoker, plans, masterFunction: f.master.name, maxWorkers: f.worker.maxInstances, timeoutMs: config.functionTimeoutMs, exchange };
  const backend = new DistributedBackend({ ...requestDeps, handlerFunction: f.handler.name, workerFunction: f.worker.name, resources: functionResources(config), shapePlans: new ShapePlans(store) });
  return {
    url: gateway.url, invoker, pool, registry, store, backend, ...(fcServer ? { fcServer } : {}), ...(ossServer ? { ossServer } : {}),
    request: (planKey, input, requestId) => runRequest(requestDeps, planKey, input, requestId),
    async close() {
      await gateway.close();
      for (const c of closers.reverse()) await c().catch(() => undefined);
    },
  };
}
