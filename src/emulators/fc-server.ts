/**
 * Loopback Function Compute 3.0 server: speaks the InvokeFunction API
 * (`POST /2023-03-30/functions/{functionName}/invocations[?qualifier=]`) well enough that the
 * official SDK (`@alicloud/fc20230330`, hence FcInvoker) works against it, and runs the functions
 * as local processes through an internal ProcessPoolInvoker.
 *
 * Request authentication, as FC does it (and as `@alicloud/openapi-core` signs):
 *   Authorization: ACS3-HMAC-SHA256 Credential=<ak>,SignedHeaders=<h1;h2;…>,Signature=<hex>
 *   canonical request = METHOD \n canonical URI \n canonical query \n canonical headers \n
 *                       signed headers \n hex(sha256(body))
 *   - canonical URI: the path as sent, with `+`→%20, `*`→%2A, %7E→~;
 *   - canonical query: `k=encode(v)` sorted by key, joined by `&` (encode = encodeURIComponent
 *     plus !'()* escaped);
 *   - canonical headers: `name:value\n` for each signed header (lowercase, trimmed), sorted; the
 *     SDK signs `host`, `content-type` and every `x-acs-*` header;
 *   - string to sign: `ACS3-HMAC-SHA256\n` + hex(sha256(canonical request));
 *   - signature: hex(HMAC-SHA256(accessKeySecret, string to sign)).
 *   The server also requires `x-acs-content-sha256` to equal the body's hash, every present
 *   `x-acs-*`/`content-type`/`host` header to be signed, `x-acs-date` within 15 minutes, a fresh
 *   `x-acs-signature-nonce`, and `x-acs-security-token` to match when the credential is an STS one.
 *   Failures: 403 InvalidAccessKeyId / SignatureNotMatch / InvalidSecurityToken /
 *   RequestTimeTooSkewed / SignatureNonceUsed, as FC 3.0 JSON `{Code, Message, RequestId}`.
 *
 * Function outcomes, as FC reports them:
 *   - success: 200, body = the function's bytes, `x-fc-request-id`, `x-fc-instance-id`;
 *   - thrown error: 200 + `x-fc-error-type: UnhandledInvocationError`, body
 *     `{errorMessage, errorType, stackTrace}` (plus `details` when the error had some);
 *   - crash: the same, with FC's `Process exited unexpectedly before completing request (…)`
 *     message followed by the local crash description (exit code, signal, OOM, stderr tail);
 *   - timeout: the same, with FC's `Function timed out after N seconds (…)` message;
 *   - unknown function: 404 FunctionNotFound; request body over the limit: 413 EntityTooLarge.
 * Emulator-only extras (never sent by the real FC): `x-fc-emulator-cold-start`,
 * `x-fc-emulator-duration-ms`, `x-fc-emulator-init-ms`, `x-fc-emulator-peak-rss` on success,
 * `x-fc-emulator-error-kind` (timeout | crash | response-too-large) and the fields `timeoutMs`,
 * `exitCode`, `signal`, `outOfMemory` in error bodies. See FC_EMULATOR_HEADERS.
 *
 * FC 2.0 (API version 2016-08-15, `@alicloud/fc2`, hence Fc2Invoker) is served on the same port:
 *   POST /2016-08-15/services/<service>[.<qualifier>]/functions/<fn>/invocations
 *   Authorization: FC <ak>:base64(HMAC-SHA256(secret, stringToSign)), where, as the SDK's
 *   lib/helper.js composes it,
 *   stringToSign = METHOD \n content-md5 \n content-type \n date \n
 *                  <every x-fc-* header, lowercase, sorted, as `name:value\n`> <path>
 *   (the path as sent, no query: invocations sign none). `content-md5` is what the SDK sends:
 *   base64 of the *hex* MD5 of the body; a request with a body must carry it and it must match.
 *   `date` (RFC 1123) within 15 minutes; `x-fc-security-token` required and equal for STS keys,
 *   refused for others; `x-fc-account-id`, if sent, must be this account. FC 2.0 has no nonce,
 *   so a replay within the date window is accepted, as by FC itself. Errors are FC 2.0 JSON
 *   `{ErrorCode, ErrorMessage, RequestId}` (the SDK reads ErrorCode and ErrorMessage). With
 *   `fc2Services`, a function answers only under its service (404 ServiceNotFound /
 *   FunctionNotFound otherwise); without it, under any service name. Function outcomes are
 *   reported exactly as for FC 3.0 (200 + x-fc-error-type, ...).
 *
 * Fault injection (both API generations), `faults` / FC_EMULATOR_FAULTS = `throttle:0.05,crash:0.01`:
 *   - throttle: that fraction of authenticated invocations is refused with 429 ResourceThrottled
 *     (the function does not run), as FC does past an instance quota;
 *   - crash: for that fraction, the instance serving the call is SIGKILLed while it runs
 *     (FC's "Process exited unexpectedly" answer follows; the pool starts a new instance).
 *   Counts are in `server.faults`.
 *
 * Functions launched here invoke other functions through this server too: each instance gets
 * fcFunctionEnv() (INVOKER=fc or fc2, INVOKE_ENDPOINT, ALIBABA_ACCOUNT_ID, ALIBABA_REGION,
 * ALIBABA_CLOUD_*, and FC_SERVICE_NAME for fc2) merged over its LocalFunctionConfig.env.
 *
 * This module is the routing and the invocation; signing is in fc-signing.ts, faults in
 * fc-faults.ts, and the error answers in fc-failures.ts.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import querystring from 'node:querystring';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../invoke/errors.ts';
import { FC_EMULATOR_HEADERS, FC_HEADERS } from '../invoke/fc-invoker.ts';
import type { InvokeResult } from '../invoke/invoker.ts';
import { ProcessPoolInvoker } from '../invoke/process-pool.ts';
import type { LocalFunctionConfig } from '../invoke/process-pool.ts';
import { busyInstances, fcFaultsSchema, killMidCall, parseFcFaults, type FcFaults } from './fc-faults.ts';
import { FcApiError, functionFailure } from './fc-failures.ts';
import { FcRequestVerifier, header, type FcServerCredential } from './fc-signing.ts';

export interface FcServerOptions {
  /** Default 0 (any free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  accountId: string;
  region: string;
  /** Accepted credentials. */
  credentials: FcServerCredential[];
  /** Functions, as ProcessPoolInvoker takes them. */
  functions: Record<string, LocalFunctionConfig>;
  /** Request/response payload limit. Default 32 MB. */
  maxPayloadBytes?: number;
  /** Credentials handed to function instances (their "role"). Default credentials[0]. */
  functionCredential?: FcServerCredential;
  /** Instance logs (ProcessPoolInvoker option). Default 'forward'. */
  logs?: 'forward' | 'silent';
  /** Allowed clock skew of `x-acs-date` / `date`. Default 15 minutes. */
  maxClockSkewMs?: number;
  /** Which SDK the functions' own invocations use (INVOKER in their env). Default 'fc'. */
  functionInvoker?: 'fc' | 'fc2';
  /** FC 2.0: the service of each function. Default: every function answers under any service. */
  fc2Services?: Record<string, string>;
  /** Injected faults (see the module comment), or their FC_EMULATOR_FAULTS spec. Default none. */
  faults?: FcFaults | string;
  /** Random source for the faults (tests pass a seeded one). Default Math.random. */
  random?: () => number;
}

