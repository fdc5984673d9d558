import { z } from 'zod';
import { functionResourcesSchema } from './billing/pricing.ts';
import { describeIssues } from './zod-issues.ts';

/**
 * The one configuration of the stack, from environment variables (and CLI flags mapped onto
 * them). Every function process parses the same schema; an error names the variable.
 */
const int = (dflt: number, min = 0) => z.coerce.number().int().min(min).default(dflt);

/** FC 2.0 service names: letters, digits, _ and -, not starting with a digit or -, up to 128 characters. */
const fc2Service = z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,127}$/, 'an FC 2.0 service name (letters, digits, _ and -; up to 128)');

const functionSchema = (name: string, prefix: string, d: { maxInstances: number; vcpu: number; memoryMb: number }) => z.object({
  [`${prefix}_FUNCTION`]: z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/).default(name),
  [`${prefix}_MAX_INSTANCES`]: int(d.maxInstances, 1),
  [`${prefix}_VCPU`]: z.coerce.number().default(d.vcpu),
  [`${prefix}_MEMORY_MB`]: int(d.memoryMb, 128),
  /** INVOKER=fc2: the FC 2.0 service the function lives in (default FC2_SERVICE). */
  [`${prefix}_SERVICE`]: fc2Service.optional(),
});

// exporter-trace-otlp-http sends JSON: a collector expecting protobuf or gRPC would refuse it.
const httpUrl = z.url({ protocol: /^https?$/, message: 'an http:// or https:// URL' });
const otlpProtocol = z.enum(['http/json'], { message: 'only http/json is supported (OTLP/HTTP with JSON bodies)' }).optional();

