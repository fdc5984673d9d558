/**
 * The OSS REST wire format the loopback emulator speaks: request targets (path-style),
 * operations, OSS error documents, XML bodies, Range and continuation tokens. Pure helpers,
 * no server state, so the routing (oss-server.ts) and the object store (oss-objects.ts) share them.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FaultKind } from './oss-faults.ts';

export type OssOperation =
  | 'PutObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'DeleteMultipleObjects'
  | 'ListObjectsV2';

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

/** Sub-resources that turn a plain object/bucket request into another API we do not implement. */
const UNSUPPORTED_SUBRESOURCES = new Set([
  'acl', 'uploads', 'uploadId', 'partNumber', 'append', 'tagging', 'symlink', 'restore',
  'x-oss-process', 'versions', 'versioning', 'cors', 'lifecycle', 'website', 'referer', 'logging', 'policy',
  'bucketInfo', 'stat', 'location', 'encryption', 'inventory', 'worm', 'replication',
]);

/** An OSS error answer: HTTP status, OSS error code, and the extra fields of the error document. */
export class OssHttpError extends Error {
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

export const MAX_KEYS_LIMIT = 1000;
export const MAX_DELETE_OBJECTS = 1000;
export const MAX_KEY_BYTES = 1023;

/** Headers OSS puts on every answer. */
export function commonHeaders(requestId: string, now: number): Record<string, string> {
  return { 'x-oss-request-id': requestId, Server: 'AliyunOSS', Date: new Date(now).toUTCString() };
}

/** Writes an XML answer; returns the bytes sent (for the byte counters). */
export function sendXml(res: ServerResponse, requestId: string, status: number, xml: string, now: number): number {
  const buf = Buffer.from(xml, 'utf8');
  res.writeHead(status, { ...commonHeaders(requestId, now), 'Content-Type': 'application/xml', 'Content-Length': String(buf.length) });
  res.end(buf);
  return buf.length;
}

export interface RequestTarget {
  bucket: string;
  /** Object key ('' for bucket-level requests). */
  key: string;
  /** Decoded query parameters (first value wins). */
  query: Map<string, string>;
  /** Raw query parameter names, in order (to see sub-resources given without a value). */
  params: string[];
}

/** Split `/<bucket>/<key>?query` (path-style). The key is percent-decoded; no dot-segment normalisation. */
export function parseRequestTarget(url: string, bucket: string): RequestTarget {
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

export function identifyOperation(method: string, t: RequestTarget): OssOperation {
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

export function checkContentMd5(req: IncomingMessage, body: Buffer): void {
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
export function checkObjectName(key: string): void {
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
export function resolveRange(value: string, size: number, standard: boolean): { first: number; last: number } | 'unsatisfiable' | undefined {
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

export function parseDeleteXml(xml: string): { quiet: boolean; keys: string[] } {
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

export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

export function xmlDoc(root: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}>${inner}</${root}>`;
}

export function encodeKey(s: string): string {
  return encodeURIComponent(s).replace(/%2F/g, '/');
}

/** Opaque continuation tokens (standard base64, so they exercise URL-encoding and signing like OSS's). */
export function encodeToken(pos: { key: string } | { skipPrefix: string }): string {
  return Buffer.from('key' in pos ? `k${pos.key}` : `p${pos.skipPrefix}`, 'utf8').toString('base64');
}

export function decodeToken(token: string): { key: string } | { skipPrefix: string } {
  const raw = Buffer.from(token, 'base64').toString('utf8');
  if (token === '' || Buffer.from(raw, 'utf8').toString('base64') !== token || !/^[kp]/.test(raw)) {
    throw new OssHttpError(400, 'InvalidArgument', 'The continuation token provided is incorrect.', { ArgumentName: 'continuation-token', ArgumentValue: token });
  }
  return raw[0] === 'k' ? { key: raw.slice(1) } : { skipPrefix: raw.slice(1) };
}

export function safeDecode(s: string, plusIsSpace = false): string {
  try {
    return decodeURIComponent(plusIsSpace ? s.replace(/\+/g, ' ') : s);
  } catch {
    throw new OssHttpError(400, 'InvalidURI', `Couldn't parse the specified URI (bad percent-encoding in ${JSON.stringify(s)}).`);
  }
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function newRequestId(): string {
  return randomBytes(12).toString('hex').toUpperCase();
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
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
