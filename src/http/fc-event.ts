/**
 * Alibaba Function Compute 3.0 HTTP-trigger event and result.
 *
 * FC hands an HTTP-triggered function a JSON event describing the request and
 * expects a JSON result describing the response. Binary bodies travel as base64
 * (`isBase64Encoded: true`). The local gateway (./gateway.ts) produces the same
 * events, so the handler cannot tell the difference.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { badRequest, toHttpError } from './errors.ts';
import { describeIssues } from '../zod-issues.ts';

export const fcHttpEventSchema = z.object({
  version: z.literal('v1'),
  rawPath: z.string(),
  body: z.string().default(''),
  isBase64Encoded: z.boolean().default(false),
  headers: z.record(z.string(), z.string()).default({}),
  queryParameters: z.record(z.string(), z.string()).default({}),
  requestContext: z.looseObject({
    accountId: z.string().optional(),
    domainName: z.string().optional(),
    domainPrefix: z.string().optional(),
    http: z.looseObject({
      method: z.string(),
      path: z.string(),
      protocol: z.string().optional(),
      sourceIp: z.string().optional(),
      userAgent: z.string().optional(),
    }),
    requestId: z.string(),
    time: z.string().optional(),
    timeEpoch: z.string().optional(),
  }),
});

export type FcHttpEvent = z.output<typeof fcHttpEventSchema>;

export const fcHttpResultSchema = z.object({
  statusCode: z.number().int().min(100).max(599),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.string().default(''),
  isBase64Encoded: z.boolean().optional(),
});

export type FcHttpResult = z.output<typeof fcHttpResultSchema>;

/**
 * Parse the raw event payload an FC function receives (JSON bytes) into a
 * validated FcHttpEvent. Throws a ZodError / SyntaxError on malformed input
 * (a platform problem, not the HTTP client's).
 */
export function parseFcHttpEvent(payload: Buffer | Uint8Array | string): FcHttpEvent {
  const text = typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
  return fcHttpEventSchema.parse(JSON.parse(text));
}

/**
 * JSON of an event or result carrying a base64 body: the body is spliced in instead of going
 * through JSON.stringify, which scans every character (60 ms for the 17 MB event of a 12.6 MB
 * tensor). Base64 needs no escaping; other bodies take the plain path.
 */
export function stringifyWithBody(x: { body?: string; isBase64Encoded?: boolean }): string {
  if (!x.isBase64Encoded || !x.body || x.body.length < 1 << 16) return JSON.stringify(x);
  const mark = `__body_${randomBytes(8).toString('hex')}__`;
  const head = JSON.stringify({ ...x, body: mark });
  const i = head.indexOf(`"${mark}"`);
  return `${head.slice(0, i + 1)}${x.body}${head.slice(i + 1 + mark.length)}`;
}

/** Serialise a result for the function's return value (FC expects JSON). */
export function serializeFcHttpResult(result: FcHttpResult): Buffer {
  return Buffer.from(stringifyWithBody(fcHttpResultSchema.parse(result)));
}

const BASE64_TAIL_RE = /^[A-Za-z0-9+/]{2,3}={1,2}$/;

/** The request body as bytes (decodes base64 bodies; rejects malformed base64 with 400). */
export function eventBody(event: Pick<FcHttpEvent, 'body' | 'isBase64Encoded'>): Buffer {
  const body = event.body ?? '';
  if (!event.isBase64Encoded) return Buffer.from(body, 'utf8');
  // Node's decoder skips characters outside the alphabet, so a body that decodes to fewer bytes
  // than its length implies was not base64 (a regex over a 17 MB body costs ~80 ms).
  const pad = body.endsWith('==') ? 2 : body.endsWith('=') ? 1 : 0;
  const out = body.length % 4 === 0 ? Buffer.from(body, 'base64') : undefined;
  if (!out || out.length !== (body.length / 4) * 3 - pad || (pad && !BASE64_TAIL_RE.test(body.slice(-4)))) {
    throw badRequest('request body is marked isBase64Encoded but is not valid base64', { code: 'invalid_base64' });
  }
  return out;
}

/** The result body as bytes. */
export function resultBody(result: Pick<FcHttpResult, 'body' | 'isBase64Encoded'>): Buffer {
  return Buffer.from(result.body ?? '', result.isBase64Encoded ? 'base64' : 'utf8');
}

