/**
 * Local stand-in for FC's HTTP trigger: an HTTP server that turns each request
 * into an FC 3.0 HTTP-trigger event, hands it to `invoke` (normally the handler
 * function running in its own process), and turns the result back into an
 * HTTP response.
 *
 * - Bodies are streamed with a byte cap: past `maxBodyBytes` the gateway answers
 *   413 at once, keeps nothing of the rest, and closes the connection (after a
 *   short lingering drain so the client can read the 413 instead of a reset).
 * - A failing `invoke` gives a 5xx JSON error; the server keeps serving.
 * - Every request gets an `x-request-id` (the client's if it sent a sane one),
 *   carried in the event (header and requestContext.requestId) and the response.
 * - With `access`, requests without a valid API key get 401 before their body is read
 *   (the handler checks again: on FC it is the only check).
 * - With `admission`, inference requests (POST /v2/models/{name}/infer) wait for one of a
 *   bounded number of slots in a bounded queue, or get 503 with Retry-After. The request's
 *   deadline starts when it arrives here; the event's `x-request-timeout-ms` carries what is
 *   left of it when the handler is invoked.
 * - With `metrics`, `GET /metrics` is answered here (open, like health) from a registry fed by
 *   every response the function gives, whichever instance gave it.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FunctionCrashedError, FunctionError, FunctionNotFoundError, FunctionTimeoutError, InvokeError, PayloadTooLargeError } from '../invoke/errors.ts';
import type { ApiKeys } from './access.ts';
import { type Admission, REQUEST_TIMEOUT_HEADER, requestDeadline } from './admission.ts';
import { HttpError, badGateway, gatewayTimeout, internal, payloadTooLarge } from './errors.ts';
import { type FcHttpEvent, type FcHttpResult, fcHttpResultSchema, resultBody, describeZodError } from './fc-event.ts';

export interface GatewayOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Request body cap; FC's synchronous-invocation limit is 32 MB (the base64 event is larger). */
  maxBodyBytes: number;
  invoke: (event: FcHttpEvent) => Promise<FcHttpResult>;
  /** How long to keep draining (and discarding) an over-limit upload after the 413 before closing. Default 2000 ms. */
  lingerMs?: number;
  /** Called with failures of `invoke` and malformed results (default: console.error). */
  onError?: (err: unknown, event: FcHttpEvent) => void;
  /** API keys checked before the body is read; absent: open. */
  access?: ApiKeys;
  /** Slots and queue for inference requests; absent: every request is passed on at once. */
  admission?: Admission;
  /** Server-side request deadline, ms (the client's x-request-timeout-ms may shorten it). */
  requestTimeoutMs?: number;
  /** Answers `GET /metrics` here (open, like health) and sees every request the function answers. */
  metrics?: GatewayMetrics;
}

/** A metrics registry fed from the responses (src/telemetry/metrics.ts: `gatewayMetrics`). */
export interface GatewayMetrics {
  readonly contentType: string;
  render(): Promise<string>;
  /** One request passed on to the function: its HTTP status, seconds since it arrived, and the function's result if any. */
  observe(event: FcHttpEvent, status: number, seconds: number, result?: FcHttpResult): void;
}

const INFER_PATH_RE = /^\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/infer\/?$/;

export interface Gateway {
  url: string;
  close(): Promise<void>;
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
/** Response headers the gateway owns (framing / connection management). */
const HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'trailer', 'te', 'proxy-connection']);

/** The client's `x-request-id` if it is sane, else a fresh UUID. */
function requestIdOf(headers: http.IncomingHttpHeaders): string {
  const v = headers['x-request-id'];
  return typeof v === 'string' && REQUEST_ID_RE.test(v) ? v : randomUUID();
}

