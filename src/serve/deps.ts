import { join, resolve } from 'node:path';
import type { Config } from '../config.ts';
import { FsStore } from '../store/fs-store.ts';
import { OssStore } from '../store/oss-store.ts';
import { RetryingStore } from '../store/retrying-store.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { envCredentials, type CredentialsProvider } from '../cloud/credentials.ts';
import { FcInvoker } from '../invoke/fc-invoker.ts';
import { Fc2Invoker } from '../invoke/fc2-invoker.ts';
import type { FunctionContext, Invoker } from '../invoke/invoker.ts';
import type { FunctionResources } from '../billing/pricing.ts';
import { ServeError } from './errors.ts';
import { describeIssues } from '../zod-issues.ts';
import type { Notifier } from '../exchange/exchange.ts';
import { storeExchangeBackend, type ExchangeBackend } from '../exchange/backend.ts';
import { RedisExchangeBackend } from '../exchange/redis-exchange.ts';
import { requestKeys } from './keys.ts';
import { INPUT } from '../plan/bundles.ts';

/** The embedded default store: a folder shared by every local function process. */
export function makeStore(config: Config, credentials: CredentialsProvider = envCredentials()): ObjectStore {
  switch (config.store) {
    case 'fs': return new FsStore(resolve(join(config.dataDir, 'store')));
    case 'oss': {
      const o = config.oss!;
      // Transient OSS failures (5xx, SlowDown, timeouts, resets, CRC mismatches) are retried
      // with jittered backoff; CountingStore counts the retries per request.
      return new RetryingStore(new OssStore({ bucket: o.bucket, region: o.region, endpoint: o.endpoint, internal: o.internal, credentials, timeoutMs: config.functionTimeoutMs }));
    }
    default: throw new ServeError(`unknown STORE ${config.store as string}`);
  }
}

/** The store's native wait for the exchange, where it has one (the filesystem store's inotify). */
export function makeNotifier(store: ObjectStore): Notifier | undefined {
  return store instanceof FsStore ? (key, ms) => store.changed(key, ms) : undefined;
}

/**
 * The exchange halos, partials and tiles move through (EXCHANGE): the object store itself, or
 * Redis/Tair at REDIS_URL. The handler's input bundle stays in the object store either way
 * (written before anyone waits for it); keys outlive no request by more than twice the timeout.
 */
export function makeExchange(config: Config, store: ObjectStore): ExchangeBackend {
  if (config.exchange !== 'redis') return storeExchangeBackend(makeNotifier(store));
  if (!config.redisUrl) throw new ServeError('EXCHANGE=redis needs REDIS_URL');
  const inputSuffix = requestKeys.bundle('', INPUT).replace(/^.*\//, '/');
  return new RedisExchangeBackend({ url: config.redisUrl, ttlMs: 2 * config.functionTimeoutMs, inStore: (key) => key.endsWith(inputSuffix) });
}

let fcInvoker: FcInvoker | undefined;
let fc2Invoker: Fc2Invoker | undefined;

/**
 * How a function reaches other functions: through FC's invoke API with the function role's
 * credentials (INVOKER=fc, or INVOKER=fc2 for FC 2.0 services), or through the local pool that runs this instance.
 */
export function makeInvoker(config: Config, context: FunctionContext): Invoker {
  if (config.invoker === 'fc2') {
    const f = config.fc!;
    const fn = config.functions;
    const services = f.services!;
    fc2Invoker ??= new Fc2Invoker({
      accountId: f.accountId, region: f.region, endpoint: f.endpoint, internal: f.internal, credentials: envCredentials(), timeoutMs: config.functionTimeoutMs,
      services: { [fn.handler.name]: services.handler, [fn.master.name]: services.master, [fn.worker.name]: services.worker },
      defaultService: services.handler,
    });
    return fc2Invoker;
  }
  if (config.invoker === 'fc') {
    const f = config.fc!;
    fcInvoker ??= new FcInvoker({ accountId: f.accountId, region: f.region, endpoint: f.endpoint, internal: f.internal, credentials: envCredentials(), timeoutMs: config.functionTimeoutMs });
    return fcInvoker;
  }
  if (!context.invoker) throw new ServeError('INVOKER=local but this instance was not started by the local pool (no context.invoker)');
  return context.invoker;
}

export function functionResources(config: Config): Record<string, FunctionResources> {
  const f = config.functions;
  return {
    [f.handler.name]: { vcpu: f.handler.vcpu, memoryMb: f.handler.memoryMb },
    [f.master.name]: { vcpu: f.master.vcpu, memoryMb: f.master.memoryMb },
    [f.worker.name]: { vcpu: f.worker.vcpu, memoryMb: f.worker.memoryMb },
  };
}

/** Turns a zod failure on an incoming event into an error that names the event and field. */
export class BadEventError extends ServeError {
  override name = 'BadEventError';
}

/**
 * What parseEvent validates with: a zod schema, or anything of its shape; `parseJson`, when
 * present, stands in for `JSON.parse(event.toString('utf8'))` (the HTTP event's fast path for a
 * large base64 body, fcHttpEventPayload in src/http/fc-event.ts, which this layer may not import).
 */
export interface EventSchema<T> {
  safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
  parseJson?(event: Buffer): unknown;
}

export function parseEvent<T>(schema: EventSchema<T>, event: Buffer, what: string): T {
  let json: unknown;
  try {
    json = schema.parseJson ? schema.parseJson(event) : JSON.parse(event.toString('utf8'));
  } catch {
    throw new BadEventError(`${what} event is not JSON`);
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new BadEventError(`invalid ${what} event: ${describeIssues(r.error.issues)}`);
  return r.data;
}
