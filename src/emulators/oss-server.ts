/**
 * Loopback OSS server: the subset of the Alibaba Cloud OSS REST API that the
 * OssStore uses, spoken over node:http with objects in memory, so the adapter
 * is tested through the real `ali-oss` SDK.
 *
 * - Path-style addressing only: `/<bucket>/<key>` (ali-oss with `sldEnable: true`).
 * - Operations: PutObject, GetObject (Range, incl. `x-oss-range-behavior: standard`),
 *   HeadObject (also `?objectMeta`), DeleteObject, DeleteMultipleObjects (`POST /<bucket>/?delete`),
 *   ListObjectsV2 (`GET /<bucket>/?list-type=2`). Anything else: 501 NotImplemented.
 * - Every request must carry a valid V1 signature
 *   (`Authorization: OSS <ak>:base64(HMAC-SHA1(secret, stringToSign))`), a Date
 *   or x-oss-date within 15 minutes, and, for STS credentials, the matching
 *   `x-oss-security-token` (unexpired). Content-MD5 is checked when sent
 *   (and required for DeleteMultipleObjects, as OSS does).
 * - Errors are OSS-style XML bodies with an `x-oss-request-id` header (HEAD
 *   errors carry the XML base64-encoded in `x-oss-err`, as OSS does).
 * - Objects carry OSS's CRC-64 (`x-oss-hash-crc64ecma`) on PutObject, GetObject and HeadObject.
 * - Faults: queued ones (`injectFault`) for exact tests, and random ones for whole runs
 *   (`faults`, the `OSS_EMULATOR_FAULTS` spec, see parseFaultSpec).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { crc64 } from '../store/crc64.ts';

export interface OssServerCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  /** If set, requests with this AK must send it as `x-oss-security-token`. */
  securityToken?: string;
  /** If set, requests with this AK fail with 403 SecurityTokenExpired after this time. */
  expiration?: Date;
}

export type OssOperation =
  | 'PutObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'DeleteMultipleObjects'
  | 'ListObjectsV2';

export interface OssServerOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  bucket: string;
  /** Accepted credentials (can be replaced later with `setCredentials`). */
  credentials: OssServerCredentials[];
  /** Maximum allowed clock difference for Date / x-oss-date. Default 15 minutes (OSS). */
  maxClockSkewMs?: number;
  /** Honour `x-oss-range-behavior: standard` (default true). false simulates an OSS that ignores it. */
  honourRangeBehavior?: boolean;
  /** Largest accepted request body. Default 1 GiB. */
  maxBodyBytes?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** Random faults on a fraction of requests: a parsed spec or its text (`error:0.05,truncate:0.01`). */
  faults?: FaultSpec | string;
}

const rate = z.number().min(0).max(1);

/**
 * Random faults, as fractions of authenticated requests (one draw per request, so the kinds
 * are exclusive and their sum is at most 1):
 * - `error`: a 5xx (503 SlowDown or 500 InternalError, half each);
 * - `truncate`: PutObject receives, or GetObject sends, a body cut short (a GET's
 *   Content-Length is shortened to match, so only the client's own length or CRC check sees it);
 * - `corrupt`: one byte flipped in the body PutObject receives or GetObject sends;
 * - `slow`: a delay of `slowMs` (default 3000) before the request is handled;
 * - `reset`: the connection is closed without an answer (nothing is done).
 * Truncate and corrupt touch object bodies only; other operations are left alone (their XML
 * has no checksum a client could use, and on real OSS it travels over TLS).
 * `seed` makes the draws repeatable.
 */
export const faultSpecSchema = z.object({
  error: rate.default(0),
  truncate: rate.default(0),
  corrupt: rate.default(0),
  slow: rate.default(0),
  reset: rate.default(0),
  slowMs: z.number().int().min(0).max(600_000).default(3000),
  seed: z.number().int().optional(),
}).strict().refine((f) => f.error + f.truncate + f.corrupt + f.slow + f.reset <= 1, { message: 'the fractions add up to more than 1' });
export type FaultSpec = z.infer<typeof faultSpecSchema>;
export type FaultKind = 'error' | 'truncate' | 'corrupt' | 'slow' | 'reset';

export class FaultSpecError extends Error {
  override name = 'FaultSpecError';
}

/**
 * Parses `OSS_EMULATOR_FAULTS`: comma-separated `name:value` pairs, e.g.
 * `error:0.05,truncate:0.01,corrupt:0.01,slow:0.02,slowMs:2000,seed:7`. Empty means no faults.
 */
export function parseFaultSpec(text: string): FaultSpec {
  const fields: Record<string, number> = {};
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    const m = /^([A-Za-z]+)\s*[:=]\s*(-?[0-9.eE+-]+)$/.exec(part);
    if (!m || !Number.isFinite(Number(m[2]))) throw new FaultSpecError(`OSS_EMULATOR_FAULTS: ${JSON.stringify(part)} is not name:number (e.g. error:0.05,truncate:0.01,corrupt:0.01,slow:0.02)`);
    if (m[1] in fields) throw new FaultSpecError(`OSS_EMULATOR_FAULTS: ${m[1]} is given twice`);
    fields[m[1]] = Number(m[2]);
  }
  const r = faultSpecSchema.safeParse(fields);
  if (!r.success) {
    throw new FaultSpecError(`OSS_EMULATOR_FAULTS ${JSON.stringify(text)}: ${r.error.issues.map((i) => `${i.path.join('.') || '(spec)'}: ${i.message}`).join('; ')} (known: error, truncate, corrupt, slow, reset as fractions 0..1; slowMs; seed)`);
  }
  return r.data;
}