/** One handled request, for tests and diagnostics. */
export interface FcRequestRecord {
  requestId: string;
  functionName: string | undefined;
  accessKeyId: string | undefined;
  status: number;
  /** FC error code (API errors) or `x-fc-error-type` (function errors). */
  code?: string;
  /** Which API the request used. */
  api?: 'fc3' | 'fc2';
  /** FC 2.0: the service named in the path. */
  service?: string;
}

export interface FcServer {
  /** `http://127.0.0.1:PORT`: pass as FcInvoker's `endpoint`. */
  endpoint: string;
  port: number;
  accountId: string;
  region: string;
  /** The pool running the function instances. */
  pool: ProcessPoolInvoker;
  /** The most recent requests (up to 1000), oldest first. */
  requests: FcRequestRecord[];
  /** Injected faults so far. */
  faults: { throttled: number; crashed: number };
  close(): Promise<void>;
}

export const FC_API_VERSION = '2023-03-30';
export const FC2_API_VERSION = '2016-08-15';
const MAX_RECORDS = 1000;

/**
 * Environment variables for a function instance so that it invokes other functions through FC
 * (the project's config selects `INVOKER=fc`): the endpoint, account, region and the
 * credentials of the function's role, plus FC's reserved FC_* variables.
 */
export function fcFunctionEnv(o: {
  endpoint: string;
  accountId: string;
  region: string;
  credential: FcServerCredential;
  functionName?: string;
  /** The SDK the function invokes through. Default 'fc'. */
  invoker?: 'fc' | 'fc2';
  /** fc2: the service the function itself lives in (its default for the functions it calls). */
  service?: string;
}): Record<string, string> {
  const env: Record<string, string> = {
    INVOKER: o.invoker ?? 'fc',
    INVOKE_ENDPOINT: o.endpoint,
    ALIBABA_ACCOUNT_ID: o.accountId,
    ALIBABA_REGION: o.region,
    ALIBABA_CLOUD_ACCESS_KEY_ID: o.credential.accessKeyId,
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: o.credential.accessKeySecret,
    FC_ACCOUNT_ID: o.accountId,
    FC_REGION: o.region,
  };
  if (o.credential.securityToken) env.ALIBABA_CLOUD_SECURITY_TOKEN = o.credential.securityToken;
  if (o.functionName) env.FC_FUNCTION_NAME = o.functionName;
  if (o.service) env.FC_SERVICE_NAME = o.service;
  return env;
}

