/**
 * ObjectStore on Alibaba Cloud OSS through the official `ali-oss` SDK.
 *
 * - Same key rules as FsStore (validateKey / validatePrefix), checked before any request.
 * - Ranged get sends `Range: bytes=a-(b-1)` plus `x-oss-range-behavior: standard` and
 *   checks the answer: OSS without that header ignores an out-of-bounds range and
 *   returns 200 with the whole object, so a 200 is validated against the object's
 *   length, a 206 against `Content-Range`, a 416 is InvalidRangeError.
 * - delete uses DeleteMultipleObjects (quiet) in batches of at most 1000 keys.
 * - list pages through ListObjectsV2 (1000 keys a page) and sorts by UTF-8 bytes.
 * - Credentials come from a CredentialsProvider; STS credentials are re-read
 *   when they come within 5 minutes of `expiration` (the client is rebuilt), and
 *   once more after an expired/invalid-token answer if the provider has newer ones.
 * - SDK errors are translated into the StoreError classes of ./errors.ts; the
 *   message names the operation, the key and the OSS error code and request id. 5xx answers
 *   and broken connections are StoreUnavailableError, so a RetryingStore retries them.
 * - Integrity: OSS returns the stored object's CRC-64 (`x-oss-hash-crc64ecma`) on put and
 *   get; ali-oss does not check it, so we do (whole-object reads and every put). A ranged read
 *   only gets the whole object's CRC, so it is checked for its length here and by the
 *   caller's own checksum (bundle segments carry a CRC-32). A mismatch is StoreIntegrityError.
 */
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import type { ObjectStore } from './object-store.ts';
import {
  InvalidRangeError,
  ObjectNotFoundError,
  StoreAuthError,
  StoreError,
  StoreIntegrityError,
  StoreThrottledError,
  StoreTimeoutError,
  StoreUnavailableError,
  compareKeys,
  validateKey,
  validatePrefix,
  validateRange,
} from './errors.ts';
import { crc64 } from './crc64.ts';
import { CachedCredentials, CredentialsError, sameCredentials } from '../cloud/credentials.ts';
import type { Credentials, CredentialsProvider } from '../cloud/credentials.ts';

export type { Credentials, CredentialsProvider } from '../cloud/credentials.ts';

export interface OssStoreOptions {
  bucket: string;
  /** e.g. `cn-hangzhou` or `oss-cn-hangzhou` (used when no endpoint is given). */
  region?: string;
  /** Explicit endpoint, e.g. `http://127.0.0.1:9100` for the loopback server. Overrides region. */
  endpoint?: string;
  /** Use the region's internal (VPC) endpoint, as inside Function Compute. */
  internal?: boolean;
  /** HTTPS for region endpoints (default true). An explicit endpoint's scheme wins. */
  secure?: boolean;
  /** Path-style URLs (`/<bucket>/<key>`). Default: true for an IP or localhost endpoint, else false. */
  sldEnable?: boolean;
  /** Per-request timeout. Default 60 s. */
  timeoutMs?: number;
  credentials: CredentialsProvider;
  /** Keys per ListObjectsV2 page, 1..1000 (default 1000). */
  listPageSize?: number;
  /** Keys per DeleteMultipleObjects request, 1..1000 (default 1000). */
  deleteBatchSize?: number;
  /** Parallel DeleteMultipleObjects requests (default 4). */
  deleteConcurrency?: number;
  /** Re-read credentials this long before they expire (default 5 minutes). */
  refreshMarginMs?: number;
  /** Check OSS's CRC-64 of every put and whole-object get (default true). */
  verifyCrc64?: boolean;
}

