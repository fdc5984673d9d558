/**
 * Fc2Invoker: the Invoker for Function Compute 2.0 (API version 2016-08-15), through the official
 * SDK `@alicloud/fc2`: `FCClient.invokeFunction(service, function, event, headers, qualifier)`,
 * i.e. `POST /2016-08-15/services/<service>[.<qualifier>]/functions/<fn>/invocations`, signed
 * `FC <ak>:<base64 HMAC-SHA256>` by the SDK.
 *
 * It behaves like the FC 3.0 adapter (./fc-invoker.ts), with the same typed errors:
 * - Payloads are raw bytes both ways: the SDK is asked for the response as a Buffer (`rawBuf`),
 *   otherwise it would decode it as UTF-8.
 * - Credentials come from a CredentialsProvider (inside FC: the role's STS keys from
 *   ALIBABA_CLOUD_*), re-read before they expire; the SDK client is rebuilt when they change.
 *   The SDK sends `x-fc-security-token` only for key ids starting with `STS` (FC's temporary keys
 *   do); a token on any other key id is sent through the client's extra headers (every `x-fc-*`
 *   header is signed), so no token is silently dropped.
 * - FC 2.0 functions live in services: `services` maps a function name to its service, anything
 *   else goes to `defaultService`.
 * - Errors: 200 + `x-fc-error-type` → FunctionError / FunctionTimeoutError / FunctionCrashedError
 *   (functionErrorFromResponse, shared with the FC 3.0 adapter); 404 …NotFound (function,
 *   service, alias) → FunctionNotFoundError; 413/EntityTooLarge or a payload over
 *   `maxPayloadBytes` → PayloadTooLargeError; 401/403 → FcAuthError naming the FC code; 408/504
 *   or no answer within `timeoutMs` → FunctionTimeoutError; other FC API errors (429
 *   ResourceThrottled, 5xx) → FcApiError with the code and status; network failures → InvokeError.
 *
 * The SDK reports an API error as `Error("POST <path> failed with <status>. requestid: <id>,
 * message: <ErrorMessage>.")` with `code` = the body's ErrorCode and no status field: the status
 * is read back from that message (see fc2ApiErrorParts).
 */
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import type { Credentials, CredentialsProvider } from '../cloud/credentials.ts';
import { CachedCredentials, sameCredentials } from '../cloud/credentials.ts';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  FunctionNotFoundError,
  FunctionTimeoutError,
  InvokeError,
  PayloadTooLargeError,
} from './errors.ts';
import { FcApiError, FcAuthError } from './fc-errors.ts';
import { checkInvokerOptions, invokerOptionsFromEnv, FC_EMULATOR_HEADERS, FC_HEADERS, functionErrorFromResponse } from './fc-invoker.ts';
import type { InvokeOptions, InvokeResult, Invoker } from './invoker.ts';

/** The part of `@alicloud/fc2`'s client this adapter uses. */
interface Fc2ClientConfig {
  accessKeyID: string;
  accessKeySecret: string;
  securityToken?: string;
  region: string;
  secure?: boolean;
  internal?: boolean;
  endpoint?: string;
  /** Both the read timeout and the connect (socket idle) timeout of its HTTP client (httpx). */
  timeout?: number;
  /** Extra request headers (signed when they are x-fc-*). */
  headers?: Record<string, string>;
}
interface Fc2Client {
  invokeFunction(service: string, fn: string, event: Buffer, headers: Record<string, string>, qualifier: string | undefined, opts: { rawBuf?: boolean }): Promise<unknown>;
}
type Fc2ClientClass = new (accountId: string, config: Fc2ClientConfig) => Fc2Client;

function isFc2ClientClass(v: unknown): v is Fc2ClientClass {
  return typeof v === 'function' && typeof (v as { prototype?: { invokeFunction?: unknown } }).prototype?.invokeFunction === 'function';
}

// The package ships no type declarations; createRequire also lets `npm run package` see it.
const require = createRequire(import.meta.url);
let clientClass: Fc2ClientClass | undefined;
function fc2ClientClass(): Fc2ClientClass {
  if (clientClass) return clientClass;
  const loaded: unknown = require('@alicloud/fc2');
  if (!isFc2ClientClass(loaded)) throw new TypeError('@alicloud/fc2 does not export a client class with invokeFunction()');
  clientClass = loaded;
  return loaded;
}