export async function startFcServer(options: FcServerOptions): Promise<FcServer> {
  if (!options.accountId) throw new TypeError('startFcServer: accountId is required');
  if (!options.region) throw new TypeError('startFcServer: region is required');
  if (!Array.isArray(options.credentials) || options.credentials.length === 0) {
    throw new TypeError('startFcServer: at least one credential is required');
  }
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const maxSkewMs = options.maxClockSkewMs ?? 15 * 60_000;
  const verifier = new FcRequestVerifier(options.credentials, options.accountId, maxSkewMs);
  // A bad spec fails here, before anything starts, naming the variable.
  const faults = typeof options.faults === 'string' ? parseFcFaults(options.faults) : fcFaultsSchema.parse(options.faults ?? {});
  const random = options.random ?? Math.random;
  const faultCounts = { throttled: 0, crashed: 0 };
  const fc2Services = options.fc2Services;
  const knownServices = new Set(Object.values(fc2Services ?? {}));
  const requests: FcRequestRecord[] = [];
  let pool!: ProcessPoolInvoker;

  const record = (r: FcRequestRecord) => {
    requests.push(r);
    if (requests.length > MAX_RECORDS) requests.splice(0, requests.length - MAX_RECORDS);
  };

  const server = http.createServer((req, res) => {
    const requestId = randomUUID();
    const rec: FcRequestRecord = { requestId, functionName: undefined, accessKeyId: undefined, status: 0 };
    const sendFcApiError = (e: FcApiError) => {
      rec.status = e.status;
      rec.code = e.code;
      record(rec);
      const body = JSON.stringify(rec.api === 'fc2'
        ? { ErrorCode: e.code, ErrorMessage: e.message, RequestId: requestId }
        : { Code: e.code, Message: e.message, RequestId: requestId });
      if (res.headersSent || res.destroyed) return;
      res.writeHead(e.status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        [FC_HEADERS.requestId]: requestId,
      });
      res.end(body);
    };

    // Always read the whole body first (keeping at most maxPayloadBytes): every answer, errors
    // included, is sent after the upload is complete, so the client never sees a reset.
    const chunks: Buffer[] = [];
    let size = 0;
    let aborted = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxPayloadBytes) chunks.push(chunk);
    });
    req.on('error', () => {
      aborted = true;
    });
    req.on('end', () => {
      if (aborted) return;
      handle(req, res, requestId, rec, size <= maxPayloadBytes ? Buffer.concat(chunks, size) : undefined, size).catch((err: unknown) => {
        sendFcApiError(err instanceof FcApiError ? err : new FcApiError(500, 'InternalServerError', `emulator error: ${(err as Error)?.message ?? String(err)}`));
      });
    });
  });

  async function handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    requestId: string,
    rec: FcRequestRecord,
    body: Buffer | undefined,
    size: number,
  ): Promise<void> {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1);
    const decode = (part: string, what: string) => {
      try {
        return decodeURIComponent(part);
      } catch {
        throw new FcApiError(400, 'InvalidArgument', `malformed ${what} name in path ${rawPath}`);
      }
    };
    const m2 = /^\/2016-08-15\/services\/([^/]+)\/functions\/([^/]+)\/invocations$/.exec(rawPath);
    if (m2 || rawPath.startsWith(`/${FC2_API_VERSION}/`)) rec.api = 'fc2';
    const m = /^\/2023-03-30\/functions\/([^/]+)\/invocations$/.exec(rawPath);
    if (!m && !m2) throw new FcApiError(404, 'PathNotSupported', `'${req.method} ${rawPath}' is not supported by the FC emulator`);
    if (req.method !== 'POST') throw new FcApiError(405, 'MethodNotAllowed', `'${req.method} ${rawPath}' is not supported`);
    const functionName = decode(m ? m[1] : m2![2], 'function');
    rec.functionName = functionName;
    const parsedQuery = querystring.parse(rawQuery);
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsedQuery)) {
      if (Array.isArray(v)) throw new FcApiError(400, 'InvalidArgument', `query parameter ${k} given more than once`);
      query[k] = v ?? '';
    }

    // ---- authentication
    let qualifier: string | undefined;
    let service: string | undefined;
    if (m2) {
      rec.accessKeyId = verifier.verifyFc2(req, rawPath, body, size);
      const target = decode(m2[1], 'service');
      const dot = target.indexOf('.');
      service = dot < 0 ? target : target.slice(0, dot);
      qualifier = dot < 0 ? undefined : target.slice(dot + 1);
      rec.service = service;
    } else {
      rec.accessKeyId = verifier.verifyAcs3(req, rawPath, query, body, size);
      rec.api = 'fc3';
      qualifier = query.qualifier;
    }
    if (body === undefined) {
      throw new FcApiError(413, 'EntityTooLarge', `payload size exceeds maximum allowed size (${maxPayloadBytes} bytes)`);
    }

    // ---- the call
    const invocationType = header(req, 'x-fc-invocation-type') ?? 'Sync';
    if (invocationType !== 'Sync' && invocationType !== 'Async') {
      throw new FcApiError(400, 'InvalidArgument', `invalid x-fc-invocation-type ${JSON.stringify(invocationType)} (Sync or Async)`);
    }
    if (service !== undefined && fc2Services && !knownServices.has(service)) {
      throw new FcApiError(404, 'ServiceNotFound', `service '${service}' does not exist`);
    }
    if (qualifier !== undefined && qualifier !== '' && qualifier !== 'LATEST') {
      throw new FcApiError(404, 'AliasNotFound', `alias '${qualifier}' of function '${functionName}' does not exist (the emulator serves LATEST only)`);
    }
    if (!Object.hasOwn(options.functions, functionName) || (service !== undefined && fc2Services && fc2Services[functionName] !== service)) {
      throw new FcApiError(404, 'FunctionNotFound', `function '${functionName}' does not exist${service !== undefined ? ` in service '${service}'` : ''}`);
    }
    if (faults.throttle > 0 && random() < faults.throttle) {
      faultCounts.throttled++;
      throw new FcApiError(429, 'ResourceThrottled', `Reserve resource exceeded limit: function '${functionName}' is throttled (injected by FC_EMULATOR_FAULTS)`);
    }

    if (invocationType === 'Async') {
      pool.invoke(functionName, body).catch(() => {});
      rec.status = 202;
      record(rec);
      res.writeHead(202, { [FC_HEADERS.requestId]: requestId, 'content-length': 0 });
      res.end();
      return;
    }

    const started = performance.now();
    let result: InvokeResult;
    try {
      // Busy instances are noted before the call: the pool may hand it to an idle one at once.
      const before = faults.crash > 0 && random() < faults.crash ? new Set(busyInstances(pool, functionName).map((i) => i.instanceId)) : undefined;
      const call = pool.invoke(functionName, body);
      if (before) killMidCall(pool, functionName, call, before, random, () => faultCounts.crashed++);
      result = await call;
    } catch (err) {
      const out = functionFailure(pool, functionName, err, performance.now() - started);
      if (!out) throw err;
      rec.status = 200;
      rec.code = 'UnhandledInvocationError';
      record(rec);
      const text = JSON.stringify(out.body);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        [FC_HEADERS.requestId]: requestId,
        [FC_HEADERS.errorType]: 'UnhandledInvocationError',
        ...(out.instanceId ? { [FC_HEADERS.instanceId]: out.instanceId } : {}),
        ...(out.kind ? { [FC_EMULATOR_HEADERS.errorKind]: out.kind } : {}),
      });
      res.end(text);
      return;
    }
    rec.status = 200;
    record(rec);
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      'content-length': result.payload.length,
      [FC_HEADERS.requestId]: requestId,
      [FC_HEADERS.instanceId]: result.instanceId,
      [FC_EMULATOR_HEADERS.coldStart]: String(result.coldStart),
      [FC_EMULATOR_HEADERS.durationMs]: result.durationMs.toFixed(3),
    };
    if (result.initMs !== undefined) headers[FC_EMULATOR_HEADERS.initMs] = result.initMs.toFixed(3);
    if (result.peakRssBytes !== undefined) headers[FC_EMULATOR_HEADERS.peakRssBytes] = String(result.peakRssBytes);
    res.writeHead(200, headers);
    res.end(result.payload);
  }

  server.keepAliveTimeout = 65_000; // longer than clients keep idle sockets, so reuse never races a close
  server.headersTimeout = 70_000;
  server.requestTimeout = 0; // invocations may run long; FC's own limit is the function timeout

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host && options.host !== '0.0.0.0' && options.host !== '::' ? options.host : '127.0.0.1';
  const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const functionCredential = options.functionCredential ?? options.credentials[0];
  const functions: Record<string, LocalFunctionConfig> = {};
  for (const [name, config] of Object.entries(options.functions)) {
    functions[name] = {
      ...config,
      env: {
        ...(config.env ?? {}),
        ...fcFunctionEnv({
          endpoint, accountId: options.accountId, region: options.region, credential: functionCredential, functionName: name,
          ...(options.functionInvoker === 'fc2' ? { invoker: 'fc2' as const, ...(fc2Services?.[name] ? { service: fc2Services[name] } : {}) } : {}),
        }),
      },
    };
  }
  try {
    pool = new ProcessPoolInvoker({ functions, maxPayloadBytes, logs: options.logs ?? 'forward' });
  } catch (err) {
    await new Promise<void>((r) => server.close(() => r()));
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    endpoint,
    port,
    accountId: options.accountId,
    region: options.region,
    pool,
    requests,
    faults: faultCounts,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        await pool.close();
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

