/**
 * FcInvoker: the cloud Invoker. Synchronous invocation of Alibaba Cloud Function Compute 3.0
 * functions through the official SDK (`@alicloud/fc20230330`, API version 2023-03-30):
 * `POST /2023-03-30/functions/{name}/invocations[?qualifier=…]`, `x-fc-invocation-type: Sync`,
 * signed with ACS3-HMAC-SHA256 by `@alicloud/openapi-core`.
 *
 * - Payloads are sent as raw bytes: the SDK reads the request stream into a Buffer (hashing it for
 *   `x-acs-content-sha256`) and sends `application/octet-stream`; no string conversion happens,
 *   so binary payloads survive. The response body is read as bytes from the HTTP stream.
 * - Credentials come from a CredentialsProvider. Long-lived keys are read once; STS credentials
 *   (with `expiration`) are re-read `refreshBeforeExpiryMs` before they expire, and the SDK client
 *   is rebuilt when they change.
 * - Errors (all InvokeError subclasses, see ./errors.ts and ./fc-errors.ts):
 *   200 + `x-fc-error-type` (Handled/UnhandledInvocationError) → FunctionError with the remote
 *   errorType/errorMessage/stackTrace; FC's "Function timed out…" → FunctionTimeoutError; FC's
 *   "Process exited unexpectedly…" → FunctionCrashedError; 404 FunctionNotFound (or alias/version
 *   not found) → FunctionNotFoundError; 413/EntityTooLarge or a payload over `maxPayloadBytes`
 *   (checked before sending, and while reading the response) → PayloadTooLargeError; no answer
 *   within `timeoutMs` → FunctionTimeoutError; 401/403 → FcAuthError naming the FC code; other
 *   FC API errors → FcApiError; connection failures → InvokeError. Anything else is rethrown.
 *
 * FC itself reports neither cold starts nor handler duration on a plain synchronous invocation:
 * `coldStart` is false and `durationMs` is the measured round trip, unless the server is the
 * loopback emulator (src/emulators/fc-server.ts), whose `x-fc-emulator-*` headers carry them.
 */
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import FcModule from '@alicloud/fc20230330';
import type { Credentials, CredentialsProvider } from '../cloud/credentials.ts';
import { CachedCredentials, envCredentials, sameCredentials } from '../cloud/credentials.ts';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  FunctionCrashedError,
  FunctionError,
  FunctionNotFoundError,
  FunctionTimeoutError,
  InvokeError,
  PayloadTooLargeError,
} from './errors.ts';
import { FcApiError, FcAuthError } from './fc-errors.ts';
import type { InvokeOptions, InvokeResult, Invoker } from './invoker.ts';

const FcClient = FcModule.default;
type FcClient = InstanceType<typeof FcClient>;
type FcConfig = ConstructorParameters<typeof FcClient>[0];
type FcRuntimeOptions = Parameters<FcClient['invokeFunctionWithOptions']>[3];

/** FC 3.0 response headers read by FcInvoker. */
export const FC_HEADERS = {
  requestId: 'x-fc-request-id',
  instanceId: 'x-fc-instance-id',
  errorType: 'x-fc-error-type',
  invocationType: 'x-fc-invocation-type',
} as const;

/**
 * Emulator-only response headers (set by src/emulators/fc-server.ts, never by the real FC), so
 * that tests and local runs through FcInvoker can still report what ProcessPoolInvoker reports.
 */
export const FC_EMULATOR_HEADERS = {
  /** "true" | "false": this call started the instance. */
  coldStart: 'x-fc-emulator-cold-start',
  /** Handler execution time inside the instance, ms. */
  durationMs: 'x-fc-emulator-duration-ms',
  /** Cold starts only: instance start + module load time, ms. */
  initMs: 'x-fc-emulator-init-ms',
  /** Peak RSS of the instance so far, bytes. */
  peakRssBytes: 'x-fc-emulator-peak-rss',
  /** On error responses: "timeout" | "crash" | "response-too-large" (disambiguates from user errors). */
  errorKind: 'x-fc-emulator-error-kind',
} as const;

