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
 */
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import querystring from 'node:querystring';
import { z } from 'zod';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  FunctionCrashedError,
  FunctionError,
  FunctionNotFoundError,
  FunctionTimeoutError,
  PayloadTooLargeError,
} from '../invoke/errors.ts';
import { FC_EMULATOR_HEADERS, FC_HEADERS } from '../invoke/fc-invoker.ts';
import type { InvokeResult } from '../invoke/invoker.ts';
import { ProcessPoolInvoker } from '../invoke/process-pool.ts';
import type { LocalFunctionConfig } from '../invoke/process-pool.ts';

export interface FcServerCredential {
  accessKeyId: string;
  accessKeySecret: string;
  /** Set for STS credentials: requests must then carry this `x-acs-security-token`. */
  securityToken?: string;
}

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

/** Fractions of invocations that get each fault. */
export const fcFaultsSchema = z.object({
  throttle: z.number().min(0).max(1).default(0),
  crash: z.number().min(0).max(1).default(0),
}).strict();
export type FcFaults = z.infer<typeof fcFaultsSchema>;

/** `throttle:0.05,crash:0.01` (the FC_EMULATOR_FAULTS syntax); an empty string means none. */
export const fcFaultsSpecSchema = z.string().transform((spec, ctx) => {
  const out: Record<string, number> = {};
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z]+):([0-9]*\.?[0-9]+(?:e-?\d+)?)$/i.exec(part);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not <fault>:<fraction> (e.g. throttle:0.05,crash:0.01)` });
      return z.NEVER;
    }
    if (Object.hasOwn(out, m[1])) {
      ctx.addIssue({ code: 'custom', message: `fault ${m[1]} given twice` });
      return z.NEVER;
    }
    out[m[1]] = Number(m[2]);
  }
  return out;
}).pipe(fcFaultsSchema);

/** Parse FC_EMULATOR_FAULTS; the error names the variable and what was wrong. */
export function parseFcFaults(spec: string | undefined, what = 'FC_EMULATOR_FAULTS'): FcFaults {
  const r = fcFaultsSpecSchema.safeParse(spec ?? '');
  if (!r.success) throw new TypeError(`${what}=${JSON.stringify(spec)}: ${r.error.issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ')}`);
  return r.data;
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
const SIGNATURE_ALGORITHM = 'ACS3-HMAC-SHA256';
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

/** The FC 2.0 string to sign (see the module comment; @alicloud/fc2's helper.composeStringToSign). */
export function fc2StringToSign(p: { method: string; path: string; headers: Record<string, string> }): string {
  const h = p.headers;
  const fcHeaders = Object.keys(h).filter((k) => k.startsWith('x-fc-')).sort().map((k) => `${k}:${h[k]}\n`).join('');
  return `${p.method}\n${h['content-md5'] ?? ''}\n${h['content-type'] ?? ''}\n${h.date ?? ''}\n${fcHeaders}${p.path}`;
}

/** base64(HMAC-SHA256(secret, stringToSign)), as `FC <ak>:<this>`. */
export function fc2Signature(secret: string, stringToSign: string): string {
  return createHmac('sha256', secret).update(stringToSign, 'utf8').digest('base64');
}

/** FC 2.0's content-md5 as @alicloud/fc2 computes it: base64 of the hex digest. */
export function fc2ContentMd5(body: Buffer): string {
  return Buffer.from(createHash('md5').update(body).digest('hex'), 'utf8').toString('base64');
}

/** ACS3 `encode`: encodeURIComponent plus !'()* (as openapi-core signs query values). */
export function acsEncode(s: string): string {
  return encodeURIComponent(s).replace(/!/g, '%21').replace(/'/g, '%27').replace(/\(/g, '%28').replace(/\)/g, '%29').replace(/\*/g, '%2A');
}

/**
 * The ACS3 canonical request for the given parts (see the module comment). `headers` maps
 * lowercase names to their values (already joined if repeated); `signedHeaders` is the list from
 * the Authorization header.
 */
export function acs3CanonicalRequest(p: {
  method: string;
  rawPath: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  signedHeaders: string[];
  contentSha256: string;
}): string {
  const uri = p.rawPath.replace(/\+/g, '%20').replace(/\*/g, '%2A').replace(/%7E/g, '~');
  const query = Object.keys(p.query).sort().map((k) => `${k}=${acsEncode(p.query[k])}`).join('&');
  const headers = p.signedHeaders.map((h) => `${h}:${(p.headers[h] ?? '').trim()}\n`).join('');
  return `${p.method}\n${uri}\n${query}\n${headers}\n${p.signedHeaders.join(';')}\n${p.contentSha256}`;
}

/** hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\n" + hex(sha256(canonicalRequest)))) */
export function acs3Signature(secret: string, canonicalRequest: string): string {
  const stringToSign = `${SIGNATURE_ALGORITHM}\n${createHash('sha256').update(canonicalRequest).digest('hex')}`;
  return createHmac('sha256', secret).update(stringToSign).digest('hex');
}

class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export async function startFcServer(options: FcServerOptions): Promise<FcServer> {
  if (!options.accountId) throw new TypeError('startFcServer: accountId is required');
  if (!options.region) throw new TypeError('startFcServer: region is required');
  if (!Array.isArray(options.credentials) || options.credentials.length === 0) {
    throw new TypeError('startFcServer: at least one credential is required');
  }
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const maxSkewMs = options.maxClockSkewMs ?? 15 * 60_000;
  const keys = new Map<string, FcServerCredential>();
  for (const c of options.credentials) {
    if (!c.accessKeyId || !c.accessKeySecret) throw new TypeError('startFcServer: credentials need accessKeyId and accessKeySecret');
    keys.set(c.accessKeyId, c);
  }
  const nonces = new Map<string, number>(); // nonce → expiry (ms)
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
    const sendApiError = (e: ApiError) => {
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
        sendApiError(err instanceof ApiError ? err : new ApiError(500, 'InternalServerError', `emulator error: ${(err as Error)?.message ?? String(err)}`));
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
        throw new ApiError(400, 'InvalidArgument', `malformed ${what} name in path ${rawPath}`);
      }
    };
    const m2 = /^\/2016-08-15\/services\/([^/]+)\/functions\/([^/]+)\/invocations$/.exec(rawPath);
    if (m2 || rawPath.startsWith(`/${FC2_API_VERSION}/`)) rec.api = 'fc2';
    const m = /^\/2023-03-30\/functions\/([^/]+)\/invocations$/.exec(rawPath);
    if (!m && !m2) throw new ApiError(404, 'PathNotSupported', `'${req.method} ${rawPath}' is not supported by the FC emulator`);
    if (req.method !== 'POST') throw new ApiError(405, 'MethodNotAllowed', `'${req.method} ${rawPath}' is not supported`);
    const functionName = decode(m ? m[1] : m2![2], 'function');
    rec.functionName = functionName;
    const parsedQuery = querystring.parse(rawQuery);
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsedQuery)) {
      if (Array.isArray(v)) throw new ApiError(400, 'InvalidArgument', `query parameter ${k} given more than once`);
      query[k] = v ?? '';
    }

    // ---- authentication
    let qualifier: string | undefined;
    let service: string | undefined;
    if (m2) {
      rec.accessKeyId = verifyFc2Signature(req, rawPath, body, size);
      const target = decode(m2[1], 'service');
      const dot = target.indexOf('.');
      service = dot < 0 ? target : target.slice(0, dot);
      qualifier = dot < 0 ? undefined : target.slice(dot + 1);
      rec.service = service;
    } else {
      rec.accessKeyId = verifySignature(req, rawPath, query, body, size);
      rec.api = 'fc3';
      qualifier = query.qualifier;
    }
    if (body === undefined) {
      throw new ApiError(413, 'EntityTooLarge', `payload size exceeds maximum allowed size (${maxPayloadBytes} bytes)`);
    }

    // ---- the call
    const invocationType = header(req, 'x-fc-invocation-type') ?? 'Sync';
    if (invocationType !== 'Sync' && invocationType !== 'Async') {
      throw new ApiError(400, 'InvalidArgument', `invalid x-fc-invocation-type ${JSON.stringify(invocationType)} (Sync or Async)`);
    }
    if (service !== undefined && fc2Services && !knownServices.has(service)) {
      throw new ApiError(404, 'ServiceNotFound', `service '${service}' does not exist`);
    }
    if (qualifier !== undefined && qualifier !== '' && qualifier !== 'LATEST') {
      throw new ApiError(404, 'AliasNotFound', `alias '${qualifier}' of function '${functionName}' does not exist (the emulator serves LATEST only)`);
    }
    if (!Object.hasOwn(options.functions, functionName) || (service !== undefined && fc2Services && fc2Services[functionName] !== service)) {
      throw new ApiError(404, 'FunctionNotFound', `function '${functionName}' does not exist${service !== undefined ? ` in service '${service}'` : ''}`);
    }
    if (faults.throttle > 0 && random() < faults.throttle) {
      faultCounts.throttled++;
      throw new ApiError(429, 'ResourceThrottled', `Reserve resource exceeded limit: function '${functionName}' is throttled (injected by FC_EMULATOR_FAULTS)`);
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
      const before = faults.crash > 0 && random() < faults.crash ? new Set(busyInstances(functionName).map((i) => i.instanceId)) : undefined;
      const call = pool.invoke(functionName, body);
      if (before) killMidCall(functionName, call, before);
      result = await call;
    } catch (err) {
      const out = functionFailure(functionName, err, performance.now() - started);
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

  /**
   * Crash fault: SIGKILL the instance running this call, a few ms into it. The pool does not say
   * which instance took a call, so the victim is a busy instance of the function that was not
   * busy before the call: the call's own when it runs alone, and one call's either way.
   */
  function busyInstances(functionName: string) {
    return (pool.stats()[functionName]?.instances ?? []).filter((i) => i.state === 'busy' && i.pid !== undefined);
  }
  function killMidCall(functionName: string, call: Promise<InvokeResult>, before: Set<string>): void {
    const busyNow = () => busyInstances(functionName);
    let settled = false;
    call.then(() => { settled = true; }, () => { settled = true; });
    const deadline = Date.now() + 30_000;
    const poll = () => {
      if (settled || Date.now() > deadline) return;
      const busy = busyNow();
      const victim = busy.find((i) => !before.has(i.instanceId)) ?? (busy.length === before.size ? undefined : busy[0]);
      if (!victim) {
        setTimeout(poll, 5).unref();
        return;
      }
      setTimeout(() => {
        if (settled) return;
        try {
          process.kill(victim.pid!, 'SIGKILL');
          faultCounts.crashed++;
        } catch {
          /* already gone */
        }
      }, Math.floor(random() * 10)).unref();
    };
    setTimeout(poll, 1).unref();
  }

  /** Check the FC 2.0 `FC <ak>:<signature>` header and related headers; returns the access key ID. */
  function verifyFc2Signature(req: http.IncomingMessage, rawPath: string, body: Buffer | undefined, size: number): string {
    const auth = header(req, 'authorization');
    if (!auth) throw new ApiError(403, 'MissingAuthorization', 'the request carries no Authorization header');
    const am = /^FC ([^:\s]+):([A-Za-z0-9+/]+={0,2})$/.exec(auth.trim());
    if (!am) throw new ApiError(403, 'InvalidAuthorization', 'malformed Authorization header (expected FC <accessKeyID>:<signature>)');
    const [, accessKeyId, signature] = am;
    const cred = keys.get(accessKeyId);
    if (!cred) throw new ApiError(403, 'InvalidAccessKeyId', `invalid access key ID '${accessKeyId}'`);

    const token = header(req, 'x-fc-security-token');
    if (cred.securityToken !== undefined) {
      if (token === undefined) throw new ApiError(403, 'InvalidSecurityToken', `access key '${accessKeyId}' is an STS key: x-fc-security-token is missing`);
      if (!safeEqual(token, cred.securityToken)) throw new ApiError(403, 'InvalidSecurityToken', 'the security token is invalid or expired');
    } else if (token !== undefined) {
      throw new ApiError(403, 'InvalidSecurityToken', `access key '${accessKeyId}' is not an STS key but a security token was sent`);
    }
    const account = header(req, 'x-fc-account-id');
    if (account !== undefined && account !== options.accountId) {
      throw new ApiError(403, 'AccessDenied', `x-fc-account-id ${account} is not this endpoint's account`);
    }
    const date = header(req, 'date');
    if (!date) throw new ApiError(400, 'MissingRequiredHeader', 'required HTTP header date was not specified');
    const t = Date.parse(date);
    if (Number.isNaN(t)) throw new ApiError(400, 'InvalidArgument', `date ${JSON.stringify(date)} is not an HTTP date`);
    if (Math.abs(Date.now() - t) > maxSkewMs) {
      throw new ApiError(403, 'RequestTimeTooSkewed', `date ${date} differs from the server time by more than ${Math.round(maxSkewMs / 60_000)} minutes`);
    }
    const md5 = header(req, 'content-md5');
    if (size > 0 && md5 === undefined) throw new ApiError(400, 'MissingRequiredHeader', 'a request with a body must carry content-md5');
    const headers: Record<string, string> = {};
    for (const [name, values] of Object.entries(req.headersDistinct)) if (values) headers[name] = values.join(',');
    const expected = fc2Signature(cred.accessKeySecret, fc2StringToSign({ method: req.method ?? 'POST', path: rawPath, headers }));
    if (!safeEqual(expected, signature)) {
      throw new ApiError(403, 'SignatureNotMatch', 'The request signature we calculated does not match the signature you provided. Check your access key and signing method');
    }
    // The signature covers content-md5; the body is bound to it here (it may have been over the limit).
    if (body !== undefined && md5 !== undefined && md5 !== fc2ContentMd5(body)) {
      throw new ApiError(403, 'SignatureNotMatch', `content-md5 does not match the request body (${size} bytes)`);
    }
    return accessKeyId;
  }

  /** Check the ACS3-HMAC-SHA256 signature and related headers; returns the access key ID. */
  function verifySignature(
    req: http.IncomingMessage,
    rawPath: string,
    query: Record<string, string>,
    body: Buffer | undefined,
    size: number,
  ): string {
    const auth = header(req, 'authorization');
    if (!auth) throw new ApiError(403, 'MissingAuthorization', 'the request carries no Authorization header');
    const am = /^(\S+) Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-fA-F]+)$/.exec(auth.trim());
    if (!am) throw new ApiError(403, 'IncompleteSignature', 'malformed Authorization header (expected ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…)');
    const [, algorithm, accessKeyId, signedList, signature] = am;
    if (algorithm !== SIGNATURE_ALGORITHM) {
      throw new ApiError(403, 'SignatureNotMatch', `unsupported signature algorithm ${algorithm} (the emulator verifies ${SIGNATURE_ALGORITHM})`);
    }
    const cred = keys.get(accessKeyId);
    if (!cred) throw new ApiError(403, 'InvalidAccessKeyId', `invalid access key ID '${accessKeyId}'`);

    const token = header(req, 'x-acs-security-token');
    if (cred.securityToken !== undefined) {
      if (token === undefined) throw new ApiError(403, 'InvalidSecurityToken', `access key '${accessKeyId}' is an STS key: x-acs-security-token is missing`);
      if (!safeEqual(token, cred.securityToken)) throw new ApiError(403, 'InvalidSecurityToken', 'the security token is invalid or expired');
    } else if (token !== undefined) {
      throw new ApiError(403, 'InvalidSecurityToken', `access key '${accessKeyId}' is not an STS key but a security token was sent`);
    }
    const akHeader = header(req, 'x-acs-accesskey-id');
    if (akHeader !== undefined && akHeader !== accessKeyId) {
      throw new ApiError(403, 'SignatureNotMatch', 'x-acs-accesskey-id does not match the Authorization credential');
    }

    const date = header(req, 'x-acs-date');
    if (!date) throw new ApiError(400, 'MissingRequiredHeader', 'required HTTP header x-acs-date was not specified');
    const t = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(date) ? Date.parse(date) : NaN;
    if (Number.isNaN(t)) throw new ApiError(400, 'InvalidArgument', `x-acs-date ${JSON.stringify(date)} is not yyyy-MM-ddTHH:mm:ssZ`);
    if (Math.abs(Date.now() - t) > maxSkewMs) {
      throw new ApiError(403, 'RequestTimeTooSkewed', `x-acs-date ${date} differs from the server time by more than ${Math.round(maxSkewMs / 60_000)} minutes`);
    }
    const nonce = header(req, 'x-acs-signature-nonce');
    if (!nonce) throw new ApiError(400, 'MissingRequiredHeader', 'required HTTP header x-acs-signature-nonce was not specified');
    const contentSha = header(req, 'x-acs-content-sha256');
    if (!contentSha) throw new ApiError(400, 'MissingRequiredHeader', 'required HTTP header x-acs-content-sha256 was not specified');

    const signedHeaders = signedList.split(';');
    const signedSet = new Set(signedHeaders);
    for (const name of ['host', 'x-acs-date', 'x-acs-signature-nonce', 'x-acs-content-sha256']) {
      if (!signedSet.has(name)) throw new ApiError(403, 'SignatureNotMatch', `header ${name} must be signed`);
    }
    for (const name of Object.keys(req.headers)) {
      if ((name === 'content-type' || name.startsWith('x-acs-')) && !signedSet.has(name)) {
        throw new ApiError(403, 'SignatureNotMatch', `header ${name} is present but not signed`);
      }
    }
    // Only now that the request is authentic-looking do we look at the body (it may have been over the limit).
    if (body !== undefined) {
      const actual = createHash('sha256').update(body).digest('hex');
      if (actual !== contentSha.toLowerCase()) {
        throw new ApiError(403, 'SignatureNotMatch', `x-acs-content-sha256 does not match the request body (${size} bytes)`);
      }
    }
    const headers: Record<string, string> = {};
    for (const name of signedHeaders) {
      const values = req.headersDistinct[name];
      headers[name] = values ? values.map((v) => v.trim()).sort().join(',') : '';
    }
    const canonical = acs3CanonicalRequest({
      method: req.method ?? 'POST',
      rawPath,
      query,
      headers,
      signedHeaders,
      contentSha256: contentSha,
    });
    const expected = acs3Signature(cred.accessKeySecret, canonical);
    if (!safeEqual(expected, signature.toLowerCase())) {
      throw new ApiError(403, 'SignatureNotMatch', 'The request signature we calculated does not match the signature you provided. Check your access key and signing method');
    }
    // Replay protection: a nonce is good once within the skew window.
    const now = Date.now();
    if (nonces.size > 10_000) for (const [k, exp] of nonces) if (exp < now) nonces.delete(k);
    const seen = nonces.get(nonce);
    if (seen !== undefined && seen >= now) throw new ApiError(403, 'SignatureNonceUsed', `signature nonce ${nonce} was already used`);
    nonces.set(nonce, now + 2 * maxSkewMs);
    return accessKeyId;
  }

  /** How FC reports a failed invocation (200 + x-fc-error-type); undefined for errors it reports otherwise. */
  function functionFailure(functionName: string, err: unknown, elapsedMs: number):
    | { body: Record<string, unknown>; instanceId?: string; kind?: string }
    | undefined {
    const peakMb = (instanceId: string | undefined) => {
      const inst = instanceId ? pool.stats()[functionName]?.instances.find((i) => i.instanceId === instanceId) : undefined;
      return inst ? (inst.peakRssBytes / (1024 * 1024)).toFixed(2) : '0';
    };
    if (err instanceof FunctionError) {
      const body: Record<string, unknown> = {
        errorMessage: err.errorMessage,
        errorType: err.errorType,
        stackTrace: err.remoteStack ? err.remoteStack.split('\n') : [],
      };
      if (err.details !== undefined) body.details = err.details;
      return { body, instanceId: err.instanceId };
    }
    if (err instanceof FunctionTimeoutError) {
      const secs = Number((err.timeoutMs / 1000).toFixed(3));
      return {
        kind: 'timeout',
        instanceId: err.instanceId,
        body: {
          errorMessage: `Function timed out after ${secs} seconds (maxMemoryUsage: ${peakMb(err.instanceId)}MB)`,
          timeoutMs: err.timeoutMs,
          detail: err.message,
        },
      };
    }
    if (err instanceof FunctionCrashedError) {
      return {
        kind: 'crash',
        instanceId: err.instanceId,
        body: {
          errorMessage: `Process exited unexpectedly before completing request (duration: ${Math.round(elapsedMs)}ms, ` +
            `maxMemoryUsage: ${peakMb(err.instanceId)}MB): ${err.message}`,
          exitCode: err.exitCode,
          signal: err.signal,
          outOfMemory: err.outOfMemory,
        },
      };
    }
    if (err instanceof PayloadTooLargeError && err.direction === 'response') {
      return {
        kind: 'response-too-large',
        instanceId: err.instanceId,
        body: {
          errorMessage: `response payload size ${err.sizeBytes} exceeds maximum allowed size (${err.maxBytes} bytes)`,
          sizeBytes: err.sizeBytes,
          maxBytes: err.maxBytes,
        },
      };
    }
    if (err instanceof PayloadTooLargeError) {
      throw new ApiError(413, 'EntityTooLarge', `payload size exceeds maximum allowed size (${err.maxBytes} bytes)`);
    }
    if (err instanceof FunctionNotFoundError) throw new ApiError(404, 'FunctionNotFound', `function '${functionName}' does not exist`);
    return undefined;
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

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
