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
 *   (`faults`, the `OSS_EMULATOR_FAULTS` spec, see parseFaultSpec in oss-faults.ts).
 *
 * This module is the routing; the wire format is in oss-protocol.ts, signing in oss-signing.ts,
 * faults in oss-faults.ts and the objects in oss-objects.ts.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OssFaultInjector, type BodyDamage, type FaultSpec, type OssFault } from './oss-faults.ts';
import { OssBucket } from './oss-objects.ts';
import {
  checkContentMd5, commonHeaders, header, identifyOperation, newRequestId, OssHttpError, type OssServerStats,
  parseRequestTarget, readBody, xmlDoc, xmlEscape,
} from './oss-protocol.ts';
import { authenticate, indexCredentials, type OssServerCredentials } from './oss-signing.ts';

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
  const stats: OssServerStats = {
    requests: 0, operations: {}, errors: {}, accessKeys: {}, maxDeleteBatch: 0, maxListKeys: 0,
    bytesIn: 0, bytesOut: 0, objects: 0, storedBytes: 0,
    faults: { error: 0, truncate: 0, corrupt: 0, slow: 0, reset: 0 },
  };
  const faults = new OssFaultInjector(options.faults);
  const objects = new OssBucket({ bucket, stats, now, honourRangeBehavior, damage: (b, kind) => faults.damage(b, kind) });
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
      const accessKeyId = authenticate(req, parsed, { credentials, now, maxSkewMs });
      stats.accessKeys[accessKeyId] = (stats.accessKeys[accessKeyId] ?? 0) + 1;
      const operation = identifyOperation(req.method ?? 'GET', parsed);
      stats.operations[operation] = (stats.operations[operation] ?? 0) + 1;
      const queued = await faults.applyQueued(operation);
      const fault = queued ?? faults.draw();
      let sendDamaged: BodyDamage | undefined;
      switch (fault) {
        case 'error':
          stats.faults.error++;
          throw faults.randomError();
        case 'slow':
          stats.faults.slow++;
          await new Promise((r) => setTimeout(r, faults.slowMs));
          break;
        case 'reset':
          stats.faults.reset++;
          req.socket.destroy();
          return;
        case 'truncate':
        case 'corrupt':
          if (operation === 'PutObject') {
            const d = faults.damage(body, fault);
            if (d) { body = d; stats.faults[fault]++; }
          } else if (operation === 'GetObject') sendDamaged = fault;
          break;
      }
      checkContentMd5(req, body);
      switch (operation) {
        case 'PutObject': return objects.put(req, res, requestId, parsed.key, body);
        case 'GetObject': return objects.get(req, res, requestId, parsed.key, false, sendDamaged);
        case 'HeadObject': return objects.get(req, res, requestId, parsed.key, true);
        case 'DeleteObject': return objects.deleteOne(res, requestId, parsed.key);
        case 'DeleteMultipleObjects': return objects.deleteMultiple(req, res, requestId, parsed.query, body);
        case 'ListObjectsV2': return objects.listObjectsV2(res, requestId, parsed.query);
      }
    } catch (err) {
      if (!(err instanceof OssHttpError)) throw err;
      sendError(res, req, requestId, err);
    }
  }
  function sendError(res: ServerResponse, req: IncomingMessage, requestId: string, err: OssHttpError): void {
    stats.errors[err.code] = (stats.errors[err.code] ?? 0) + 1;
    const host = header(req, 'host') ?? '';
    const extra = Object.entries(err.extra).map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`).join('');
    const xml = xmlDoc('Error', `<Code>${xmlEscape(err.code)}</Code><Message>${xmlEscape(err.message)}</Message>` +
      `<RequestId>${requestId}</RequestId><HostId>${xmlEscape(host)}</HostId>${extra}`);
    const buf = Buffer.from(xml, 'utf8');
    const headers: Record<string, string> = { ...commonHeaders(requestId, now()), 'Content-Type': 'application/xml', ...err.headers };
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
    injectFault: (fault) => faults.inject(fault),
    clearFaults: () => faults.clear(),
    setRandomFaults: (f) => faults.setRandom(f),
  };
}