/** The part of the ali-oss client we use (the package ships no TypeScript types). */
interface AliOssClient {
  get(name: string, options?: { headers?: Record<string, string>; timeout?: number }): Promise<{ content: Buffer | undefined; res: AliOssResponse }>;
  put(name: string, body: Buffer, options?: { mime?: string; headers?: Record<string, string>; timeout?: number }): Promise<{ res: AliOssResponse }>;
  deleteMulti(names: string[], options?: { quiet?: boolean; timeout?: number }): Promise<{ deleted: unknown[]; res: AliOssResponse }>;
  listV2(query: Record<string, string>, options?: { timeout?: number }): Promise<{
    objects: Array<{ name: string; size: number }>;
    isTruncated: boolean;
    nextContinuationToken: string | null;
    res: AliOssResponse;
  }>;
}

interface AliOssResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

type AliOssConstructor = new (options: Record<string, unknown>) => AliOssClient;

const requireCjs = createRequire(import.meta.url);
let OSSClass: AliOssConstructor | undefined;
function loadAliOss(): AliOssConstructor {
  return (OSSClass ??= requireCjs('ali-oss') as AliOssConstructor);
}

/** Error codes (or SDK error names) meaning "the credentials were rejected". */
const AUTH_CODES = new Set([
  'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'SecurityTokenExpired', 'InvalidSecurityToken',
  'RequestTimeTooSkewed', 'AccessForbidden', 'UserDisable', 'InvalidToken',
]);
/** Codes after which fresher credentials might help. */
const STALE_CREDENTIAL_CODES = new Set(['SecurityTokenExpired', 'InvalidSecurityToken', 'InvalidAccessKeyId']);
const THROTTLE_CODES = new Set(['SlowDown', 'Throttling', 'TooManyRequests', 'RequestRateExceeded', 'QpsLimitExceeded', 'ServiceUnavailable', 'DownloadTrafficRateLimitExceeded', 'UploadTrafficRateLimitExceeded']);
/** Node/urllib codes of a connection that broke or never opened. */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ResponseError', 'RequestError', 'SocketError', 'ConnectionError', 'UND_ERR_SOCKET']);
const TIMEOUT_NAMES = new Set(['ResponseTimeoutError', 'ConnectionTimeoutError', 'SocketAssignTimeoutError', 'RequestTimeout', 'RequestTimeoutError']);

const MAX_BATCH = 1000;

export class OssStore implements ObjectStore {
  readonly bucket: string;
  private readonly baseOptions: Record<string, unknown>;
  private readonly creds: CachedCredentials;
  private readonly listPageSize: number;
  private readonly deleteBatchSize: number;
  private readonly deleteConcurrency: number;
  private readonly timeoutMs: number;
  private readonly verifyCrc64: boolean;
  private current: { creds: Credentials; client: AliOssClient } | undefined;