export const envSchema = z.object({
  PORT: int(9000).pipe(z.number().max(65535)),
  HOST: z.string().default('127.0.0.1'),
  DATA_DIR: z.string().min(1).default('data'),
  STORE: z.enum(['fs', 'oss']).default('fs'),
  INVOKER: z.enum(['local', 'fc', 'fc2']).default('local'),
  /** INVOKER=fc2: the FC 2.0 service of the three functions, unless <FN>_SERVICE says otherwise. */
  FC2_SERVICE: fc2Service.optional(),
  /** Set by FC 2.0 inside a function: its own service (the default when FC2_SERVICE is unset). */
  FC_SERVICE_NAME: z.string().optional(),
  /**
   * Random faults of the loopback FC server the stack starts for INVOKER=fc|fc2 (no
   * INVOKE_ENDPOINT), e.g. `throttle:0.05,crash:0.01` (parseFcFaults in src/emulators/fc-faults.ts).
   */
  FC_EMULATOR_FAULTS: z.string().optional(),
  OSS_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, 'an OSS bucket name (3-63 chars of a-z, 0-9, -)').optional(),
  /** Region for OSS and FC; inside FC it defaults to the runtime's FC_REGION. */
  ALIBABA_REGION: z.string().optional(),
  ALIBABA_ACCOUNT_ID: z.string().optional(),
  OSS_ENDPOINT: z.string().url().optional(),
  OSS_INTERNAL: z.enum(['true', 'false']).optional(),
  /**
   * Random faults of the loopback OSS server the stack starts when no OSS_ENDPOINT is set, e.g.
   * `error:0.05,truncate:0.01` (parseFaultSpec in src/emulators/oss-faults.ts); ignored otherwise.
   */
  OSS_EMULATOR_FAULTS: z.string().optional(),
  INVOKE_ENDPOINT: z.string().url().optional(),
  INVOKE_INTERNAL: z.enum(['true', 'false']).optional(),
  FC_REGION: z.string().optional(),
  FC_ACCOUNT_ID: z.string().optional(),
  /**
   * Models to serve, comma-separated: ONNX files (each served under its base name without
   * `.onnx`, planned per input shape), the generated networks resnet18, vgg16, mobilenetv2, or
   * ppocr-det (PP-OCRv4 text detection). `npm start` serves resnet18,ppocr-det.
   */
  MODEL: z.string().regex(/^\s*[^,\s][^,]*(,\s*[^,\s][^,]*)*$/, 'a comma-separated list of .onnx files or generated model names').default('resnet18'),
  /** A model repository: DIR/<name>/[<version>/]model.onnx, each with an optional config.json (src/serve/model-config.ts). */
  MODEL_REPOSITORY: z.string().min(1).optional(),
  MODEL_PATH: z.string().optional(),
  PLANS: z.string().optional(),
  DEFAULT_PLAN: z.string().default('resnet18-224-4x4'),
  // 24 MiB: its base64 form in the HTTP event still fits FC's 32 MB synchronous invoke limit.
  MAX_BODY_BYTES: int(24 * 1024 * 1024, 1024),
  FUNCTION_TIMEOUT_MS: int(120_000, 1000),
  WORKER_CONCURRENCY: int(16, 1),
  WORKER_THREADS: int(1, 0),
  WORKER_MAX_SESSIONS: int(32, 1),
  WORKER_MEM_ARENA: z.enum(['true', 'false']).default('false'),
  /** Worker invocations that crash, time out or are throttled are sent again up to this many times (src/invoke/retry.ts). */
  INVOKE_RETRIES: int(5, 0),
  /** The local stack runs esbuild bundles of the functions, as deployed, instead of TypeScript under tsx (faster instance starts). */
  LOCAL_BUNDLES: z.enum(['true', 'false']).default('true'),
  TOP_K: int(5, 0),
  /** Comma-separated API keys; when set, every request but health needs one (src/http/access.ts). */
  API_KEYS: z.string().optional(),
  /** Inference requests one handler instance runs at once, and how many more may wait (src/http/admission.ts). */
  MAX_INFLIGHT: int(4, 1),
  MAX_QUEUE: int(16, 0),
  /** A request's deadline, ms (a client may shorten it with x-request-timeout-ms); default FUNCTION_TIMEOUT_MS. */
  REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).optional(),
  /** OpenTelemetry traces over OTLP/HTTP (src/telemetry/tracing.ts): off unless an endpoint is set. */
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol,
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: otlpProtocol,
  /** `name=value,...` sent with every export (SLS and ARMS authenticate this way); never logged. */
  OTEL_EXPORTER_OTLP_HEADERS: z.string().optional(),
  OTEL_EXPORTER_OTLP_TIMEOUT: int(10_000, 1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Where halos, partials and tiles move: the object store, or Redis/Tair at REDIS_URL (src/exchange/redis-exchange.ts). */
  EXCHANGE: z.enum(['store', 'redis']).default('store'),
  REDIS_URL: z.string().regex(/^rediss?:\/\/\S+$/, 'a redis:// or rediss:// URL').optional(),
})
  .and(functionSchema('handler', 'HANDLER', { maxInstances: 4, vcpu: 0.5, memoryMb: 1024 }))
  .and(functionSchema('master', 'MASTER', { maxInstances: 2, vcpu: 1.5, memoryMb: 4096 }))
  .and(functionSchema('worker', 'WORKER', { maxInstances: 4, vcpu: 1, memoryMb: 2048 }));

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface FunctionConfig { name: string; maxInstances: number; vcpu: number; memoryMb: number }

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  store: 'fs' | 'oss';
  invoker: 'local' | 'fc' | 'fc2';
  oss?: { bucket: string; region?: string; endpoint?: string; internal: boolean; emulatorFaults?: string };
  fc?: {
    accountId: string; region: string; endpoint?: string; internal: boolean;
    /** INVOKER=fc2: each function's FC 2.0 service. */
    services?: { handler: string; master: string; worker: string };
    /** FC_EMULATOR_FAULTS, for the loopback FC server. */
    emulatorFaults?: string;
  };
  /** The name DEFAULT_PLAN is served under: resnet18 if MODEL has it, else the first generated network in MODEL (or MODEL's first entry). */
  model: string;
  /** MODEL's entries, in order. */
  models: string[];
  modelRepository?: string;
  /** The model the committed PLANS are for: MODEL_PATH, or the first generated network's file. */
  modelPath?: string;
  plans: string[];
  /** PLANS was set (not the default committed plans). */
  plansGiven: boolean;
  defaultPlan: string;
  maxBodyBytes: number;
  functionTimeoutMs: number;
  workerConcurrency: number;
  workerThreads: number;
  workerMaxSessions: number;
  workerMemArena: boolean;
  invokeRetries: number;
  localBundles: boolean;
  topK: number;
  exchange: 'store' | 'redis';
  /** Set when exchange is redis. May hold a password: never log it. */
  redisUrl?: string;
  /** Empty: no access control. Never log these. */
  apiKeys: string[];
  maxInflight: number;
  maxQueue: number;
  /** At most functionTimeoutMs. */
  requestTimeoutMs: number;
  functions: { handler: FunctionConfig; master: FunctionConfig; worker: FunctionConfig };
  telemetry: TelemetryConfig;
}