/** Case-insensitive header lookup (FC may deliver canonical-case names; the local gateway lowercases). */
export function eventHeader(event: Pick<FcHttpEvent, 'headers'>, name: string): string | undefined {
  const headers = event.headers ?? {};
  const lower = name.toLowerCase();
  if (lower in headers) return headers[lower];
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Media type without parameters, lowercased: "Image/PNG; q=1" → "image/png"; "" when absent. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

export function jsonResult(status: number, obj: unknown, headers: Record<string, string> = {}): FcHttpResult {
  return {
    statusCode: status,
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(obj),
    isBase64Encoded: false,
  };
}

export function binaryResult(status: number, buf: Uint8Array, headers: Record<string, string> = {}): FcHttpResult {
  return {
    statusCode: status,
    headers: { 'content-type': 'application/octet-stream', ...headers },
    body: Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('base64'),
    isBase64Encoded: true,
  };
}

/** Human-readable one-liner for zod issues: `inputs[0].shape[1]: Invalid input: expected int, received number; ...`. */
export function describeZodError(err: z.ZodError): string {
  return describeIssues(err.issues);
}

/** Any thrown value as a response (toHttpError decides the status and what the client sees). */
export function errorResult(err: unknown): FcHttpResult {
  const e = toHttpError(err);
  return jsonResult(e.status, e.toJSON(), e.headers);
}

// ---- FC 2.0 HTTP trigger ----
// FC 2.0 calls an HTTP-triggered Node function as `handler(req, resp, context)`: `req` is a readable
// stream with `method`, `path`, `url`, `headers`, `queries` and `clientIP`; the answer goes through
// `resp.setStatusCode / setHeader / send(body)`. These adapt it to the FC 3.0 event and result,
// so one route() serves both generations.

/** The fields of FC 2.0's HTTP request object that the handler reads. */
export const fc2HttpRequestSchema = z.looseObject({
  method: z.string().min(1),
  path: z.string(),
  url: z.string().optional(),
  headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])).default({}),
  queries: z.record(z.string(), z.union([z.string(), z.array(z.string())])).default({}),
  clientIP: z.string().optional(),
});
export type Fc2HttpRequest = z.output<typeof fc2HttpRequestSchema>;

/** FC 2.0's response object (the part used here). */
export interface Fc2HttpResponse {
  setStatusCode(code: number): void;
  setHeader(name: string, value: string): void;
  send(body: Buffer | string): void;
}

const joinValues = (r: Record<string, string | string[]>): Record<string, string> =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v]));

/** The FC 3.0 HTTP event for an FC 2.0 request and its body bytes (always base64, so binary survives). */
export function fc2HttpEvent(req: unknown, body: Buffer, requestId: string): FcHttpEvent {
  const r = fc2HttpRequestSchema.parse(req);
  return fcHttpEventSchema.parse({
    version: 'v1',
    rawPath: r.path,
    body: body.toString('base64'),
    isBase64Encoded: true,
    headers: joinValues(r.headers),
    queryParameters: joinValues(r.queries),
    requestContext: { requestId, http: { method: r.method.toUpperCase(), path: r.path, ...(r.clientIP ? { sourceIp: r.clientIP } : {}) } },
  });
}

/** Answer an FC 2.0 HTTP call with an FC 3.0 HTTP result. */
export function sendFc2HttpResult(resp: Fc2HttpResponse, result: unknown): void {
  const r = fcHttpResultSchema.parse(result);
  resp.setStatusCode(r.statusCode);
  for (const [k, v] of Object.entries(r.headers ?? {})) resp.setHeader(k, v);
  resp.send(resultBody(r));
}

/**
 * Wrap an FC 3.0 HTTP event handler (event bytes in, result JSON out) as an FC 2.0 HTTP handler
 * `(req, resp, context)`: e.g. `export const httpHandler = fc2HttpHandler(handler)`.
 */
export function fc2HttpHandler<C extends { requestId?: string }>(
  eventHandler: (event: Buffer, context: C) => Promise<string | Buffer | Uint8Array>,
): (req: AsyncIterable<unknown>, resp: Fc2HttpResponse, context: C) => Promise<void> {
  return async (req, resp, context) => {
    let result: FcHttpResult;
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(typeof c === 'string' ? Buffer.from(c) : Buffer.from(c as Uint8Array));
      const event = fc2HttpEvent(req, Buffer.concat(chunks), context?.requestId ?? randomBytes(8).toString('hex'));
      const out = await eventHandler(Buffer.from(stringifyWithBody(event)), context);
      result = fcHttpResultSchema.parse(JSON.parse(Buffer.from(out).toString('utf8')));
    } catch (e) {
      result = errorResult(e);
    }
    sendFc2HttpResult(resp, result);
  };
}