  constructor(options: OssStoreOptions) {
    if (!options?.bucket) throw new TypeError('OssStore: bucket is required');
    if (!options.credentials || typeof options.credentials.get !== 'function') throw new TypeError('OssStore: credentials provider is required');
    if (!options.endpoint && !options.region) throw new TypeError('OssStore: region or endpoint is required');
    this.bucket = options.bucket;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.verifyCrc64 = options.verifyCrc64 ?? true;
    this.listPageSize = checkBatch(options.listPageSize, 'listPageSize');
    this.deleteBatchSize = checkBatch(options.deleteBatchSize, 'deleteBatchSize');
    this.deleteConcurrency = Math.max(1, Math.floor(options.deleteConcurrency ?? 4));
    this.creds = new CachedCredentials(options.credentials, { refreshMarginMs: options.refreshMarginMs });

    const base: Record<string, unknown> = { bucket: options.bucket, timeout: this.timeoutMs, secure: options.secure ?? true };
    if (options.endpoint) {
      base.endpoint = options.endpoint;
      base.sldEnable = options.sldEnable ?? isLocalEndpoint(options.endpoint);
    } else {
      const region = options.region!;
      base.region = region.startsWith('oss-') ? region : `oss-${region}`;
      base.internal = options.internal ?? false;
      base.sldEnable = options.sldEnable ?? false;
    }
    this.baseOptions = base;
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Buffer> {
    validateKey(key);
    if (range === undefined) {
      const { content, res } = await this.call('get', key, (c) => c.get(key, { timeout: this.timeoutMs }));
      const body = toBuffer(content);
      this.checkCrc('get', key, res, body);
      return body;
    }
    // Malformed ranges (non-integers, negative, empty) are rejected before any request;
    // bounds are checked against what OSS reports about the object.
    validateRange(key, range, Number.MAX_SAFE_INTEGER);
    const { start, end } = range;
    let result: { content: Buffer | undefined; res: AliOssResponse };
    try {
      result = await this.call('get', key, (c) =>
        c.get(key, { headers: { Range: `bytes=${start}-${end - 1}`, 'x-oss-range-behavior': 'standard' }, timeout: this.timeoutMs }),
      );
    } catch (err) {
      if (err instanceof InvalidRangeError) {
        // 416: the start is at or past the end of the object.
        throw new InvalidRangeError(`range out of bounds for ${JSON.stringify(key)}: [${start}, ${end}) starts past the end of the object (${err.message})`, { key, cause: err.cause });
      }
      throw err;
    }
    const body = toBuffer(result.content);
    const status = result.res.status;
    if (status === 200) {
      // OSS ignored the range (out of bounds without standard range behaviour): body is the whole object.
      this.checkCrc('get', key, result.res, body);
      validateRange(key, range, body.length);
      return body.subarray(start, end);
    }
    if (status !== 206) throw new StoreError(`oss get ${JSON.stringify(key)}: unexpected status ${status} for a ranged read`, { key });
    const cr = parseContentRange(headerOf(result.res, 'content-range'));
    if (!cr) throw new StoreError(`oss get ${JSON.stringify(key)}: 206 without a valid Content-Range header`, { key });
    if (cr.size !== undefined) validateRange(key, range, cr.size); // OSS clipped the end to the object's size
    if (cr.first !== start || cr.last !== end - 1 || body.length !== end - start) {
      // A short body under a right Content-Range is damage on the way: worth another try.
      const Cls = cr.first === start && cr.last === end - 1 ? StoreIntegrityError : StoreError;
      throw new Cls(
        `oss get ${JSON.stringify(key)}: asked for bytes ${start}-${end - 1}, got Content-Range ${cr.first}-${cr.last} with ${body.length} bytes`,
        { key },
      );
    }
    return body;
  }

  async put(key: string, body: Buffer | Uint8Array): Promise<void> {
    validateKey(key);
    if (!(body instanceof Uint8Array)) throw new TypeError(`put(${JSON.stringify(key)}): body must be a Buffer or Uint8Array`);
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    // The SDK sends Content-MD5, so OSS rejects a body damaged in transit.
    const { res } = await this.call('put', key, (c) => c.put(key, buf, { mime: 'application/octet-stream', timeout: this.timeoutMs }));
    this.checkCrc('put', key, res, buf);
  }

  /** Compares OSS's CRC-64 of the object with the bytes we sent or received (no header: no check). */
  private checkCrc(op: 'get' | 'put', key: string, res: AliOssResponse | undefined, body: Buffer): void {
    if (!this.verifyCrc64) return;
    const want = headerOf(res, 'x-oss-hash-crc64ecma');
    if (want === undefined) return;
    const got = crc64(body);
    if (got !== want) {
      const what = op === 'put' ? 'OSS stored' : 'we received';
      throw new StoreIntegrityError(
        `oss ${op} ${JSON.stringify(key)}: CRC-64 mismatch, ${what} a different body (${body.length} bytes here, CRC-64 ${got}; OSS says ${want})`,
        { key },
      );
    }
  }

  async delete(keys: string[]): Promise<void> {
    for (const k of keys) validateKey(k);
    const unique = [...new Set(keys)];
    const batches: string[][] = [];
    for (let i = 0; i < unique.length; i += this.deleteBatchSize) batches.push(unique.slice(i, i + this.deleteBatchSize));
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const batch = batches[next++];
        const label = batch.length === 1 ? batch[0] : `${batch[0]} (+${batch.length - 1} more)`;
        await this.call('delete', label, (c) => c.deleteMulti(batch, { quiet: true, timeout: this.timeoutMs }));
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.deleteConcurrency, batches.length) }, worker));
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    const out: string[] = [];
    let token: string | null = null;
    for (;;) {
      const query: Record<string, string> = { 'max-keys': String(this.listPageSize) };
      if (prefix) query.prefix = prefix;
      if (token) query['continuation-token'] = token;
      const page = await this.call('list', prefix, (c) => c.listV2({ ...query }, { timeout: this.timeoutMs }));
      for (const o of page.objects ?? []) out.push(o.name);
      if (!page.isTruncated) break;
      if (!page.nextContinuationToken || page.nextContinuationToken === token) {
        throw new StoreError(`oss list ${JSON.stringify(prefix)}: truncated page without a new continuation token`, { key: prefix });
      }
      token = page.nextContinuationToken;
    }
    return out.sort(compareKeys);
  }

  /** Run one SDK call with current credentials; translate errors; retry once if the provider has fresher credentials. */
  private async call<T>(op: string, key: string, fn: (client: AliOssClient) => Promise<T>): Promise<T> {
    const first = await this.client(key);
    try {
      return await fn(first.client);
    } catch (err) {
      if (!STALE_CREDENTIAL_CODES.has(codeOf(err))) throw translateError(err, op, key);
      // The credentials were rejected as expired/unknown: maybe the provider has newer ones
      // than our cache (rotated early, or given without an expiration). Retry once if so.
      this.creds.invalidate();
      let second: { client: AliOssClient; creds: Credentials };
      try {
        second = await this.client(key);
      } catch {
        throw translateError(err, op, key);
      }
      if (sameCredentials(second.creds, first.creds)) throw translateError(err, op, key);
      try {
        return await fn(second.client);
      } catch (err2) {
        throw translateError(err2, op, key);
      }
    }
  }

  private async client(key: string): Promise<{ client: AliOssClient; creds: Credentials }> {
    let creds: Credentials;
    try {
      creds = await this.creds.get();
    } catch (err) {
      const msg = err instanceof CredentialsError ? err.message : `credentials provider failed: ${(err as Error)?.message ?? String(err)}`;
      throw new StoreAuthError(`oss: ${msg}`, { key, cause: err });
    }
    const cur = this.current;
    if (cur && cur.creds === creds) return cur;
    if (cur && sameCredentials(cur.creds, creds)) {
      // Same keys (e.g. re-read after invalidate): keep the client.
      this.current = { creds, client: cur.client };
      return this.current;
    }
    const OSS = loadAliOss();
    const opts: Record<string, unknown> = { ...this.baseOptions, accessKeyId: creds.accessKeyId, accessKeySecret: creds.accessKeySecret };
    if (creds.securityToken) {
      opts.stsToken = creds.securityToken;
      // We refresh ourselves (before expiration, rebuilding the client); setting an interval
      // without refreshSTSToken only silences the SDK's console warning about it.
      opts.refreshSTSTokenInterval = Number.MAX_SAFE_INTEGER;
    }
    this.current = { creds, client: new OSS(opts) };
    return this.current;
  }
}