export interface FcInvokerOptions {
  /** Alibaba Cloud account ID (the FC endpoint's first label). */
  accountId: string;
  /** Region ID, e.g. "cn-hangzhou". */
  region: string;
  /**
   * Endpoint override: `host[:port]` (HTTPS) or a URL `http(s)://host[:port]`, e.g.
   * `http://127.0.0.1:PORT` for the loopback emulator. Default
   * `https://<accountId>.<region>[-internal].fc.aliyuncs.com`.
   */
  endpoint?: string;
  /** Use the VPC-internal endpoint (`<region>-internal`). Ignored when `endpoint` is given. */
  internal?: boolean;
  credentials: CredentialsProvider;
  /** Client-side limit for one invocation (connect + send + function run + response), ms. */
  timeoutMs: number;
  /** Request and response payload limit. Default 32 MB (FC synchronous invocation). */
  maxPayloadBytes?: number;
  /** Version or alias to invoke (`?qualifier=`). Default: none (LATEST). */
  qualifier?: string;
  /** Re-read credentials that expire within this many ms. Default 5 minutes. */
  refreshBeforeExpiryMs?: number;
  /** TCP connect timeout, ms. Default min(timeoutMs, 10 s). */
  connectTimeoutMs?: number;
}

export interface FcEndpoint {
  protocol: 'http' | 'https';
  /** host[:port], also the signed `host` header. */
  host: string;
}

/** Default FC 3.0 endpoint of an account and region. */
export function defaultFcEndpoint(accountId: string, region: string, internal = false): string {
  return `https://${accountId}.${region}${internal ? '-internal' : ''}.fc.aliyuncs.com`;
}

