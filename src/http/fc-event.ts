/**
 * Alibaba Function Compute 3.0 HTTP-trigger event and result.
 *
 * FC hands an HTTP-triggered function a JSON event describing the request and
 * expects a JSON result describing the response. Binary bodies travel as base64
 * (`isBase64Encoded: true`). The local gateway (./gateway.ts) produces the same
 * events, so the handler cannot tell the difference.
 */
import { isAscii } from 'node:buffer';
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
  if (typeof payload === 'string') return fcHttpEventSchema.parse(JSON.parse(payload));
  const json = parseFcPayloadJson(payload);
  return adoptDecodedBody(json, fcHttpEventSchema.parse(json));
}

/** Parse a function's result payload (JSON bytes). Throws a ZodError / SyntaxError on malformed input. */
export function parseFcHttpResult(payload: Buffer | Uint8Array): FcHttpResult {
  const json = parseFcPayloadJson(payload);
  return adoptDecodedBody(json, fcHttpResultSchema.parse(json));
}

/**
 * The HTTP event's parser for serve's parseEvent (which may not import this layer): the
 * event schema, with the large-body fast path in place of JSON.parse.
 */
export const fcHttpEventPayload = {
  parseJson: parseFcPayloadJson,
  safeParse(json: unknown) {
    const r = fcHttpEventSchema.safeParse(json);
    if (r.success) adoptDecodedBody(json, r.data);
    return r;
  },
};

/** `head` and `tail` of a payload's JSON around its body: `${head}${body}${tail}`. */
function jsonAroundBody(x: { body?: string }): [head: string, tail: string] {
  const mark = `__body_${randomBytes(8).toString('hex')}__`;
  const json = JSON.stringify({ ...x, body: mark });
  const i = json.indexOf(`"${mark}"`);
  return [json.slice(0, i + 1), json.slice(i + 1 + mark.length)];
}

const spliced = (x: { body?: string; isBase64Encoded?: boolean }): x is { body: string; isBase64Encoded: true } =>
  x.isBase64Encoded === true && typeof x.body === 'string' && x.body.length >= SPLICE_MIN;

/**
 * JSON of an event or result carrying a base64 body: the body is spliced in instead of going
 * through JSON.stringify, which scans every character (60 ms for the 17 MB event of a 12.6 MB
 * tensor). Base64 needs no escaping; other bodies take the plain path.
 */
export function stringifyWithBody(x: { body?: string; isBase64Encoded?: boolean }): string {
  if (!spliced(x)) return JSON.stringify(x);
  const [head, tail] = jsonAroundBody(x);
  return `${head}${x.body}${tail}`;
}

/**
 * The same JSON as bytes, byte for byte `Buffer.from(stringifyWithBody(x))`, written into one
 * buffer: encoding the concatenated 17 MB string costs ~14 ms, writing its parts ~3 ms.
 */
export function encodeFcPayload(x: { body?: string; isBase64Encoded?: boolean }): Buffer {
  if (!spliced(x)) return Buffer.from(JSON.stringify(x));
  const [head, tail] = jsonAroundBody(x);
  const h = Buffer.byteLength(head);
  const n = Buffer.byteLength(x.body); // = length for base64; anything else is still encoded as before
  const out = Buffer.allocUnsafe(h + n + Buffer.byteLength(tail));
  out.write(head, 0);
  out.write(x.body, h);
  out.write(tail, h + n);
  return out;
}

/** Serialise a result for the function's return value (FC expects JSON). */
export function serializeFcHttpResult(result: FcHttpResult): Buffer {
  return encodeFcPayload(fcHttpResultSchema.parse(result));
}

// ---- Large base64 bodies, parsed ----
// JSON.parse of the 17 MB event of a 12.6 MB tensor decodes and scans every character (~20-45 ms).
// A base64 body needs no JSON escaping, so its value runs from `"body":"` to the next quote and
// can be cut out of the bytes; only the rest (headers, context: a few hundred bytes) is parsed.

/** Bodies shorter than this take the plain path: the splice would save nothing worth its checks. */
const SPLICE_MIN = 1 << 16;
const BODY_KEY = Buffer.from('"body":"');
const QUOTE = 0x22;
/**
 * The body's stand-in while the rest is parsed: U+0000, whose one spelling in JSON is `\u0000`
 * (a raw control character is a syntax error). With that text nowhere else in the payload, a
 * parsed top-level body equal to it can only be the slot that was cut out.
 */
const STAND_IN = '\0';
const STAND_IN_JSON = '\\u0000';

/**
 * JSON.parse of a payload whose top-level `body` is a large, well-formed base64 string flagged
 * `isBase64Encoded: true`, without turning the body into UTF-8 text or scanning it as JSON; with
 * the body's bytes, decoded while checking it. Undefined for anything else (the caller parses the plain way), so
 * the value, when there is one, is exactly `JSON.parse(buf.toString('utf8'))`:
 * - the cut is `"body":"` up to the next quote; every byte of it is base64 (checked below), and
 *   base64 text means the same thing in JSON as in latin1, with no escapes;
 * - the cut may be a nested key's value, or sit inside some other string: then the stand-in is
 *   not the top-level body after parsing, and the payload is parsed whole instead;
 * - a later duplicate "body" would win in JSON.parse: likewise.
 */