interface SdkError {
  name?: string;
  code?: string;
  status?: number;
  requestId?: string;
  message?: string;
}

function codeOf(err: unknown): string {
  const e = err as SdkError | undefined;
  if (!e || typeof e !== 'object') return '';
  if (typeof e.code === 'string' && e.code) return e.code;
  return typeof e.name === 'string' ? e.name.replace(/Error$/, '') : '';
}

/** ali-oss errors carry an HTTP status (-1 network, -2 timeout), a request id, or a urllib timeout name. */
function isSdkError(err: unknown): err is SdkError & Error {
  if (!(err instanceof Error)) return false;
  const e = err as SdkError;
  return typeof e.status === 'number' || typeof e.requestId === 'string' || TIMEOUT_NAMES.has(err.name);
}

/**
 * Map an ali-oss (or urllib) error to a StoreError subclass. Errors that do not
 * come from a request (programming errors) are returned unchanged.
 */
export function translateError(err: unknown, op: string, key: string): unknown {
  if (err instanceof StoreError) return err;
  if (!isSdkError(err)) return err;
  const status = err.status;
  const code = err.code || (err.name ? err.name.replace(/Error$/, '') : 'Unknown');
  const details = `${code}${status !== undefined && status > 0 ? ` (HTTP ${status})` : ''}: ${err.message}${err.requestId ? ` [request id ${err.requestId}]` : ''}`;
  const what = `oss ${op} ${JSON.stringify(key)}`;
  if (code === 'InvalidDigest') {
    return new StoreIntegrityError(`${what}: the body was damaged on the way: ${details}`, { key, cause: err });
  }
  if (code === 'NoSuchKey') {
    return new ObjectNotFoundError(key, { cause: err, message: `object not found: ${JSON.stringify(key)} (OSS ${details})` });
  }
  if (TIMEOUT_NAMES.has(err.name) || TIMEOUT_NAMES.has(code) || status === -2) {
    return new StoreTimeoutError(`${what} timed out: ${details}`, { key, cause: err });
  }
  if (status === 429 || status === 503 || THROTTLE_CODES.has(code)) {
    return new StoreThrottledError(`${what} throttled: ${details}`, { key, cause: err });
  }
  if (status === 401 || status === 403 || AUTH_CODES.has(code)) {
    return new StoreAuthError(`${what} denied: ${details}`, { key, cause: err });
  }
  if (status === 416 || code === 'InvalidRange') {
    return new InvalidRangeError(`${what}: range not satisfiable: ${details}`, { key, cause: err });
  }
  if ((status !== undefined && status >= 500) || status === -1 || NETWORK_CODES.has(code) || NETWORK_CODES.has((err as { code?: string }).code ?? '')) {
    return new StoreUnavailableError(`${what} failed: ${details}`, { key, cause: err });
  }
  return new StoreError(`${what} failed: ${details}`, { key, cause: err });
}