/** Traces and logs (src/telemetry/): the standard OTEL_EXPORTER_OTLP_* variables, and LOG_LEVEL. */
export interface TelemetryConfig {
  otlpEndpoint?: string;
  otlpTracesEndpoint?: string;
  /** Raw OTEL_EXPORTER_OTLP_HEADERS: credentials, never logged. */
  otlpHeaders?: string;
  otlpTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/**
 * The settings function processes read from their environment, as variables: the local stack
 * passes them to every instance so handler, master and workers agree with the stack that
 * started them (chain widths depend on WORKER_MAX_INSTANCES, deadlines on FUNCTION_TIMEOUT_MS).
 */
export function functionEnv(c: Config): Record<string, string> {
  const env: Record<string, string> = {
    MAX_BODY_BYTES: String(c.maxBodyBytes), FUNCTION_TIMEOUT_MS: String(c.functionTimeoutMs), WORKER_CONCURRENCY: String(c.workerConcurrency),
    WORKER_THREADS: String(c.workerThreads), WORKER_MAX_SESSIONS: String(c.workerMaxSessions), WORKER_MEM_ARENA: String(c.workerMemArena), INVOKE_RETRIES: String(c.invokeRetries), TOP_K: String(c.topK),
    EXCHANGE: c.exchange, ...(c.redisUrl ? { REDIS_URL: c.redisUrl } : {}),
    MAX_INFLIGHT: String(c.maxInflight), MAX_QUEUE: String(c.maxQueue), REQUEST_TIMEOUT_MS: String(c.requestTimeoutMs),
    ...(c.apiKeys.length ? { API_KEYS: c.apiKeys.join(',') } : {}),
    OTEL_EXPORTER_OTLP_TIMEOUT: String(c.telemetry.otlpTimeoutMs), LOG_LEVEL: c.telemetry.logLevel,
    ...(c.telemetry.otlpEndpoint ? { OTEL_EXPORTER_OTLP_ENDPOINT: c.telemetry.otlpEndpoint } : {}),
    ...(c.telemetry.otlpTracesEndpoint ? { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: c.telemetry.otlpTracesEndpoint } : {}),
    ...(c.telemetry.otlpHeaders ? { OTEL_EXPORTER_OTLP_HEADERS: c.telemetry.otlpHeaders } : {}),
  };
  for (const [prefix, f] of [['HANDLER', c.functions.handler], ['MASTER', c.functions.master], ['WORKER', c.functions.worker]] as const) {
    Object.assign(env, { [`${prefix}_FUNCTION`]: f.name, [`${prefix}_MAX_INSTANCES`]: String(f.maxInstances), [`${prefix}_VCPU`]: String(f.vcpu), [`${prefix}_MEMORY_MB`]: String(f.memoryMb) });
  }
  const services = c.fc?.services;
  if (services) Object.assign(env, { HANDLER_SERVICE: services.handler, MASTER_SERVICE: services.master, WORKER_SERVICE: services.worker });
  return env;
}

/**
 * API_KEYS: comma-separated, each 16-256 visible ASCII characters. The message names the
 * position of a bad key, never the key.
 */
export function parseApiKeys(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return [];
  const keys = raw.split(',').map((k) => k.trim());
  keys.forEach((k, i) => {
    if (!/^[\x21-\x7e]{16,256}$/.test(k) || k.includes(',')) {
      throw new ConfigError(`invalid configuration: API_KEYS: key ${i + 1} of ${keys.length} must be 16-256 visible ASCII characters without commas or spaces`);
    }
  });
  return [...new Set(keys)];
}

const DEFAULT_PLANS = 'plans/resnet18-224-2x2.json,plans/resnet18-224-4x4.json';
const GENERATED = ['resnet18', 'vgg16', 'mobilenetv2'];

/** MODEL's entries; the committed plans' model (MODEL_PATH, or the first generated network). */
function modelSettings(raw: string, modelPath: string | undefined, repo: string | undefined): Pick<Config, 'model' | 'models' | 'modelPath' | 'modelRepository'> {
  const models = raw.split(',').map((s) => s.trim()).filter(Boolean);
  // The committed plans are ResNet-18's: it takes them when it is served at all.
  const arch = models.includes('resnet18') ? 'resnet18' : models.find((m) => GENERATED.includes(m));
  const first = models[0].replace(/^.*[\\/]/, '').replace(/\.onnx$/i, '');
  return { models, model: arch ?? first, modelPath: modelPath ?? (arch ? `models/${arch}.onnx` : undefined), ...(repo ? { modelRepository: repo } : {}) };
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const r = envSchema.safeParse(env);
  if (!r.success) {
    throw new ConfigError(`invalid configuration: ${describeIssues(r.error.issues, { root: '(env)' })}`);
  }
  const e = r.data as Record<string, never> & z.infer<typeof envSchema>;
  const fn = (prefix: string): FunctionConfig => {
    const f = { name: e[`${prefix}_FUNCTION`] as string, maxInstances: e[`${prefix}_MAX_INSTANCES`] as number, vcpu: e[`${prefix}_VCPU`] as number, memoryMb: e[`${prefix}_MEMORY_MB`] as number };
    const res = functionResourcesSchema.safeParse({ vcpu: f.vcpu, memoryMb: f.memoryMb });
    if (!res.success) {
      // Name the variables, not the schema's fields: `WORKER_VCPU=20: Too big ...`; the vCPU : memory
      // ratio (a whole-object issue) names both.
      const vars: Record<string, string> = { vcpu: `${prefix}_VCPU=${f.vcpu}`, memoryMb: `${prefix}_MEMORY_MB=${f.memoryMb}` };
      const issues = res.error.issues.map((i) => ({ message: i.message, path: i.path.map((p) => vars[String(p)] ?? p) }));
      throw new ConfigError(`invalid configuration: ${describeIssues(issues, { root: `${vars.vcpu} / ${vars.memoryMb}` })}`);
    }
    return f;
  };
  const region = e.ALIBABA_REGION ?? e.FC_REGION;
  // Inside FC (FC_REGION is set by the runtime) the internal endpoints avoid internet traffic.
  const insideFc = !!e.FC_REGION;
  let oss: Config['oss'];
  if (e.STORE === 'oss') {
    if (!e.OSS_BUCKET) throw new ConfigError('invalid configuration: OSS_BUCKET is required when STORE=oss');
    if (!e.OSS_ENDPOINT && !region) throw new ConfigError('invalid configuration: STORE=oss needs ALIBABA_REGION (or FC_REGION) or OSS_ENDPOINT');
    oss = { bucket: e.OSS_BUCKET, region, endpoint: e.OSS_ENDPOINT, internal: e.OSS_INTERNAL ? e.OSS_INTERNAL === 'true' : insideFc, ...(e.OSS_EMULATOR_FAULTS?.trim() ? { emulatorFaults: e.OSS_EMULATOR_FAULTS } : {}) };
  }
  let fc: Config['fc'];
  if (e.INVOKER === 'fc' || e.INVOKER === 'fc2') {
    const accountId = e.ALIBABA_ACCOUNT_ID ?? e.FC_ACCOUNT_ID;
    if (!accountId) throw new ConfigError(`invalid configuration: INVOKER=${e.INVOKER} needs ALIBABA_ACCOUNT_ID (or FC_ACCOUNT_ID)`);
    if (!region) throw new ConfigError(`invalid configuration: INVOKER=${e.INVOKER} needs ALIBABA_REGION (or FC_REGION)`);
    fc = { accountId, region, endpoint: e.INVOKE_ENDPOINT, internal: e.INVOKE_INTERNAL ? e.INVOKE_INTERNAL === 'true' : insideFc };
    if (e.FC_EMULATOR_FAULTS?.trim()) fc.emulatorFaults = e.FC_EMULATOR_FAULTS;
    if (e.INVOKER === 'fc2') {
      // Functions of one deployment share a service unless told otherwise; inside FC 2.0 that is the caller's own.
      const dflt = e.FC2_SERVICE ?? e.FC_SERVICE_NAME ?? 'fc-tiled-cnn';
      const svc = (prefix: string) => (e[`${prefix}_SERVICE`] as string | undefined) ?? dflt;
      fc.services = { handler: svc('HANDLER'), master: svc('MASTER'), worker: svc('WORKER') };
    }
  }
  const apiKeys = parseApiKeys(e.API_KEYS);
  if (e.EXCHANGE === 'redis' && !e.REDIS_URL) throw new ConfigError('invalid configuration: EXCHANGE=redis needs REDIS_URL (redis://HOST:PORT)');
  return {
    apiKeys, maxInflight: e.MAX_INFLIGHT, maxQueue: e.MAX_QUEUE, requestTimeoutMs: Math.min(e.REQUEST_TIMEOUT_MS ?? e.FUNCTION_TIMEOUT_MS, e.FUNCTION_TIMEOUT_MS),
    oss, fc, exchange: e.EXCHANGE, redisUrl: e.REDIS_URL,
    port: e.PORT, host: e.HOST, dataDir: e.DATA_DIR, store: e.STORE, invoker: e.INVOKER,
    ...modelSettings(e.MODEL, e.MODEL_PATH, e.MODEL_REPOSITORY),
    plans: (e.PLANS ?? DEFAULT_PLANS).split(',').map((s) => s.trim()).filter(Boolean), plansGiven: e.PLANS !== undefined, defaultPlan: e.DEFAULT_PLAN,
    maxBodyBytes: e.MAX_BODY_BYTES, functionTimeoutMs: e.FUNCTION_TIMEOUT_MS,
    workerConcurrency: e.WORKER_CONCURRENCY, workerThreads: e.WORKER_THREADS, workerMaxSessions: e.WORKER_MAX_SESSIONS, workerMemArena: e.WORKER_MEM_ARENA === 'true', invokeRetries: e.INVOKE_RETRIES, localBundles: e.LOCAL_BUNDLES === 'true', topK: e.TOP_K,
    functions: { handler: fn('HANDLER'), master: fn('MASTER'), worker: fn('WORKER') },
    telemetry: {
      otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT, otlpTracesEndpoint: e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
      otlpHeaders: e.OTEL_EXPORTER_OTLP_HEADERS, otlpTimeoutMs: e.OTEL_EXPORTER_OTLP_TIMEOUT, logLevel: e.LOG_LEVEL,
    },
  };
}
