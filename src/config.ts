import { z } from 'zod';
import { functionResourcesSchema } from './serve/cost.ts';

/**
 * The one configuration of the stack, from environment variables (and CLI flags mapped onto
 * them). Every function process parses the same schema; an error names the variable.
 */
const int = (dflt: number, min = 0) => z.coerce.number().int().min(min).default(dflt);

const functionSchema = (name: string, prefix: string, d: { maxInstances: number; vcpu: number; memoryMb: number }) => z.object({
  [`${prefix}_FUNCTION`]: z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/).default(name),
  [`${prefix}_MAX_INSTANCES`]: int(d.maxInstances, 1),
  [`${prefix}_VCPU`]: z.coerce.number().default(d.vcpu),
  [`${prefix}_MEMORY_MB`]: int(d.memoryMb, 128),
});

export const envSchema = z.object({
  PORT: int(9000).pipe(z.number().max(65535)),
  HOST: z.string().default('127.0.0.1'),
  DATA_DIR: z.string().min(1).default('data'),
  STORE: z.enum(['fs', 'oss']).default('fs'),
  INVOKER: z.enum(['local', 'fc']).default('local'),
  OSS_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, 'an OSS bucket name (3-63 chars of a-z, 0-9, -)').optional(),
  /** Region for OSS and FC; inside FC it defaults to the runtime's FC_REGION. */
  ALIBABA_REGION: z.string().optional(),
  ALIBABA_ACCOUNT_ID: z.string().optional(),
  OSS_ENDPOINT: z.string().url().optional(),
  OSS_INTERNAL: z.enum(['true', 'false']).optional(),
  INVOKE_ENDPOINT: z.string().url().optional(),
  INVOKE_INTERNAL: z.enum(['true', 'false']).optional(),
  FC_REGION: z.string().optional(),
  FC_ACCOUNT_ID: z.string().optional(),
  MODEL: z.enum(['resnet18', 'vgg16', 'mobilenetv2']).default('resnet18'),
  MODEL_PATH: z.string().optional(),
  PLANS: z.string().default('plans/resnet18-224-2x2.json,plans/resnet18-224-4x4.json'),
  DEFAULT_PLAN: z.string().default('resnet18-224-4x4'),
  // 24 MiB: its base64 form in the HTTP event still fits FC's 32 MB synchronous invoke limit.
  MAX_BODY_BYTES: int(24 * 1024 * 1024, 1024),
  FUNCTION_TIMEOUT_MS: int(120_000, 1000),
  WORKER_CONCURRENCY: int(16, 1),
  WORKER_THREADS: int(1, 0),
  WORKER_MAX_SESSIONS: int(32, 1),
  WORKER_MEM_ARENA: z.enum(['true', 'false']).default('false'),
  TOP_K: int(5, 0),
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
  invoker: 'local' | 'fc';
  oss?: { bucket: string; region?: string; endpoint?: string; internal: boolean };
  fc?: { accountId: string; region: string; endpoint?: string; internal: boolean };
  model: 'resnet18' | 'vgg16' | 'mobilenetv2';
  modelPath: string;
  plans: string[];
  defaultPlan: string;
  maxBodyBytes: number;
  functionTimeoutMs: number;
  workerConcurrency: number;
  workerThreads: number;
  workerMaxSessions: number;
  workerMemArena: boolean;
  topK: number;
  functions: { handler: FunctionConfig; master: FunctionConfig; worker: FunctionConfig };
}

/**
 * The settings function processes read from their environment, as variables: the local stack
 * passes them to every instance so handler, master and workers agree with the stack that
 * started them (chain widths depend on WORKER_MAX_INSTANCES, deadlines on FUNCTION_TIMEOUT_MS).
 */