/** mulberry32: a small seeded generator, so a fault run can be repeated. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fault to inject: make matching requests fail with an OSS error and/or respond late. */
export interface OssFault {
  /** Only requests for this operation (default: any operation). */
  operation?: OssOperation;
  /** How many requests to affect (default 1). */
  times?: number;
  /** Delay before handling (or failing) the request. */
  delayMs?: number;
  /** Fail with this HTTP status and OSS error code (e.g. 503 SlowDown). */
  status?: number;
  code?: string;
  message?: string;
  /** Damage the body PutObject receives or GetObject sends (see FaultSpec's truncate and corrupt). */
  damage?: 'truncate' | 'corrupt';
}

export interface OssServerStats {
  /** All requests received. */
  requests: number;
  /** Requests that passed authentication, per operation. */
  operations: Partial<Record<OssOperation, number>>;
  /** Error responses per OSS error code. */
  errors: Record<string, number>;
  /** Authenticated requests per AccessKey ID. */
  accessKeys: Record<string, number>;
  /** Largest number of keys in one DeleteMultipleObjects request. */
  maxDeleteBatch: number;
  /** Largest max-keys seen in a ListObjectsV2 request. */
  maxListKeys: number;
  bytesIn: number;
  bytesOut: number;
  objects: number;
  storedBytes: number;
  /** Random faults injected, per kind (only those that changed something). */
  faults: Record<FaultKind, number>;
}

export interface OssServer {
  /** e.g. `http://127.0.0.1:38211` (use with ali-oss `endpoint` and `sldEnable: true`). */
  endpoint: string;
  bucket: string;
  port: number;
  close(): Promise<void>;
  stats(): OssServerStats;
  /** Replace the accepted credentials (e.g. to rotate STS tokens). */
  setCredentials(credentials: OssServerCredentials[]): void;
  /** Queue a fault; faults are consumed in order by matching requests. */
  injectFault(fault: OssFault): void;
  clearFaults(): void;
  /** Replace the random faults (undefined: none). */
  setRandomFaults(faults: FaultSpec | string | undefined): void;
}

interface StoredObject {
  body: Buffer;
  etag: string; // uppercase hex MD5, unquoted
  crc64: string;
  lastModified: Date;
  contentType: string;
}

/**
 * Query parameters that are sub-resources, i.e. part of the V1 CanonicalizedResource
 * (OSS's list; `continuation-token` is one, which ali-oss >= 6.12 signs in listV2).
 * Ordinary query parameters (prefix, max-keys, list-type, ...) are not signed.
 */
const SIGNED_SUBRESOURCES = new Set([
  'acl', 'uploads', 'location', 'cors', 'logging', 'website', 'referer', 'lifecycle', 'delete', 'append',
  'tagging', 'objectMeta', 'uploadId', 'partNumber', 'security-token', 'position', 'img', 'style', 'styleName',
  'replication', 'replicationProgress', 'replicationLocation', 'cname', 'bucketInfo', 'comp', 'qos', 'live',
  'status', 'vod', 'startTime', 'endTime', 'symlink', 'x-oss-process', 'response-content-type',
  'response-content-language', 'response-expires', 'response-cache-control', 'response-content-disposition',
  'response-content-encoding', 'udf', 'udfName', 'udfImage', 'udfId', 'udfImageDesc', 'udfApplication',
  'udfApplicationLog', 'restore', 'callback', 'callback-var', 'policy', 'stat', 'encryption', 'versions',
  'versioning', 'versionId', 'continuation-token', 'worm', 'wormId', 'wormExtend', 'requestPayment',
  'inventory', 'inventoryId', 'x-oss-traffic-limit', 'sequential', 'resourceGroup', 'transferAcceleration',
]);

/** Sub-resources that turn a plain object/bucket request into another API we do not implement. */
const UNSUPPORTED_SUBRESOURCES = new Set([
  'acl', 'uploads', 'uploadId', 'partNumber', 'append', 'tagging', 'symlink', 'restore',
  'x-oss-process', 'versions', 'versioning', 'cors', 'lifecycle', 'website', 'referer', 'logging', 'policy',
  'bucketInfo', 'stat', 'location', 'encryption', 'inventory', 'worm', 'replication',
]);

class OssHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, string> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const MAX_KEYS_LIMIT = 1000;
const MAX_DELETE_OBJECTS = 1000;
const MAX_KEY_BYTES = 1023;