function flattenHeaders(raw: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

function queryParameters(url: URL): Record<string, string> {
  const out: Record<string, string> = {};
  // First value wins for repeated keys.
  for (const [k, v] of url.searchParams) if (!(k in out)) out[k] = v;
  return out;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const buf = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': buf.length });
  res.end(buf);
}

/** Map an `invoke` failure to the HTTP error FC's trigger would give. */
function invokeFailure(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof FunctionTimeoutError) return gatewayTimeout(`function invocation timed out: ${err.message}`, { code: 'function_timeout' });
  if (err instanceof PayloadTooLargeError) {
    return err.direction === 'request'
      ? payloadTooLarge(`request too large for the function: ${err.message}`, { code: 'function_payload_too_large' })
      : badGateway(`function response too large: ${err.message}`, { code: 'function_payload_too_large' });
  }
  if (err instanceof FunctionCrashedError) return badGateway(`function crashed: ${err.message}`, { code: 'function_crashed' });
  if (err instanceof FunctionError) return badGateway(`function failed: ${err.errorType}: ${err.errorMessage}`, { code: 'function_error' });
  if (err instanceof FunctionNotFoundError) return badGateway(`function not available: ${err.message}`, { code: 'function_not_found' });
  if (err instanceof InvokeError) return badGateway(`function invocation failed: ${err.message}`, { code: 'invoke_failed' });
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return badGateway(`function invocation failed: ${msg}`, { code: 'invoke_failed' });
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const { maxBodyBytes, invoke } = opts;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 0) throw new RangeError(`maxBodyBytes must be a non-negative integer, got ${maxBodyBytes}`);
  const lingerMs = opts.lingerMs ?? 2000;
  const onError = opts.onError ?? ((err, event) => console.error(`[gateway] ${event.requestContext.requestId} ${event.requestContext.http.method} ${event.rawPath}:`, err));

  /**
   * Answer 413 without keeping any more of the body, then close the connection.
   * Node destroys a `connection: close` socket as soon as the response is
   * flushed; with upload bytes still in flight that turns into a TCP reset that
   * can reach the client before it reads the 413. So: half-close (FIN) after
   * the response, keep reading and discarding, and destroy the socket when the
   * client closes its side or after `lingerMs` (nginx-style lingering close).
   */
  const reject413 = (req: http.IncomingMessage, res: http.ServerResponse, requestId: string, size: string) => {
    rejectEarly(req, res, requestId, payloadTooLarge(`request body of ${size} bytes is over the limit of ${maxBodyBytes} bytes`, {
      code: 'payload_too_large',
      details: { limit: maxBodyBytes },
    }));
  };

  /** An answer before (or instead of) reading the body: 413, 401, 400; closes like the 413 above. */
  const rejectEarly = (req: http.IncomingMessage, res: http.ServerResponse, requestId: string, err: HttpError) => {
    const socket = req.socket;
    socket.destroySoon = function (this: typeof socket) {
      if (this.writable) this.end();
    };
    const timer = setTimeout(() => socket.destroy(), lingerMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.once('end', () => socket.end()); // client done too: both halves closed → socket closes
    req.removeAllListeners('data');
    req.on('data', () => {}); // discard
    req.on('error', () => {});
    req.once('end', () => socket.end()); // upload fully drained: nothing left to reset; end() flushes the 413 first
    req.resume();
    res.shouldKeepAlive = false;
    sendJson(res, err.status, err.toJSON(), { ...err.headers, 'x-request-id': requestId, connection: 'close' });
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const headers = flattenHeaders(req.headers);
    const requestId = requestIdOf(req.headers);
    headers['x-request-id'] = requestId;
    res.on('error', () => {});
    const t0 = performance.now();

    const declared = headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBodyBytes) {
      reject413(req, res, requestId, declared);
      return;
    }

    const url = new URL(req.url ?? '/', 'http://gateway.local');
    if (opts.metrics && req.method === 'GET' && (url.pathname === '/metrics' || url.pathname === '/metrics/')) {
      const body = Buffer.from(await opts.metrics.render());
      req.resume();
      res.writeHead(200, { 'content-type': opts.metrics.contentType, 'content-length': body.length, 'x-request-id': requestId });
      res.end(body);
      return;
    }
    const isInfer = req.method === 'POST' && INFER_PATH_RE.test(url.pathname);
    let deadline: number | undefined;
    try {
      opts.access?.check(url.pathname.length > 1 ? url.pathname.replace(/\/$/, '') : url.pathname, (name) => headers[name]);
      if (isInfer && (opts.admission || opts.requestTimeoutMs !== undefined)) {
        const d = requestDeadline(headers[REQUEST_TIMEOUT_HEADER], opts.requestTimeoutMs ?? Infinity);
        if (Number.isFinite(d)) deadline = d;
        // Refusing before the body is read keeps refusals cheap under overload.
        opts.admission?.check(deadline);
      }
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      if (req.complete) sendJson(res, err.status, err.toJSON(), { ...err.headers, 'x-request-id': requestId });
      else rejectEarly(req, res, requestId, err);
      return;
    }

    // Stream the body with a cap.
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const complete = await new Promise<boolean>((resolve) => {
      req.on('data', (chunk: Buffer) => {
        if (over) return;
        size += chunk.length;
        if (size > maxBodyBytes) {
          over = true;
          chunks.length = 0;
          reject413(req, res, requestId, `more than ${maxBodyBytes}`);
          resolve(false);
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => resolve(!over));
      req.on('error', () => resolve(false));
      req.on('close', () => resolve(!over && req.complete));
    });
    if (!complete) return;

    const now = new Date();
    const event: FcHttpEvent = {
      version: 'v1',
      rawPath: url.pathname,
      body: Buffer.concat(chunks).toString('base64'),
      isBase64Encoded: true,
      headers,
      queryParameters: queryParameters(url),
      requestContext: {
        accountId: 'local',
        domainName: headers.host ?? 'localhost',
        domainPrefix: 'local',
        http: {
          method: (req.method ?? 'GET').toUpperCase(),
          path: url.pathname,
          protocol: `HTTP/${req.httpVersion}`,
          sourceIp: req.socket.remoteAddress ?? '',
          userAgent: headers['user-agent'] ?? '',
        },
        requestId,
        time: now.toISOString(),
        timeEpoch: String(now.getTime()),
      },
    };

    let result: FcHttpResult;
    try {
      const call = () => {
        if (deadline !== undefined) event.headers[REQUEST_TIMEOUT_HEADER] = String(Math.max(1, Math.round(deadline - Date.now())));
        return invoke(event);
      };
      const raw = isInfer && opts.admission ? await opts.admission.run(call, deadline) : await call();
      const parsed = fcHttpResultSchema.safeParse(raw);
      if (!parsed.success) {
        throw badGateway(`function returned an invalid HTTP trigger result: ${describeZodError(parsed.error)}`, { code: 'invalid_function_result' });
      }
      result = parsed.data;
    } catch (err) {
      const httpErr = invokeFailure(err);
      opts.metrics?.observe(event, httpErr.status, (performance.now() - t0) / 1000);
      // Refusals under load are expected: not logged one by one.
      if (!(err instanceof HttpError && err.headers?.['retry-after'] !== undefined)) onError(err, event);
      sendJson(res, httpErr.status, httpErr.toJSON(), { ...httpErr.headers, 'x-request-id': requestId });
      return;
    }
    if (res.destroyed) return; // client went away meanwhile

    const body = resultBody(result);
    const out: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(result.headers ?? {})) {
      const lk = k.toLowerCase();
      if (!HOP_BY_HOP.has(lk)) out[lk] = v;
    }
    out['x-request-id'] = requestId;
    out['content-length'] = body.length;
    try {
      res.writeHead(result.statusCode, out);
    } catch (err) {
      // e.g. a header value with invalid characters
      const httpErr = badGateway(`function returned an unusable response: ${(err as Error).message}`, { code: 'invalid_function_result' });
      onError(err, event);
      sendJson(res, httpErr.status, httpErr.toJSON(), { 'x-request-id': requestId });
      return;
    }
    opts.metrics?.observe(event, result.statusCode, (performance.now() - t0) / 1000, result);
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      // Last resort: never let one request take the server down.
      const e = internal('gateway error');
      console.error('[gateway] unexpected error:', err);
      try {
        sendJson(res, 500, e.toJSON(), {});
      } catch {
        res.destroy();
      }
    });
  });
  // Reject over-limit uploads that ask first, before any body is sent.
  server.on('checkContinue', (req, res) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBodyBytes) {
      const requestId = requestIdOf(req.headers);
      const err = payloadTooLarge(`request body of ${declared} bytes is over the limit of ${maxBodyBytes} bytes`, { details: { limit: maxBodyBytes } });
      res.shouldKeepAlive = false;
      sendJson(res, 413, err.toJSON(), { 'x-request-id': requestId, connection: 'close' });
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
  // Requests Node's parser refuses (malformed, headers over --max-http-header-size) still get JSON.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // A response already under way (a 401 or 413 sent before the body): a second one would be garbage.
    const inFlight = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!socket.writable || inFlight?.headersSent) return void socket.destroy();
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const body = JSON.stringify(tooLarge
      ? { error: 'request headers are too large', code: 'headers_too_large' }
      : { error: 'malformed HTTP request', code: 'bad_http_request' });
    const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