function checkBatch(n: number | undefined, name: string): number {
  if (n === undefined) return MAX_BATCH;
  if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH) throw new TypeError(`OssStore: ${name} must be an integer from 1 to ${MAX_BATCH}`);
  return n;
}

function isLocalEndpoint(endpoint: string): boolean {
  let host: string;
  try {
    host = new URL(/^[a-z]+:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`).hostname;
  } catch {
    return false;
  }
  host = host.replace(/^\[|\]$/g, '');
  return isIP(host) !== 0 || host === 'localhost';
}

function toBuffer(content: unknown): Buffer {
  if (Buffer.isBuffer(content)) return content;
  if (content === undefined || content === null || content === '') return Buffer.alloc(0);
  if (content instanceof Uint8Array) return Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  if (typeof content === 'string') return Buffer.from(content, 'utf8');
  throw new StoreError(`oss get: unexpected response body type ${typeof content}`);
}

function headerOf(res: AliOssResponse | undefined, name: string): string | undefined {
  const v = res?.headers?.[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseContentRange(v: string | undefined): { first: number; last: number; size?: number } | { first?: undefined; last?: undefined; size: number } | undefined {
  if (!v) return undefined;
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(v.trim());
  if (!m) return undefined;
  const size = m[3] === '*' ? undefined : Number(m[3]);
  if (m[1] === undefined) return size === undefined ? undefined : { size };
  return { first: Number(m[1]), last: Number(m[2]), size };
}