export function spliceBase64Body(buf: Buffer): { value: Record<string, unknown>; bytes: Buffer } | undefined {
  const key = buf.indexOf(BODY_KEY);
  if (key < 0) return undefined;
  const start = key + BODY_KEY.length;
  const end = buf.indexOf(QUOTE, start);
  if (end - start < SPLICE_MIN) return undefined; // also no closing quote (end = -1)
  const seg = buf.subarray(start, end);
  // Every byte is in the alphabet when the decoded length is what the text length implies
  // (Node's decoder skips the rest; test/http/fc-event.test.ts tries every byte value). Same
  // rule as eventBody, so only bodies it would accept are taken; isAscii makes latin1 exact.
  if (!isAscii(seg)) return undefined;
  const body = seg.toString('latin1');
  const bytes = decodeBase64(body);
  if (!bytes) return undefined;
  const head = buf.subarray(0, start);
  const tail = buf.subarray(end);
  if (head.includes(STAND_IN_JSON) || tail.includes(STAND_IN_JSON)) return undefined;
  let value: unknown;
  try {
    // Cut at ASCII quotes, so decoding the two halves apart gives the same text as decoding the whole.
    value = JSON.parse(`${head.toString('utf8')}${STAND_IN_JSON}${tail.toString('utf8')}`);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (v.body !== STAND_IN || v.isBase64Encoded !== true) return undefined;
  v.body = body;
  return { value: v, bytes };
}

/**
 * `JSON.parse(payload.toString('utf8'))`, with the fast path above for a large base64 body
 * (whose bytes the next eventBody/resultBody of the parsed object then reuses).
 */
export function parseFcPayloadJson(payload: Buffer | Uint8Array): unknown {
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const fast = spliceBase64Body(buf);
  if (!fast) return JSON.parse(buf.toString('utf8'));
  decodedBodies.set(fast.value, { body: fast.value.body as string, bytes: fast.bytes });
  return fast.value;
}

/**
 * Bodies a fast parse already decoded, by the object that carries them. Handed out once: the
 * caller owns the buffer it gets (and may change it), as with a fresh decode.
 */
const decodedBodies = new WeakMap<object, { body: string; bytes: Buffer }>();

/** zod returns a new object: the decoded body moves to it. */
function adoptDecodedBody<T>(json: unknown, parsed: T): T {
  if (typeof json !== 'object' || json === null || typeof parsed !== 'object' || parsed === null) return parsed;
  const d = decodedBodies.get(json);
  if (d) {
    decodedBodies.delete(json);
    decodedBodies.set(parsed, d);
  }
  return parsed;
}

/** The decoded bytes of `x`'s body, if a fast parse left them and the body is still that text. */
function takeDecodedBody(x: object, body: string): Buffer | undefined {
  const d = decodedBodies.get(x);
  if (!d) return undefined;
  decodedBodies.delete(x);
  return d.body === body ? d.bytes : undefined;
}

const BASE64_TAIL_RE = /^[A-Za-z0-9+/]{2,3}={1,2}$/;

/** Base64 text as bytes, or undefined unless it is whole, well-formed base64. */
function decodeBase64(text: string): Buffer | undefined {
  // Node's decoder skips characters outside the alphabet, so text that decodes to fewer bytes
  // than its length implies was not base64 (a regex over a 17 MB body costs ~80 ms).
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = text.length % 4 === 0 ? Buffer.from(text, 'base64') : undefined;
  if (!out || out.length !== (text.length / 4) * 3 - pad || (pad && !BASE64_TAIL_RE.test(text.slice(-4)))) return undefined;
  return out;
}

/** The request body as bytes (decodes base64 bodies; rejects malformed base64 with 400). */
export function eventBody(event: Pick<FcHttpEvent, 'body' | 'isBase64Encoded'>): Buffer {
  const body = event.body ?? '';
  if (!event.isBase64Encoded) return Buffer.from(body, 'utf8');
  const out = takeDecodedBody(event, body) ?? decodeBase64(body);
  if (!out) throw badRequest('request body is marked isBase64Encoded but is not valid base64', { code: 'invalid_base64' });
  return out;
}

/** The result body as bytes. */
export function resultBody(result: Pick<FcHttpResult, 'body' | 'isBase64Encoded'>): Buffer {
  const body = result.body ?? '';
  if (!result.isBase64Encoded) return Buffer.from(body, 'utf8');
  return takeDecodedBody(result, body) ?? Buffer.from(body, 'base64');
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
      const out = await eventHandler(encodeFcPayload(event), context);
      result = parseFcHttpResult(typeof out === 'string' ? Buffer.from(out) : out);
    } catch (e) {
      result = errorResult(e);
    }
    sendFc2HttpResult(resp, result);
  };
}