/** What `invokeFunction` resolves to: `{headers, data}`; data is a Buffer with rawBuf (or parsed JSON / text on errors). */
const fc2ResponseSchema = z.object({
  headers: z.record(z.string(), z.unknown()),
  data: z.unknown(),
});

export const FC2_API_VERSION = '2016-08-15';
/** Service used when neither the options nor the environment name one. */
export const DEFAULT_FC2_SERVICE = 'fc-tiled-cnn';

export interface Fc2InvokerOptions {
  /** Alibaba Cloud account ID (the endpoint's first label, and `x-fc-account-id`). */
  accountId: string;
  region: string;
  /** Endpoint override `http(s)://host[:port]`, e.g. the loopback emulator. Default `https://<account>.<region>[-internal].fc.aliyuncs.com`. */
  endpoint?: string;
  /** Use the VPC-internal endpoint (`<region>-internal`). Ignored when `endpoint` is given. */
  internal?: boolean;
  credentials: CredentialsProvider;
  /** Service of each function, by function name. */
  services?: Record<string, string>;
  /** Service of functions not in `services`. Default DEFAULT_FC2_SERVICE. */
  defaultService?: string;
  /** Client-side limit for one invocation, ms; the SDK's connect timeout is never shorter. */
  timeoutMs: number;
  /** Request and response payload limit. Default 32 MB. */
  maxPayloadBytes?: number;
  /** Version or alias (`<service>.<qualifier>`). Default none (LATEST). */
  qualifier?: string;
  /** Re-read credentials that expire within this many ms. Default 5 minutes. */
  refreshBeforeExpiryMs?: number;
}

/** Default FC 2.0 endpoint of an account and region (the same host names as FC 3.0). */
export function defaultFc2Endpoint(accountId: string, region: string, internal = false): string {
  return `https://${accountId}.${region}${internal ? '-internal' : ''}.fc.aliyuncs.com`;
}

interface ClientState {
  client: Fc2Client;
  credentials: Credentials;
}

export class Fc2Invoker implements Invoker {
  readonly endpoint: string;
  private readonly options: Fc2InvokerOptions;
  private readonly maxPayloadBytes: number;
  private readonly credentials: CachedCredentials;
  private current: ClientState | undefined;
  private closed = false;
  /** Number of SDK clients built so far (1 + credential changes). */
  clientBuilds = 0;