export async function startOssServer(options: OssServerOptions): Promise<OssServer> {
  const { bucket } = options;
  if (!bucket || !/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new TypeError(`startOssServer: invalid bucket name ${JSON.stringify(bucket)} (3-63 chars of a-z, 0-9, "-")`);
  }
  const maxSkewMs = options.maxClockSkewMs ?? 15 * 60_000;
  const honourRangeBehavior = options.honourRangeBehavior ?? true;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024 * 1024;
  const now = options.now ?? Date.now;

  let credentials = indexCredentials(options.credentials);
  const objects = new Map<string, StoredObject>();
  let sortedKeys: string[] | undefined; // cache, invalidated on mutation
  const faults: Array<Required<Pick<OssFault, 'times'>> & OssFault> = [];
  const stats: OssServerStats = {
    requests: 0, operations: {}, errors: {}, accessKeys: {}, maxDeleteBatch: 0, maxListKeys: 0,
    bytesIn: 0, bytesOut: 0, objects: 0, storedBytes: 0,
    faults: { error: 0, truncate: 0, corrupt: 0, slow: 0, reset: 0 },
  };
  let randomFaults: { spec: FaultSpec; random: () => number } | undefined;
  const setRandomFaults = (f: FaultSpec | string | undefined) => {
    const spec = typeof f === 'string' ? parseFaultSpec(f) : f === undefined ? undefined : faultSpecSchema.parse(f);
    randomFaults = spec ? { spec, random: spec.seed === undefined ? Math.random : seededRandom(spec.seed) } : undefined;
  };
  setRandomFaults(options.faults);
  const drawFault = (): FaultKind | undefined => {
    if (!randomFaults) return undefined;
    const { spec, random } = randomFaults;
    let r = random();
    for (const kind of ['error', 'truncate', 'corrupt', 'slow', 'reset'] as const) {
      if (r < spec[kind]) return kind;
      r -= spec[kind];
    }
    return undefined;
  };
  /** A copy of `body` cut short or with one byte flipped (bodies of one byte or none are left alone when cutting). */
  const damage = (body: Buffer, kind: 'truncate' | 'corrupt'): Buffer | undefined => {
    if (body.length === 0 || (kind === 'truncate' && body.length < 2)) return undefined;
    const random = randomFaults?.random ?? Math.random;
    if (kind === 'truncate') return Buffer.from(body.subarray(0, Math.floor(random() * body.length)));
    const copy = Buffer.from(body);
    copy[Math.floor(random() * copy.length)] ^= 0xff;
    return copy;
  };

  const keysInOrder = (): string[] => (sortedKeys ??= [...objects.keys()].sort(compareUtf8));
  const setObject = (key: string, obj: StoredObject) => {
    if (!objects.has(key)) sortedKeys = undefined;
    objects.set(key, obj);
  };
  const deleteObject = (key: string) => {
    if (objects.delete(key)) sortedKeys = undefined;
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Only reached on bugs or broken sockets: answer 500 if still possible.
      if (!res.headersSent) {
        sendError(res, req, newRequestId(), new OssHttpError(500, 'InternalError', `emulator error: ${(err as Error)?.message ?? String(err)}`));
      } else {
        res.destroy();
      }
    });
  });
  // Longer than ali-oss's keep-alive agent idle timeout, so the client never reuses a socket we are closing.
  server.keepAliveTimeout = 65_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = newRequestId();
    stats.requests++;
    let body: Buffer;
    try {
      body = await readBody(req, maxBodyBytes);
    } catch (err) {
      if (err instanceof OssHttpError) {
        sendError(res, req, requestId, err);
        req.resume();
        return;
      }
      throw err;
    }
    stats.bytesIn += body.length;
    try {
      const parsed = parseRequestTarget(req.url ?? '/', bucket);
      authenticate(req, parsed);
      const operation = identifyOperation(req.method ?? 'GET', parsed);
      stats.operations[operation] = (stats.operations[operation] ?? 0) + 1;
      const queued = await applyFaults(operation);
      const fault = queued ?? drawFault();
      let sendDamaged: 'truncate' | 'corrupt' | undefined;
      switch (fault) {
        case 'error':
          stats.faults.error++;
          throw randomFaults!.random() < 0.5
            ? new OssHttpError(503, 'SlowDown', 'Please reduce your request rate (injected fault).')
            : new OssHttpError(500, 'InternalError', 'We encountered an internal error, please try again (injected fault).');
        case 'slow':
          stats.faults.slow++;
          await new Promise((r) => setTimeout(r, randomFaults!.spec.slowMs));
          break;
        case 'reset':
          stats.faults.reset++;
          req.socket.destroy();
          return;
        case 'truncate':
        case 'corrupt':
          if (operation === 'PutObject') {
            const d = damage(body, fault);
            if (d) { body = d; stats.faults[fault]++; }
          } else if (operation === 'GetObject') sendDamaged = fault;
          break;
      }
      checkContentMd5(req, body);
      switch (operation) {
        case 'PutObject': return putObject(req, res, requestId, parsed.key, body);
        case 'GetObject': return getObject(req, res, requestId, parsed.key, false, sendDamaged);
        case 'HeadObject': return getObject(req, res, requestId, parsed.key, true);
        case 'DeleteObject': return deleteOne(res, requestId, parsed.key);
        case 'DeleteMultipleObjects': return deleteMultiple(req, res, requestId, parsed.query, body);
        case 'ListObjectsV2': return listObjectsV2(res, requestId, parsed.query);
      }
    } catch (err) {
      if (!(err instanceof OssHttpError)) throw err;
      sendError(res, req, requestId, err);
    }
  }

  function authenticate(req: IncomingMessage, target: RequestTarget): void {
    const auth = header(req, 'authorization');
    if (!auth) throw new OssHttpError(403, 'AccessDenied', 'You have no right to access this object because of bucket acl (anonymous access; no Authorization header).');
    if (auth.startsWith('OSS4-HMAC-SHA256')) {
      throw new OssHttpError(403, 'AccessDenied', 'V4 signatures are not supported by the OSS emulator; use V1 (ali-oss default).');
    }
    const m = /^OSS ([^:\s]+):(\S+)$/.exec(auth);
    if (!m) throw new OssHttpError(400, 'InvalidArgument', 'Authorization header is invalid.', { ArgumentName: 'Authorization', ArgumentValue: auth });
    const [, accessKeyId, signature] = m;
    const cred = credentials.get(accessKeyId);
    if (!cred) throw new OssHttpError(403, 'InvalidAccessKeyId', 'The OSS Access Key Id you provided does not exist in our records.', { OSSAccessKeyId: accessKeyId });

    const token = header(req, 'x-oss-security-token');
    if (cred.securityToken !== undefined) {
      if (token === undefined) throw new OssHttpError(403, 'InvalidSecurityToken', 'The security token you provided is missing (x-oss-security-token).', { OSSAccessKeyId: accessKeyId });
      if (!constantTimeEqual(token, cred.securityToken)) throw new OssHttpError(403, 'InvalidSecurityToken', 'The security token you provided is invalid.', { OSSAccessKeyId: accessKeyId });
      if (cred.expiration && cred.expiration.getTime() <= now()) {
        throw new OssHttpError(403, 'SecurityTokenExpired', `The security token you provided has expired (at ${cred.expiration.toISOString()}).`, { OSSAccessKeyId: accessKeyId });
      }
    } else if (token !== undefined) {
      throw new OssHttpError(403, 'InvalidSecurityToken', 'A security token was sent for a long-term AccessKey.', { OSSAccessKeyId: accessKeyId });
    }

    // ali-oss sends no Date header, only x-oss-date, and signs x-oss-date in the Date line.
    const dateHeader = header(req, 'date') ?? header(req, 'x-oss-date');
    if (!dateHeader) throw new OssHttpError(403, 'AccessDenied', 'Missing Date or x-oss-date header.');
    const t = Date.parse(dateHeader);
    if (Number.isNaN(t)) throw new OssHttpError(403, 'AccessDenied', `Invalid date ${JSON.stringify(dateHeader)}.`);
    if (Math.abs(now() - t) > maxSkewMs) {
      throw new OssHttpError(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
        RequestTime: dateHeader, ServerTime: new Date(now()).toUTCString(), MaxAllowedSkewMilliseconds: String(maxSkewMs),
      });
    }

    const stringToSign = canonicalString(req, dateHeader, target);
    const expected = createHmac('sha1', cred.accessKeySecret).update(Buffer.from(stringToSign, 'utf8')).digest('base64');
    if (!constantTimeEqual(signature, expected)) {
      throw new OssHttpError(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
        OSSAccessKeyId: accessKeyId, SignatureProvided: signature, StringToSign: stringToSign,
        StringToSignBytes: Buffer.from(stringToSign, 'utf8').toString('hex').replace(/(..)/g, '$1 ').trim(),
      });
    }
    stats.accessKeys[accessKeyId] = (stats.accessKeys[accessKeyId] ?? 0) + 1;
  }

  /** Applies the first queued fault matching `operation`; returns the body damage it asks for. */
  async function applyFaults(operation: OssOperation): Promise<'truncate' | 'corrupt' | undefined> {
    const i = faults.findIndex((f) => f.operation === undefined || f.operation === operation);
    if (i < 0) return undefined;
    const f = faults[i];
    if (--f.times <= 0) faults.splice(i, 1);
    if (f.delayMs) await new Promise((r) => setTimeout(r, f.delayMs));
    if (f.status !== undefined) {
      throw new OssHttpError(f.status, f.code ?? 'InjectedFault', f.message ?? `injected fault (${operation})`);
    }
    return f.damage;
  }

  function putObject(req: IncomingMessage, res: ServerResponse, requestId: string, key: string, body: Buffer): void {
    checkObjectName(key);
    if (header(req, 'x-oss-forbid-overwrite') === 'true' && objects.has(key)) {
      throw new OssHttpError(409, 'FileAlreadyExists', 'The object you specified already exists and can not be overwritten.', { Key: key });
    }
    const md5 = createHash('md5').update(body).digest();
    const etag = md5.toString('hex').toUpperCase();
    const prev = objects.get(key);
    const crc = crc64(body);
    setObject(key, { body, etag, crc64: crc, lastModified: new Date(now()), contentType: header(req, 'content-type') ?? 'application/octet-stream' });
    stats.storedBytes += body.length - (prev?.body.length ?? 0);
    stats.objects = objects.size;
    res.writeHead(200, {
      ...commonHeaders(requestId),
      ETag: `"${etag}"`,
      'x-oss-hash-crc64ecma': crc,
      'Content-MD5': md5.toString('base64'),
      'Content-Length': '0',
    });
    res.end();
  }

  function getObject(req: IncomingMessage, res: ServerResponse, requestId: string, key: string, headOnly: boolean, sendDamaged?: 'truncate' | 'corrupt'): void {
    checkObjectName(key);
    const obj = objects.get(key);
    if (!obj) throw new OssHttpError(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
    const size = obj.body.length;
    const headers: Record<string, string> = {
      ...commonHeaders(requestId),
      'Content-Type': obj.contentType,
      ETag: `"${obj.etag}"`,
      'Last-Modified': obj.lastModified.toUTCString(),
      'Accept-Ranges': 'bytes',
      'x-oss-object-type': 'Normal',
      'x-oss-storage-class': 'Standard',
      // Always the whole object's CRC, ranged reads included (as OSS does).
      'x-oss-hash-crc64ecma': obj.crc64,
    };
    let status = 200;
    let payload = obj.body;
    const rangeHeader = headOnly ? undefined : header(req, 'range');
    if (rangeHeader !== undefined) {
      const standard = honourRangeBehavior && header(req, 'x-oss-range-behavior')?.toLowerCase() === 'standard';
      const r = resolveRange(rangeHeader, size, standard);
      if (r === 'unsatisfiable') {
        throw new OssHttpError(416, 'InvalidRange', 'The requested range cannot be satisfied.', { RangeRequested: rangeHeader, ActualObjectSize: String(size) }, { 'Content-Range': `bytes */${size}` });
      }
      if (r) {
        status = 206;
        payload = obj.body.subarray(r.first, r.last + 1);
        headers['Content-Range'] = `bytes ${r.first}-${r.last}/${size}`;
      }
      // r === undefined: OSS ignores an invalid range and returns the whole object with 200.
    }
    if (sendDamaged) {
      const d = damage(payload, sendDamaged);
      if (d) { payload = d; stats.faults[sendDamaged]++; }
    }
    headers['Content-Length'] = String(payload.length);
    res.writeHead(status, headers);
    if (headOnly) {
      res.end();
    } else {
      stats.bytesOut += payload.length;
      res.end(payload);
    }
  }

  function deleteOne(res: ServerResponse, requestId: string, key: string): void {
    checkObjectName(key);
    const prev = objects.get(key);
    if (prev) {
      deleteObject(key);
      stats.storedBytes -= prev.body.length;
      stats.objects = objects.size;
    }
    res.writeHead(204, commonHeaders(requestId));
    res.end();
  }

  function deleteMultiple(req: IncomingMessage, res: ServerResponse, requestId: string, query: Map<string, string>, body: Buffer): void {
    if (header(req, 'content-md5') === undefined) {
      throw new OssHttpError(400, 'InvalidDigest', 'DeleteMultipleObjects requires a Content-MD5 header.');
    }
    const urlEncoded = query.get('encoding-type') === 'url';
    const { quiet, keys } = parseDeleteXml(body.toString('utf8'));
    if (keys.length === 0 || keys.length > MAX_DELETE_OBJECTS) {
      throw new OssHttpError(400, 'MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema (got ${keys.length} objects; 1 to ${MAX_DELETE_OBJECTS} allowed).`);
    }
    stats.maxDeleteBatch = Math.max(stats.maxDeleteBatch, keys.length);
    const decoded = keys.map((k) => (urlEncoded ? safeDecode(k) : k));
    for (const key of decoded) checkObjectName(key);
    const deleted: string[] = [];
    for (const key of decoded) {
      const prev = objects.get(key);
      if (prev) {
        deleteObject(key);
        stats.storedBytes -= prev.body.length;
      }
      deleted.push(key);
    }
    stats.objects = objects.size;
    const xml = xmlDoc('DeleteResult', quiet ? '' : deleted.map((k) => `<Deleted><Key>${xmlEscape(urlEncoded ? encodeKey(k) : k)}</Key></Deleted>`).join('') + (urlEncoded ? '<EncodingType>url</EncodingType>' : ''));
    sendXml(res, requestId, 200, xml);
  }

  function listObjectsV2(res: ServerResponse, requestId: string, query: Map<string, string>): void {
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const startAfter = query.get('start-after');
    const token = query.get('continuation-token');
    const encodingType = query.get('encoding-type');
    if (encodingType !== undefined && encodingType !== 'url') {
      throw new OssHttpError(400, 'InvalidArgument', 'encoding-type must be "url".', { ArgumentName: 'encoding-type', ArgumentValue: encodingType });
    }
    const rawMax = query.get('max-keys');
    const maxKeys = rawMax === undefined ? 100 : Number(rawMax);
    if (!Number.isInteger(maxKeys) || maxKeys < 1 || maxKeys > MAX_KEYS_LIMIT || (rawMax !== undefined && !/^\d+$/.test(rawMax))) {
      throw new OssHttpError(400, 'InvalidArgument', `max-keys must be an integer from 1 to ${MAX_KEYS_LIMIT}.`, { ArgumentName: 'max-keys', ArgumentValue: String(rawMax) });
    }
    if (Buffer.byteLength(prefix) > MAX_KEY_BYTES) {
      throw new OssHttpError(400, 'InvalidArgument', 'prefix is too long.', { ArgumentName: 'prefix', ArgumentValue: prefix });
    }
    if (delimiter.length > 1) {
      throw new OssHttpError(400, 'InvalidArgument', 'delimiter must be one character.', { ArgumentName: 'delimiter', ArgumentValue: delimiter });
    }
    stats.maxListKeys = Math.max(stats.maxListKeys, maxKeys);
    // Position: after a key, or past every key under a common prefix.
    let after: { key: string } | { skipPrefix: string } | undefined;
    if (token !== undefined) {
      after = decodeToken(token);
    } else if (startAfter !== undefined) {
      after = { key: startAfter };
    }

    const contents: StoredObjectEntry[] = [];
    const commonPrefixes: string[] = [];
    let count = 0;
    let truncated = false;
    let nextToken: string | undefined;
    for (const key of keysInOrder()) {
      if (!key.startsWith(prefix)) continue;
      if (after) {
        if ('key' in after ? compareUtf8(key, after.key) <= 0 : key.startsWith(after.skipPrefix) || compareUtf8(key, after.skipPrefix) < 0) continue;
      }
      let common: string | undefined;
      if (delimiter) {
        const idx = key.indexOf(delimiter, prefix.length);
        if (idx >= 0) common = key.slice(0, idx + delimiter.length);
      }
      if (common !== undefined && commonPrefixes[commonPrefixes.length - 1] === common) continue;
      if (count === maxKeys) {
        truncated = true;
        break;
      }
      count++;
      if (common !== undefined) {
        commonPrefixes.push(common);
        nextToken = encodeToken({ skipPrefix: common });
      } else {
        contents.push({ key, obj: objects.get(key)! });
        nextToken = encodeToken({ key });
      }
    }

    const enc = (s: string) => xmlEscape(encodingType === 'url' ? encodeKey(s) : s);
    let inner = `<Name>${bucket}</Name><Prefix>${enc(prefix)}</Prefix>`;
    if (token !== undefined) inner += `<ContinuationToken>${xmlEscape(token)}</ContinuationToken>`;
    if (startAfter !== undefined) inner += `<StartAfter>${enc(startAfter)}</StartAfter>`;
    inner += `<MaxKeys>${maxKeys}</MaxKeys>`;
    if (delimiter) inner += `<Delimiter>${enc(delimiter)}</Delimiter>`;
    if (encodingType) inner += `<EncodingType>${encodingType}</EncodingType>`;
    inner += `<IsTruncated>${truncated}</IsTruncated>`;
    if (truncated && nextToken) inner += `<NextContinuationToken>${xmlEscape(nextToken)}</NextContinuationToken>`;
    inner += `<KeyCount>${count}</KeyCount>`;
    for (const { key, obj } of contents) {
      inner += `<Contents><Key>${enc(key)}</Key><LastModified>${obj.lastModified.toISOString()}</LastModified>` +
        `<ETag>"${obj.etag}"</ETag><Type>Normal</Type><Size>${obj.body.length}</Size><StorageClass>Standard</StorageClass></Contents>`;
    }
    for (const p of commonPrefixes) inner += `<CommonPrefixes><Prefix>${enc(p)}</Prefix></CommonPrefixes>`;
    sendXml(res, requestId, 200, xmlDoc('ListBucketResult', inner));
  }

  function sendXml(res: ServerResponse, requestId: string, status: number, xml: string): void {
    const buf = Buffer.from(xml, 'utf8');
    stats.bytesOut += buf.length;
    res.writeHead(status, { ...commonHeaders(requestId), 'Content-Type': 'application/xml', 'Content-Length': String(buf.length) });
    res.end(buf);
  }

  function sendError(res: ServerResponse, req: IncomingMessage, requestId: string, err: OssHttpError): void {
    stats.errors[err.code] = (stats.errors[err.code] ?? 0) + 1;
    const host = header(req, 'host') ?? '';
    const extra = Object.entries(err.extra).map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`).join('');
    const xml = xmlDoc('Error', `<Code>${xmlEscape(err.code)}</Code><Message>${xmlEscape(err.message)}</Message>` +
      `<RequestId>${requestId}</RequestId><HostId>${xmlEscape(host)}</HostId>${extra}`);
    const buf = Buffer.from(xml, 'utf8');
    const headers: Record<string, string> = { ...commonHeaders(requestId), 'Content-Type': 'application/xml', ...err.headers };
    if (req.method === 'HEAD') {
      // No body on HEAD: OSS puts the error document, base64-encoded, in x-oss-err.
      headers['x-oss-err'] = buf.toString('base64');
      headers['Content-Length'] = '0';
      res.writeHead(err.status, headers);
      res.end();
      return;
    }
    headers['Content-Length'] = String(buf.length);
    stats.bytesOut += buf.length;
    res.writeHead(err.status, headers);
    res.end(buf);
  }

  function commonHeaders(requestId: string): Record<string, string> {
    return { 'x-oss-request-id': requestId, Server: 'AliyunOSS', Date: new Date(now()).toUTCString() };
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://${hostForUrl}:${address.port}`,
    bucket,
    port: address.port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
    stats: () => structuredClone(stats),
    setCredentials(list) {
      credentials = indexCredentials(list);
    },
    injectFault(fault) {
      faults.push({ ...fault, times: fault.times ?? 1 });
    },
    clearFaults() {
      faults.length = 0;
    },
    setRandomFaults,
  };
}

interface StoredObjectEntry {
  key: string;
  obj: StoredObject;
}

interface RequestTarget {
  bucket: string;
  /** Object key ('' for bucket-level requests). */
  key: string;
  /** Decoded query parameters (first value wins). */
  query: Map<string, string>;
  /** Raw query parameter names, in order (to see sub-resources given without a value). */
  params: string[];
}

function indexCredentials(list: OssServerCredentials[]): Map<string, OssServerCredentials> {
  if (!Array.isArray(list) || list.length === 0) throw new TypeError('OSS server: at least one credential is required');
  const map = new Map<string, OssServerCredentials>();
  for (const c of list) {
    if (!c?.accessKeyId || !c.accessKeySecret) throw new TypeError('OSS server: credentials need accessKeyId and accessKeySecret');
    map.set(c.accessKeyId, { ...c });
  }
  return map;
}

/** Split `/<bucket>/<key>?query` (path-style). The key is percent-decoded; no dot-segment normalisation. */
function parseRequestTarget(url: string, bucket: string): RequestTarget {
  const q = url.indexOf('?');
  const rawPath = q >= 0 ? url.slice(0, q) : url;
  const rawQuery = q >= 0 ? url.slice(q + 1) : '';
  const query = new Map<string, string>();
  const params: string[] = [];
  for (const part of rawQuery.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = safeDecode(eq >= 0 ? part.slice(0, eq) : part, true);
    const value = eq >= 0 ? safeDecode(part.slice(eq + 1), true) : '';
    params.push(name);
    if (!query.has(name)) query.set(name, value);
  }
  if (!rawPath.startsWith('/')) throw new OssHttpError(400, 'InvalidURI', 'Request URI must be absolute.');
  if (rawPath === '/') throw new OssHttpError(501, 'NotImplemented', 'ListBuckets (GetService) is not implemented by the OSS emulator.');
  const slash = rawPath.indexOf('/', 1);
  const bucketPart = safeDecode(slash >= 0 ? rawPath.slice(1, slash) : rawPath.slice(1));
  if (bucketPart !== bucket) {
    throw new OssHttpError(404, 'NoSuchBucket', 'The specified bucket does not exist (the emulator is path-style only: use sldEnable: true).', { BucketName: bucketPart });
  }
  const key = slash >= 0 ? safeDecode(rawPath.slice(slash + 1)) : '';
  return { bucket, key, query, params };
}

function identifyOperation(method: string, t: RequestTarget): OssOperation {
  const unsupported = t.params.find((p) => UNSUPPORTED_SUBRESOURCES.has(p) || (p === 'objectMeta' && method !== 'HEAD'));
  if (unsupported) throw new OssHttpError(501, 'NotImplemented', `Sub-resource "${unsupported}" is not implemented by the OSS emulator.`);
  if (t.key === '') {
    if (method === 'GET' && t.query.get('list-type') === '2') return 'ListObjectsV2';
    if (method === 'POST' && t.query.has('delete')) return 'DeleteMultipleObjects';
    throw new OssHttpError(501, 'NotImplemented', `Bucket operation ${method} ${t.params.length ? `?${t.params.join('&')}` : '/'} is not implemented by the OSS emulator (ListObjects v1 included: use list-type=2).`);
  }
  switch (method) {
    case 'PUT': return 'PutObject';
    case 'GET': return 'GetObject';
    case 'HEAD': return 'HeadObject';
    case 'DELETE': return 'DeleteObject';
    default: throw new OssHttpError(405, 'MethodNotAllowed', `The specified method ${method} is not allowed against this resource.`);
  }
}

/** The V1 string to sign, as OSS (and ali-oss's signUtils.buildCanonicalString) build it. */
function canonicalString(req: IncomingMessage, dateLine: string, t: RequestTarget): string {
  const ossHeaders: string[] = [];
  for (const name of Object.keys(req.headers).sort()) {
    if (!name.startsWith('x-oss-')) continue;
    ossHeaders.push(`${name}:${String(header(req, name) ?? '').trim()}`);
  }
  let resource = `/${t.bucket}/${t.key}`;
  const subresources = [...new Set(t.params.filter((p) => SIGNED_SUBRESOURCES.has(p)))].sort();
  if (subresources.length) {
    resource += `?${subresources.map((p) => (t.query.get(p) ? `${p}=${t.query.get(p)}` : p)).join('&')}`;
  }
  return [
    (req.method ?? '').toUpperCase(),
    header(req, 'content-md5') ?? '',
    header(req, 'content-type') ?? '',
    dateLine,
    ...ossHeaders,
    resource,
  ].join('\n');
}

function checkContentMd5(req: IncomingMessage, body: Buffer): void {
  const md5 = header(req, 'content-md5');
  if (md5 === undefined) return;
  const given = Buffer.from(md5, 'base64');
  if (given.length !== 16 || given.toString('base64') !== md5) {
    throw new OssHttpError(400, 'InvalidDigest', 'The Content-MD5 you specified is not valid.', { 'Content-MD5': md5 });
  }
  const actual = createHash('md5').update(body).digest();
  if (!actual.equals(given)) {
    throw new OssHttpError(400, 'InvalidDigest', 'The Content-MD5 you specified did not match what we received.', {
      'Content-MD5': md5, CalculatedContentMD5: actual.toString('base64'),
    });
  }
}

/** OSS object-name rules: 1..1023 UTF-8 bytes, not starting with "/" or "\". */
function checkObjectName(key: string): void {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes === 0 || bytes > MAX_KEY_BYTES || key.startsWith('/') || key.startsWith('\\')) {
    throw new OssHttpError(400, 'InvalidObjectName', 'The specified object is not valid.', { ObjectName: key });
  }
}