export function functionEnv(c: Config): Record<string, string> {
  const env: Record<string, string> = {
    MAX_BODY_BYTES: String(c.maxBodyBytes), FUNCTION_TIMEOUT_MS: String(c.functionTimeoutMs), WORKER_CONCURRENCY: String(c.workerConcurrency),
    WORKER_THREADS: String(c.workerThreads), WORKER_MAX_SESSIONS: String(c.workerMaxSessions), WORKER_MEM_ARENA: String(c.workerMemArena), TOP_K: String(c.topK),
  };
  for (const [prefix, f] of [['HANDLER', c.functions.handler], ['MASTER', c.functions.master], ['WORKER', c.functions.worker]] as const) {
    Object.assign(env, { [`${prefix}_FUNCTION`]: f.name, [`${prefix}_MAX_INSTANCES`]: String(f.maxInstances), [`${prefix}_VCPU`]: String(f.vcpu), [`${prefix}_MEMORY_MB`]: String(f.memoryMb) });
  }
  return env;
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const r = envSchema.safeParse(env);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid configuration: ${msg}`);
  }
  const e = r.data as Record<string, never> & z.infer<typeof envSchema>;
  const fn = (prefix: string): FunctionConfig => {
    const f = { name: e[`${prefix}_FUNCTION`] as string, maxInstances: e[`${prefix}_MAX_INSTANCES`] as number, vcpu: e[`${prefix}_VCPU`] as number, memoryMb: e[`${prefix}_MEMORY_MB`] as number };
    const res = functionResourcesSchema.safeParse({ vcpu: f.vcpu, memoryMb: f.memoryMb });
    if (!res.success) throw new ConfigError(`invalid configuration: ${prefix}_VCPU=${f.vcpu} / ${prefix}_MEMORY_MB=${f.memoryMb}: ${res.error.issues[0].message}`);
    return f;
  };
  const region = e.ALIBABA_REGION ?? e.FC_REGION;
  // Inside FC (FC_REGION is set by the runtime) the internal endpoints avoid internet traffic.
  const insideFc = !!e.FC_REGION;
  let oss: Config['oss'];
  if (e.STORE === 'oss') {
    if (!e.OSS_BUCKET) throw new ConfigError('invalid configuration: OSS_BUCKET is required when STORE=oss');
    if (!e.OSS_ENDPOINT && !region) throw new ConfigError('invalid configuration: STORE=oss needs ALIBABA_REGION (or FC_REGION) or OSS_ENDPOINT');
    oss = { bucket: e.OSS_BUCKET, region, endpoint: e.OSS_ENDPOINT, internal: e.OSS_INTERNAL ? e.OSS_INTERNAL === 'true' : insideFc };
  }
  let fc: Config['fc'];
  if (e.INVOKER === 'fc') {
    const accountId = e.ALIBABA_ACCOUNT_ID ?? e.FC_ACCOUNT_ID;
    if (!accountId) throw new ConfigError('invalid configuration: INVOKER=fc needs ALIBABA_ACCOUNT_ID (or FC_ACCOUNT_ID)');
    if (!region) throw new ConfigError('invalid configuration: INVOKER=fc needs ALIBABA_REGION (or FC_REGION)');
    fc = { accountId, region, endpoint: e.INVOKE_ENDPOINT, internal: e.INVOKE_INTERNAL ? e.INVOKE_INTERNAL === 'true' : insideFc };
  }
  return {
    oss, fc,
    port: e.PORT, host: e.HOST, dataDir: e.DATA_DIR, store: e.STORE, invoker: e.INVOKER,
    model: e.MODEL, modelPath: e.MODEL_PATH ?? `models/${e.MODEL}.onnx`,
    plans: e.PLANS.split(',').map((s) => s.trim()).filter(Boolean), defaultPlan: e.DEFAULT_PLAN,
    maxBodyBytes: e.MAX_BODY_BYTES, functionTimeoutMs: e.FUNCTION_TIMEOUT_MS,
    workerConcurrency: e.WORKER_CONCURRENCY, workerThreads: e.WORKER_THREADS, workerMaxSessions: e.WORKER_MAX_SESSIONS, workerMemArena: e.WORKER_MEM_ARENA === 'true', topK: e.TOP_K,
    functions: { handler: fn('HANDLER'), master: fn('MASTER'), worker: fn('WORKER') },
  };
}