  constructor(options: Fc2InvokerOptions) {
    checkInvokerOptions('Fc2Invoker', options);
    const endpoint = options.endpoint ?? defaultFc2Endpoint(options.accountId, options.region, options.internal);
    if (!/^https?:\/\/[^/?#\s]+\/?$/i.test(endpoint)) {
      throw new TypeError(`Fc2Invoker: invalid endpoint ${JSON.stringify(endpoint)}: expected http(s)://host[:port]`);
    }
    this.endpoint = endpoint.replace(/\/$/, '');
    this.options = options;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.credentials = new CachedCredentials(options.credentials, { refreshMarginMs: options.refreshBeforeExpiryMs ?? 5 * 60_000 });
  }

  /** The service `functionName` is invoked in. */
  serviceOf(functionName: string): string {
    return this.options.services?.[functionName] ?? this.options.defaultService ?? DEFAULT_FC2_SERVICE;
  }

  async invoke(functionName: string, payload: Buffer | Uint8Array, options?: InvokeOptions): Promise<InvokeResult> {
    if (this.closed) throw new InvokeError(`invoker is closed (invoking ${functionName})`, { functionName });
    if (typeof functionName !== 'string' || functionName === '') throw new TypeError('invoke(): functionName must be a non-empty string');
    if (!(payload instanceof Uint8Array)) throw new TypeError(`invoke(${functionName}): payload must be a Buffer`);
    const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    if (body.length > this.maxPayloadBytes) {
      throw new PayloadTooLargeError({ functionName, sizeBytes: body.length, maxBytes: this.maxPayloadBytes, direction: 'request' });
    }
    const { client } = await this.getClient(functionName);
    // The caller's deadline (the request's) can end the wait sooner than the invoke timeout.
    const timeoutMs = Math.max(1, Math.min(this.options.timeoutMs, options?.deadline === undefined ? Infinity : options.deadline - Date.now() - 1000));
    const started = performance.now();
    const call = client.invokeFunction(this.serviceOf(functionName), functionName, body, { 'x-fc-invocation-type': 'Sync' }, this.options.qualifier, { rawBuf: true });
    // The SDK's timers are per socket (keep-alive sockets are reused): guard the whole call too.
    let guard: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      guard = setTimeout(() => {
        reject(new FunctionTimeoutError(`${functionName}: no response from FC within ${timeoutMs} ms`, { functionName, timeoutMs }));
      }, timeoutMs + 1000);
    });
    let raw: unknown;
    try {
      raw = await Promise.race([call, timedOut]).catch((err: unknown) => {
        const mapped = this.mapRequestError(functionName, body.length, err);
        // Rejected credentials (an STS token revoked or expired early): re-read them next time.
        if (mapped instanceof FcAuthError) this.credentials.invalidate();
        throw mapped;
      });
    } finally {
      clearTimeout(guard);
      call.catch(() => {}); // a late rejection after the guard fired
    }
    const elapsed = performance.now() - started;
    const parsed = fc2ResponseSchema.safeParse(raw);
    if (!parsed.success) throw new InvokeError(`${functionName}: @alicloud/fc2 returned no {headers, data} response`, { functionName });
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed.data.headers)) if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : String(v);
    const resBody = dataBytes(parsed.data.data);
    const requestId = headers[FC_HEADERS.requestId];
    const instanceId = headers[FC_HEADERS.instanceId] ?? '';
    if (resBody.length > this.maxPayloadBytes) {
      throw new PayloadTooLargeError({ functionName, sizeBytes: resBody.length, maxBytes: this.maxPayloadBytes, direction: 'response', ...(requestId ? { requestId } : {}) });
    }
    const errorType = headers[FC_HEADERS.errorType];
    if (errorType) throw functionErrorFromResponse(functionName, errorType, resBody, headers, requestId, instanceId);

    const coldStart = headers[FC_EMULATOR_HEADERS.coldStart] === 'true';
    const result: InvokeResult = { payload: resBody, instanceId, coldStart, durationMs: num(headers[FC_EMULATOR_HEADERS.durationMs]) ?? elapsed };
    const initMs = num(headers[FC_EMULATOR_HEADERS.initMs]);
    if (coldStart && initMs !== undefined) result.initMs = initMs;
    const peak = num(headers[FC_EMULATOR_HEADERS.peakRssBytes]);
    if (peak !== undefined) result.peakRssBytes = peak;
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.current = undefined;
  }

  /** Current SDK client; rebuilt when the (cached, expiry-refreshed) credentials change. */
  private async getClient(functionName: string): Promise<ClientState> {
    let creds: Credentials;
    try {
      creds = await this.credentials.get();
    } catch (err) {
      throw new InvokeError(`${functionName}: could not obtain FC credentials: ${(err as Error)?.message ?? String(err)}`, { functionName, cause: err });
    }
    const cur = this.current;
    if (cur && (cur.credentials === creds || sameCredentials(cur.credentials, creds))) {
      cur.credentials = creds;
      return cur;
    }
    const sdkSendsToken = creds.accessKeyId.startsWith('STS');
    if (sdkSendsToken && !creds.securityToken) {
      throw new InvokeError(`${functionName}: access key ${creds.accessKeyId} is an STS key but no security token was given (ALIBABA_CLOUD_SECURITY_TOKEN)`, { functionName });
    }
    const config: Fc2ClientConfig = {
      accessKeyID: creds.accessKeyId,
      accessKeySecret: creds.accessKeySecret,
      region: this.options.region,
      endpoint: this.endpoint,
      // httpx arms its connect timer as a socket idle timer, so it also runs while a slow function
      // computes: it must not be shorter than the invoke timeout.
      timeout: this.options.timeoutMs,
      ...(sdkSendsToken ? { securityToken: creds.securityToken } : {}),
      ...(!sdkSendsToken && creds.securityToken ? { headers: { 'x-fc-security-token': creds.securityToken } } : {}),
    };
    const Client = fc2ClientClass();
    let client: Fc2Client;
    try {
      client = new Client(this.options.accountId, config);
    } catch (err) {
      throw new InvokeError(`${functionName}: @alicloud/fc2 refused its configuration: ${(err as Error)?.message ?? String(err)}`, { functionName, cause: err });
    }
    const state: ClientState = { client, credentials: creds };
    this.clientBuilds++;
    this.current = state;
    return state;
  }

  /** Map an error thrown by the SDK call. Unknown errors pass through. */
  private mapRequestError(functionName: string, requestBytes: number, err: unknown): unknown {
    if (err instanceof InvokeError) return err;
    const e = err as { name?: unknown; message?: unknown; code?: unknown };
    const message = typeof e?.message === 'string' ? e.message : String(err);
    const api = fc2ApiErrorParts(err);
    if (api) {
      const { status, code, fcMessage, requestId } = api;
      const base = { functionName, cause: err, ...(requestId ? { requestId } : {}) };
      const where = `${functionName}: FC ${status} ${code}: ${fcMessage}${requestId ? ` (RequestId ${requestId})` : ''}`;
      if (status === 404 && /NotFound$/.test(code) && !/^(PathNotSupported|EndpointNotFound)$/.test(code)) {
        return new FunctionNotFoundError(functionName, { cause: err });
      }
      if (status === 413 || /^(EntityTooLarge|RequestEntityTooLarge|PayloadTooLarge)$/.test(code)) {
        const limit = /\((\d+) bytes\)/.exec(fcMessage);
        return new PayloadTooLargeError({ ...base, sizeBytes: requestBytes, maxBytes: limit ? Number(limit[1]) : this.maxPayloadBytes, direction: 'request' });
      }
      if (status === 401 || status === 403) return new FcAuthError(where, { ...base, code, statusCode: status });
      if (status === 408 || status === 504 || /Timeout|TimedOut/i.test(code)) {
        return new FunctionTimeoutError(where, { ...base, timeoutMs: this.options.timeoutMs });
      }
      return new FcApiError(where, { ...base, code, statusCode: status });
    }
    if (typeof e?.name === 'string' && /RequestTimeout/.test(e.name)) {
      // httpx's ReadTimeout, or its ConnectTimeout (a socket idle timer as long as the invoke timeout).
      return new FunctionTimeoutError(`${functionName}: no response from FC within ${this.options.timeoutMs} ms (${message.split('.')[0]})`, {
        functionName, timeoutMs: this.options.timeoutMs, cause: err,
      });
    }
    if (typeof e?.code === 'string' && /^E[A-Z_]+$/.test(e.code)) {
      return new InvokeError(`${functionName}: request to FC at ${this.endpoint} failed: ${e.code}: ${message}`, { functionName, cause: err });
    }
    if (err instanceof SyntaxError) {
      // The SDK parses application/json bodies: this one was not JSON.
      return new InvokeError(`${functionName}: FC returned a response that is not valid JSON: ${message}`, { functionName, cause: err });
    }
    return err;
  }
}