/**
 * Resolve a Range header against `size` like OSS:
 * - a satisfiable single range → the inclusive byte span (multi-range: first range only);
 * - by default, an invalid or out-of-bounds range is ignored (undefined: whole object, 200);
 * - with `x-oss-range-behavior: standard`, an end past the object is clipped and a
 *   start past the end is 'unsatisfiable' (416 InvalidRange).
 */
function resolveRange(value: string, size: number, standard: boolean): { first: number; last: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*(?:,.*)?$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // syntax error: ignored
  if (m[1] === '') {
    // Suffix range: the last n bytes.
    const n = Number(m[2]);
    if (n === 0) return standard ? 'unsatisfiable' : undefined;
    if (n > size) return standard ? (size === 0 ? 'unsatisfiable' : { first: 0, last: size - 1 }) : undefined;
    return { first: size - n, last: size - 1 };
  }
  const first = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  if (m[2] !== '' && last < first) return undefined; // malformed: ignored, even in standard mode
  if (first >= size) return standard ? 'unsatisfiable' : undefined;
  if (last >= size) return standard ? { first, last: size - 1 } : undefined;
  return { first, last };
}

function parseDeleteXml(xml: string): { quiet: boolean; keys: string[] } {
  const malformed = () => new OssHttpError(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  const root = /<Delete>([\s\S]*)<\/Delete>/.exec(xml);
  if (!root) throw malformed();
  const quietMatch = /<Quiet>\s*([^<]*?)\s*<\/Quiet>/.exec(root[1]);
  if (quietMatch && !/^(true|false)$/i.test(quietMatch[1])) throw malformed();
  const quiet = quietMatch ? quietMatch[1].toLowerCase() === 'true' : false;
  const keys: string[] = [];
  for (const m of root[1].matchAll(/<Object>([\s\S]*?)<\/Object>/g)) {
    const k = /<Key>([\s\S]*?)<\/Key>/.exec(m[1]);
    if (!k) throw malformed();
    let key: string | undefined;
    try {
      key = xmlUnescape(k[1]);
    } catch {
      key = undefined; // a character reference out of range
    }
    if (key === undefined) throw malformed();
    keys.push(key);
  }
  return { quiet, keys };
}

function xmlUnescape(s: string): string | undefined {
  if (s.includes('<')) return undefined; // markup (or CDATA) inside <Key>: not supported
  if (s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, '').includes('&')) return undefined; // stray or unknown entity
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, ent: string) => {
    switch (ent) {
      case 'amp': return '&';
      case 'lt': return '<';
      case 'gt': return '>';
      case 'quot': return '"';
      case 'apos': return "'";
    }
    return String.fromCodePoint(ent.startsWith('#x') ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10));
  });
}