/** Split `http(s)://host[:port]` (or a bare `host[:port]`, meaning HTTPS) into protocol and host. */
export function parseFcEndpoint(endpoint: string): FcEndpoint {
  const m = /^(https?):\/\/([^/?#]+)\/?$/i.exec(endpoint.trim());
  if (m) return { protocol: m[1].toLowerCase() as 'http' | 'https', host: m[2] };
  if (/^[^/?#:\s]+(:\d+)?$/.test(endpoint.trim())) return { protocol: 'https', host: endpoint.trim() };
  throw new TypeError(`invalid FC endpoint ${JSON.stringify(endpoint)}: expected http(s)://host[:port] or host[:port]`);
}

interface ClientState {
  client: FcClient;
  credentials: Credentials;
}

/** The options both FC API generations' invokers need, checked the same way. */
export function checkInvokerOptions(kind: string, o: { accountId: string; region: string; credentials: CredentialsProvider; timeoutMs: number }): void {
  if (!o.accountId) throw new TypeError(`${kind}: accountId is required`);
  if (!o.region) throw new TypeError(`${kind}: region is required`);
  if (!o.credentials || typeof o.credentials.get !== 'function') throw new TypeError(`${kind}: credentials must be a CredentialsProvider`);
  if (!(o.timeoutMs > 0)) throw new TypeError(`${kind}: timeoutMs must be > 0`);
}

export class FcInvoker implements Invoker {
  readonly endpoint: FcEndpoint;
  private readonly options: FcInvokerOptions;
  private readonly maxPayloadBytes: number;
  private readonly credentials: CachedCredentials;
  private current: ClientState | undefined;
  private closed = false;
  /** Number of SDK clients built so far (1 + credential changes). */
  clientBuilds = 0;

  constructor(options: FcInvokerOptions) {
    checkInvokerOptions('FcInvoker', options);
    this.options = options;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.credentials = new CachedCredentials(options.credentials, { refreshMarginMs: options.refreshBeforeExpiryMs ?? 5 * 60_000 });
    this.endpoint = parseFcEndpoint(options.endpoint ?? defaultFcEndpoint(options.accountId, options.region, options.internal));
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

    const started = performance.now();
    const request = new FcModule.InvokeFunctionRequest({
      // The SDK reads this stream fully (Stream.readAsBytes) before signing: bytes in, bytes out.
      body: Readable.from([body]),
      ...(this.options.qualifier !== undefined ? { qualifier: this.options.qualifier } : {}),
    });
    const headers = new FcModule.InvokeFunctionHeaders({ xFcInvocationType: 'Sync' });
    const call = client.invokeFunctionWithOptions(functionName, request, headers, {} as FcRuntimeOptions);

    // The SDK's read timeout covers the call, but its timer bookkeeping is per socket (and keep-alive
    // sockets are reused), so also guard the whole call ourselves.
    // The caller's deadline (the request's) can end the wait sooner than the invoke timeout.
    const limitMs = Math.max(1, Math.min(this.options.timeoutMs + 1000, options?.deadline === undefined ? Infinity : options.deadline - Date.now()));
    let guard: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      guard = setTimeout(() => {
        reject(new FunctionTimeoutError(
          `${functionName}: no response from FC within ${Math.round(limitMs)} ms`,
          { functionName, timeoutMs: limitMs },
        ));
      }, limitMs);
    });
    let bodyRead = false;
    try {
      const response = await Promise.race([call, timedOut]).catch((err: unknown) => {
        const mapped = this.mapRequestError(functionName, body.length, err);
        // Rejected credentials (e.g. an STS token revoked or expired early): re-read them next time.
        if (mapped instanceof FcAuthError) this.credentials.invalidate();
        throw mapped;
      });
      const resHeaders = lowerKeys(response.headers ?? {});
      const resBody = await Promise.race([
        readBody(response.body, this.maxPayloadBytes, functionName, resHeaders),
        timedOut,
      ]).catch((err: unknown) => {
        response.body?.destroy();
        if (err instanceof InvokeError) throw err;
        throw this.mapRequestError(functionName, body.length, err);
      });
      bodyRead = true;
      const elapsed = performance.now() - started;
      const requestId = resHeaders[FC_HEADERS.requestId];
      const instanceId = resHeaders[FC_HEADERS.instanceId] ?? '';
      const errorType = resHeaders[FC_HEADERS.errorType];
      if (errorType) throw functionErrorFromResponse(functionName, errorType, resBody, resHeaders, requestId, instanceId);
      const status = response.statusCode ?? 200;
      if (status < 200 || status >= 300) {
        throw new FcApiError(`${functionName}: unexpected FC response status ${status}`, {
          functionName, code: String(status), statusCode: status, ...(requestId ? { requestId } : {}),
        });
      }

      const coldStart = resHeaders[FC_EMULATOR_HEADERS.coldStart] === 'true';
      const result: InvokeResult = {
        payload: resBody,
        instanceId,
        coldStart,
        durationMs: num(resHeaders[FC_EMULATOR_HEADERS.durationMs]) ?? elapsed,
      };
      const initMs = num(resHeaders[FC_EMULATOR_HEADERS.initMs]);
      if (coldStart && initMs !== undefined) result.initMs = initMs;
      const peak = num(resHeaders[FC_EMULATOR_HEADERS.peakRssBytes]);
      if (peak !== undefined) result.peakRssBytes = peak;
      return result;
    } finally {
      clearTimeout(guard);
      // A late SDK response (after our guard fired) or an unread body: discard it.
      if (!bodyRead) call.then((r) => r.body?.destroy(), () => {});
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.current = undefined;
  }

  // ---------------------------------------------------------------- credentials

  /** Current SDK client; rebuilt when the (cached, expiry-refreshed) credentials change. */
  private async getClient(functionName: string): Promise<ClientState> {
    let creds: Credentials;
    try {
      creds = await this.credentials.get();
    } catch (err) {
      throw new InvokeError(`${functionName}: could not obtain FC credentials: ${(err as Error)?.message ?? String(err)}`, {
        functionName,
        cause: err,
      });
    }
    const cur = this.current;
    if (cur && (cur.credentials === creds || sameCredentials(cur.credentials, creds))) {
      cur.credentials = creds;
      return cur;
    }
    const { timeoutMs } = this.options;
    const config = {
      accessKeyId: creds.accessKeyId,
      accessKeySecret: creds.accessKeySecret,
      ...(creds.securityToken ? { securityToken: creds.securityToken } : {}),
      endpoint: this.endpoint.host,
      protocol: this.endpoint.protocol,
      regionId: this.options.region,
      readTimeout: timeoutMs,
      // The SDK's transport arms its connect timer as a socket idle timer, so it also fires while
      // waiting for a slow function's response: it must not be shorter than the invoke timeout.
      connectTimeout: this.options.connectTimeoutMs ?? timeoutMs,
    };
    // The SDK's Config is a plain data model (openapi-core's constructor only reads these fields).
    const state: ClientState = { client: new FcClient(config as unknown as FcConfig), credentials: creds };
    this.clientBuilds++;
    this.current = state;
    return state;
  }

  // ---------------------------------------------------------------- errors

  /** Map an error thrown by the SDK call (FC error status, network, timeout). Unknown errors pass through. */
  private mapRequestError(functionName: string, requestBytes: number, err: unknown): unknown {
    if (err instanceof InvokeError) return err;
    const e = err as { name?: unknown; message?: unknown; code?: unknown; statusCode?: unknown; data?: unknown; requestId?: unknown };
    const message = typeof e?.message === 'string' ? e.message : String(err);
    if (typeof e?.statusCode === 'number') {
      const status = e.statusCode;
      const data = (e.data && typeof e.data === 'object' ? e.data : {}) as Record<string, unknown>;
      const code = String(data.Code ?? data.code ?? data.errorCode ?? e.code ?? status);
      const fcMessage = String(data.Message ?? data.message ?? data.errorMessage ?? message);
      const rid = data.RequestId ?? data.requestId ?? e.requestId;
      const requestId = typeof rid === 'string' && rid !== 'undefined' ? rid : undefined;
      const base = { functionName, cause: err, ...(requestId ? { requestId } : {}) };
      const where = `${functionName}: FC ${status} ${code}: ${fcMessage}${requestId ? ` (RequestId ${requestId})` : ''}`;
      if (status === 404 && /NotFound$/.test(code) && !/^(PathNotSupported|EndpointNotFound)$/.test(code)) {
        return new FunctionNotFoundError(functionName, { cause: err });
      }
      if (status === 413 || /^(EntityTooLarge|RequestEntityTooLarge|PayloadTooLarge)$/.test(code)) {
        const limit = /\((\d+) bytes\)/.exec(fcMessage);
        return new PayloadTooLargeError({
          ...base, sizeBytes: requestBytes, maxBytes: limit ? Number(limit[1]) : this.maxPayloadBytes, direction: 'request',
        });
      }
      if (status === 401 || status === 403) return new FcAuthError(where, { ...base, code, statusCode: status });
      if (status === 408 || status === 504 || /Timeout|TimedOut/i.test(code)) {
        return new FunctionTimeoutError(where, { ...base, timeoutMs: this.options.timeoutMs });
      }
      return new FcApiError(where, { ...base, code, statusCode: status });
    }
    if (e?.name === 'RequestTimeoutError') {
      if (/ConnectTimeout/.test(message)) {
        return new InvokeError(`${functionName}: could not connect to FC at ${this.endpoint.host}: ${message}`, { functionName, cause: err });
      }
      return new FunctionTimeoutError(`${functionName}: no response from FC within ${this.options.timeoutMs} ms`, {
        functionName, timeoutMs: this.options.timeoutMs, cause: err,
      });
    }
    if (typeof e?.code === 'string' && /^E[A-Z_]+$/.test(e.code)) {
      // Node network errors: ECONNREFUSED, ECONNRESET, ENOTFOUND, EPIPE, ...
      return new InvokeError(`${functionName}: request to FC at ${this.endpoint.host} failed: ${e.code}: ${message}`, { functionName, cause: err });
    }
    if (err instanceof SyntaxError) {
      // The SDK parses every 4xx/5xx body as JSON: this was not an FC API error response.
      return new InvokeError(`${functionName}: FC returned an error response that is not FC JSON: ${message}`, { functionName, cause: err });
    }
    return err;
  }
}

/** Read a response stream into a Buffer, failing (and destroying it) once it exceeds `max` bytes. */
async function readBody(stream: Readable | undefined, max: number, functionName: string, headers: Record<string, string>): Promise<Buffer> {
  if (!stream) return Buffer.alloc(0);
  const declared = num(headers['content-length']);
  const tooLarge = (size: number) => new PayloadTooLargeError({
    functionName, sizeBytes: size, maxBytes: max, direction: 'response',
    ...(headers[FC_HEADERS.requestId] ? { requestId: headers[FC_HEADERS.requestId] } : {}),
  });
  if (declared !== undefined && declared > max) {
    stream.destroy();
    throw tooLarge(declared);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += b.length;
    if (size > max) {
      stream.destroy();
      throw tooLarge(size);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, size);
}

interface FcErrorBody {
  errorMessage?: unknown;
  errorType?: unknown;
  stackTrace?: unknown;
  // emulator extras
  details?: unknown;
  timeoutMs?: unknown;
  exitCode?: unknown;
  signal?: unknown;
  outOfMemory?: unknown;
  sizeBytes?: unknown;
  maxBytes?: unknown;
}

/**
 * Turn a function-error response (`x-fc-error-type` set; body `{errorMessage, errorType, stackTrace}`)
 * into the matching InvokeError. FC's own failure bodies carry no errorType: "Function timed out
 * after N seconds…" is a timeout and "Process exited unexpectedly…" a crash (the emulator also
 * says so explicitly in `x-fc-emulator-error-kind`).
 */
export function functionErrorFromResponse(
  functionName: string,
  fcErrorType: string,
  body: Buffer,
  headers: Record<string, string>,
  requestId?: string,
  instanceId?: string,
): InvokeError {
  let parsed: FcErrorBody | undefined;
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    if (v && typeof v === 'object' && !Array.isArray(v)) parsed = v as FcErrorBody;
  } catch {
    /* not JSON */
  }
  const base = { functionName, ...(requestId ? { requestId } : {}), ...(instanceId ? { instanceId } : {}) };
  const text = body.toString('utf8');
  const errorMessage = typeof parsed?.errorMessage === 'string' ? parsed.errorMessage : (parsed ? JSON.stringify(parsed) : text).slice(0, 4096);
  const errorType = typeof parsed?.errorType === 'string' && parsed.errorType !== '' ? parsed.errorType : undefined;
  const kind = headers[FC_EMULATOR_HEADERS.errorKind];

  if (kind === 'timeout' || (kind === undefined && errorType === undefined && /^Function timed? ?out after/i.test(errorMessage))) {
    const secs = /after ([\d.]+) ?s/i.exec(errorMessage);
    const timeoutMs = typeof parsed?.timeoutMs === 'number' ? parsed.timeoutMs : secs ? Math.round(Number(secs[1]) * 1000) : 0;
    return new FunctionTimeoutError(`${functionName}: ${errorMessage}`, { ...base, timeoutMs });
  }
  if (kind === 'crash' || (kind === undefined && errorType === undefined && /^Process exited unexpectedly/i.test(errorMessage))) {
    return new FunctionCrashedError(`${functionName}: ${errorMessage}`, {
      ...base,
      exitCode: typeof parsed?.exitCode === 'number' ? parsed.exitCode : null,
      signal: typeof parsed?.signal === 'string' ? parsed.signal : null,
      outOfMemory: typeof parsed?.outOfMemory === 'boolean' ? parsed.outOfMemory : /out of memory/i.test(errorMessage),
    });
  }
  if (kind === 'response-too-large') {
    return new PayloadTooLargeError({
      ...base,
      sizeBytes: typeof parsed?.sizeBytes === 'number' ? parsed.sizeBytes : 0,
      maxBytes: typeof parsed?.maxBytes === 'number' ? parsed.maxBytes : 0,
      direction: 'response',
    });
  }
  const stack = parsed?.stackTrace;
  const remoteStack = Array.isArray(stack) ? stack.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n')
    : typeof stack === 'string' ? stack : undefined;
  const details = parsed?.details && typeof parsed.details === 'object' && !Array.isArray(parsed.details)
    ? parsed.details as Record<string, unknown>
    : undefined;
  return new FunctionError({
    ...base,
    errorType: errorType ?? fcErrorType,
    errorMessage,
    ...(details !== undefined ? { details } : {}),
    ...(remoteStack !== undefined ? { remoteStack } : {}),
  });
}

/** What both FC API generations' invokers read from a function instance's environment. */
export function invokerOptionsFromEnv(env: Record<string, string | undefined>, who: string) {
  const accountId = env.ALIBABA_ACCOUNT_ID ?? env.FC_ACCOUNT_ID;
  const region = env.ALIBABA_REGION ?? env.FC_REGION;
  if (!accountId) throw new TypeError(`${who}: ALIBABA_ACCOUNT_ID (or FC_ACCOUNT_ID) is not set`);
  if (!region) throw new TypeError(`${who}: ALIBABA_REGION (or FC_REGION) is not set`);
  const timeout = Number(env.FUNCTION_TIMEOUT_MS ?? 120_000);
  return {
    accountId,
    region,
    ...(env.INVOKE_ENDPOINT ? { endpoint: env.INVOKE_ENDPOINT } : {}),
    internal: env.INVOKE_INTERNAL === 'true' || env.INVOKE_INTERNAL === '1',
    ...(env.INVOKE_QUALIFIER ? { qualifier: env.INVOKE_QUALIFIER } : {}),
    credentials: envCredentials(env),
    timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : 120_000,
  };
}

/**
 * Build an FcInvoker from the environment a function instance gets (see fcFunctionEnv in
 * src/emulators/fc-server.ts, or FC's own variables):
 * - INVOKE_ENDPOINT (optional; default endpoint of the account/region),
 * - ALIBABA_ACCOUNT_ID (or FC_ACCOUNT_ID), ALIBABA_REGION (or FC_REGION),
 * - credentials: envCredentials(env) (ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET/SECURITY_TOKEN),
 * - INVOKE_INTERNAL=true for the VPC endpoint, INVOKE_QUALIFIER, FUNCTION_TIMEOUT_MS (default 120 s).
 */
export function fcInvokerFromEnv(env: Record<string, string | undefined> = process.env, overrides: Partial<FcInvokerOptions> = {}): FcInvoker {
  return new FcInvoker({
    ...invokerOptionsFromEnv(env, 'fcInvokerFromEnv'),
    ...overrides,
  });
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = String(v);
  return out;
}

function num(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}