/**
 * Status, code, message and request id of an FC API error as @alicloud/fc2 throws it
 * (`<METHOD> <path> failed with <status>. requestid: <id>, message: <msg>.`, `code` = ErrorCode);
 * undefined for any other error.
 */
export function fc2ApiErrorParts(err: unknown): { status: number; code: string; fcMessage: string; requestId?: string } | undefined {
  if (!(err instanceof Error)) return undefined;
  const m = /^[A-Z]+ \S+ failed with (\d{3})\. requestid: ([^,]*), message: ([\s\S]*)\.$/.exec(err.message);
  if (!m) return undefined;
  const status = Number(m[1]);
  const rawCode = (err as { code?: unknown }).code;
  const code = typeof rawCode === 'string' && rawCode !== '' ? rawCode : String(status);
  const requestId = m[2] && m[2] !== 'undefined' ? m[2] : undefined;
  return { status, code, fcMessage: m[3], ...(requestId ? { requestId } : {}) };
}

/** The SDK's `data` as bytes: a Buffer with rawBuf; text or parsed JSON when FC answered JSON or an error. */
function dataBytes(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data === undefined || data === null) return Buffer.alloc(0);
  return Buffer.from(JSON.stringify(data), 'utf8');
}

function num(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * An Fc2Invoker from a function instance's environment: INVOKE_ENDPOINT (optional),
 * ALIBABA_ACCOUNT_ID (or FC_ACCOUNT_ID), ALIBABA_REGION (or FC_REGION), the role's credentials
 * (ALIBABA_CLOUD_*), INVOKE_INTERNAL, INVOKE_QUALIFIER, FUNCTION_TIMEOUT_MS, and the service:
 * FC2_SERVICE (or FC_SERVICE_NAME, or DEFAULT_FC2_SERVICE).
 */
export function fc2InvokerFromEnv(env: Record<string, string | undefined> = process.env, overrides: Partial<Fc2InvokerOptions> = {}): Fc2Invoker {
  return new Fc2Invoker({
    ...invokerOptionsFromEnv(env, 'fc2InvokerFromEnv'),
    defaultService: env.FC2_SERVICE ?? env.FC_SERVICE_NAME ?? DEFAULT_FC2_SERVICE,
    ...overrides,
  });
}