function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function xmlDoc(root: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}>${inner}</${root}>`;
}

function encodeKey(s: string): string {
  return encodeURIComponent(s).replace(/%2F/g, '/');
}

/** Opaque continuation tokens (standard base64, so they exercise URL-encoding and signing like OSS's). */
function encodeToken(pos: { key: string } | { skipPrefix: string }): string {
  return Buffer.from('key' in pos ? `k${pos.key}` : `p${pos.skipPrefix}`, 'utf8').toString('base64');
}

function decodeToken(token: string): { key: string } | { skipPrefix: string } {
  const raw = Buffer.from(token, 'base64').toString('utf8');
  if (token === '' || Buffer.from(raw, 'utf8').toString('base64') !== token || !/^[kp]/.test(raw)) {
    throw new OssHttpError(400, 'InvalidArgument', 'The continuation token provided is incorrect.', { ArgumentName: 'continuation-token', ArgumentValue: token });
  }
  return raw[0] === 'k' ? { key: raw.slice(1) } : { skipPrefix: raw.slice(1) };
}

function safeDecode(s: string, plusIsSpace = false): string {
  try {
    return decodeURIComponent(plusIsSpace ? s.replace(/\+/g, ' ') : s);
  } catch {
    throw new OssHttpError(400, 'InvalidURI', `Couldn't parse the specified URI (bad percent-encoding in ${JSON.stringify(s)}).`);
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function newRequestId(): string {
  return randomBytes(12).toString('hex').toUpperCase();
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) {
      reject(new OssHttpError(400, 'EntityTooLarge', `Your proposed upload exceeds the emulator's maximum allowed size (${limit} bytes).`));
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (c: Buffer) => {
      total += c.length;
      if (total > limit) {
        req.removeAllListeners('data');
        reject(new OssHttpError(400, 'EntityTooLarge', `Your proposed upload exceeds the emulator's maximum allowed size (${limit} bytes).`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total)));
    req.on('error', reject);
  });
}
