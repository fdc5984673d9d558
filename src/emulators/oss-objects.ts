/**
 * The emulator's bucket: objects in memory and the six object operations (PutObject, GetObject,
 * HeadObject, DeleteObject, DeleteMultipleObjects, ListObjectsV2), answering as OSS does.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { crc64 } from '../store/crc64.ts';
import type { BodyDamage } from './oss-faults.ts';
import {
  checkObjectName, commonHeaders, compareUtf8, decodeToken, encodeKey, encodeToken, header, MAX_DELETE_OBJECTS,
  MAX_KEY_BYTES, MAX_KEYS_LIMIT, OssHttpError, type OssServerStats, parseDeleteXml, resolveRange, safeDecode, sendXml,
  xmlDoc, xmlEscape,
} from './oss-protocol.ts';

interface StoredObject {
  body: Buffer;
  etag: string; // uppercase hex MD5, unquoted
  crc64: string;
  lastModified: Date;
  contentType: string;
}

interface StoredObjectEntry {
  key: string;
  obj: StoredObject;
}

export interface OssBucketContext {
  bucket: string;
  /** The server's counters, updated in place. */
  stats: OssServerStats;
  now: () => number;
  /** Honour `x-oss-range-behavior: standard`. */
  honourRangeBehavior: boolean;
  /** Damages a body a fault asks to damage (undefined: left alone). */
  damage: (body: Buffer, kind: BodyDamage) => Buffer | undefined;
}

export class OssBucket {
  private readonly objects = new Map<string, StoredObject>();
  private sortedKeys: string[] | undefined; // cache, invalidated on mutation

  constructor(private readonly ctx: OssBucketContext) {}

  put(req: IncomingMessage, res: ServerResponse, requestId: string, key: string, body: Buffer): void {
    checkObjectName(key);
    if (header(req, 'x-oss-forbid-overwrite') === 'true' && this.objects.has(key)) {
      throw new OssHttpError(409, 'FileAlreadyExists', 'The object you specified already exists and can not be overwritten.', { Key: key });
    }
    const md5 = createHash('md5').update(body).digest();
    const etag = md5.toString('hex').toUpperCase();
    const prev = this.objects.get(key);
    const crc = crc64(body);
    this.setObject(key, { body, etag, crc64: crc, lastModified: new Date(this.ctx.now()), contentType: header(req, 'content-type') ?? 'application/octet-stream' });
    this.ctx.stats.storedBytes += body.length - (prev?.body.length ?? 0);
    this.ctx.stats.objects = this.objects.size;
    res.writeHead(200, {
      ...commonHeaders(requestId, this.ctx.now()),
      ETag: `"${etag}"`,
      'x-oss-hash-crc64ecma': crc,
      'Content-MD5': md5.toString('base64'),
      'Content-Length': '0',
    });
    res.end();
  }

  get(req: IncomingMessage, res: ServerResponse, requestId: string, key: string, headOnly: boolean, sendDamaged?: 'truncate' | 'corrupt'): void {
    checkObjectName(key);
    const obj = this.objects.get(key);
    if (!obj) throw new OssHttpError(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
    const size = obj.body.length;
    const headers: Record<string, string> = {
      ...commonHeaders(requestId, this.ctx.now()),
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
      const standard = this.ctx.honourRangeBehavior && header(req, 'x-oss-range-behavior')?.toLowerCase() === 'standard';
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
      const d = this.ctx.damage(payload, sendDamaged);
      if (d) { payload = d; this.ctx.stats.faults[sendDamaged]++; }
    }
    headers['Content-Length'] = String(payload.length);
    res.writeHead(status, headers);
    if (headOnly) {
      res.end();
    } else {
      this.ctx.stats.bytesOut += payload.length;
      res.end(payload);
    }
  }

  deleteOne(res: ServerResponse, requestId: string, key: string): void {
    checkObjectName(key);
    const prev = this.objects.get(key);
    if (prev) {
      this.deleteObject(key);
      this.ctx.stats.storedBytes -= prev.body.length;
      this.ctx.stats.objects = this.objects.size;
    }
    res.writeHead(204, commonHeaders(requestId, this.ctx.now()));
    res.end();
  }

  deleteMultiple(req: IncomingMessage, res: ServerResponse, requestId: string, query: Map<string, string>, body: Buffer): void {
    if (header(req, 'content-md5') === undefined) {
      throw new OssHttpError(400, 'InvalidDigest', 'DeleteMultipleObjects requires a Content-MD5 header.');
    }
    const urlEncoded = query.get('encoding-type') === 'url';
    const { quiet, keys } = parseDeleteXml(body.toString('utf8'));
    if (keys.length === 0 || keys.length > MAX_DELETE_OBJECTS) {
      throw new OssHttpError(400, 'MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema (got ${keys.length} objects; 1 to ${MAX_DELETE_OBJECTS} allowed).`);
    }
    this.ctx.stats.maxDeleteBatch = Math.max(this.ctx.stats.maxDeleteBatch, keys.length);
    const decoded = keys.map((k) => (urlEncoded ? safeDecode(k) : k));
    for (const key of decoded) checkObjectName(key);
    const deleted: string[] = [];
    for (const key of decoded) {
      const prev = this.objects.get(key);
      if (prev) {
        this.deleteObject(key);
        this.ctx.stats.storedBytes -= prev.body.length;
      }
      deleted.push(key);
    }
    this.ctx.stats.objects = this.objects.size;
    const xml = xmlDoc('DeleteResult', quiet ? '' : deleted.map((k) => `<Deleted><Key>${xmlEscape(urlEncoded ? encodeKey(k) : k)}</Key></Deleted>`).join('') + (urlEncoded ? '<EncodingType>url</EncodingType>' : ''));
    this.sendXml(res, requestId, xml);
  }

  listObjectsV2(res: ServerResponse, requestId: string, query: Map<string, string>): void {
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
    this.ctx.stats.maxListKeys = Math.max(this.ctx.stats.maxListKeys, maxKeys);
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
    for (const key of this.keysInOrder()) {
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
        contents.push({ key, obj: this.objects.get(key)! });
        nextToken = encodeToken({ key });
      }
    }

    const enc = (s: string) => xmlEscape(encodingType === 'url' ? encodeKey(s) : s);
    let inner = `<Name>${this.ctx.bucket}</Name><Prefix>${enc(prefix)}</Prefix>`;
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
    this.sendXml(res, requestId, xmlDoc('ListBucketResult', inner));
  }

  private sendXml(res: ServerResponse, requestId: string, xml: string): void {
    this.ctx.stats.bytesOut += sendXml(res, requestId, 200, xml, this.ctx.now());
  }

  private keysInOrder(): string[] {
    return (this.sortedKeys ??= [...this.objects.keys()].sort(compareUtf8));
  }

  private setObject(key: string, obj: StoredObject): void {
    if (!this.objects.has(key)) this.sortedKeys = undefined;
    this.objects.set(key, obj);
  }

  private deleteObject(key: string): void {
    if (this.objects.delete(key)) this.sortedKeys = undefined;
  }
}
