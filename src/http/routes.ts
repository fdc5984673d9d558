/**
 * The handler's HTTP routing (KServe / OIP v2 REST), independent of how
 * inference is done: the backend is injected.
 *
 *   GET  /v2                          server metadata
 *   GET  /v2/health/live              {live: true}
 *   GET  /v2/health/ready             200 {ready: true} | 503 {ready: false}
 *   GET  /v2/models/{name}            model metadata
 *   GET  /v2/models/{name}/ready      200 {name, ready: true} | 503
 *   POST /v2/models/{name}/infer      image/* body → preprocess → infer (+ top_k)
 *                                     otherwise OIP v2 JSON / binary tensor request
 *   GET  /metrics                     Prometheus text format (with `metrics`; open like health)
 *
 * With `access` set, every route but the health checks needs an API key (./access.ts), checked
 * before anything else, so a 401 tells nothing about which routes or models exist. Inference
 * runs under `admission` (./admission.ts) with a deadline: `requestTimeoutMs`, or the client's
 * shorter `x-request-timeout-ms`, passed to the backend.
 */
import type { ApiKeys } from './access.ts';
import { type Admission, REQUEST_TIMEOUT_HEADER, requestDeadline } from './admission.ts';
import type { FloatTensor } from '../runtime/ort.ts';
import { badRequest, internal, methodNotAllowed, notFound, payloadTooLarge, toHttpError, unsupportedMediaType } from './errors.ts';
import { type FcHttpEvent, type FcHttpResult, binaryResult, eventBody, eventHeader, jsonResult, mediaType } from './fc-event.ts';
import { preprocessImage } from './image.ts';
import type { InferenceBackend, ModelEntry } from '../serve/model-entry.ts';
import { detectionInput, detectionResponse, toBgr, wantsProbabilityMap } from './text-detection.ts';
import { segmentationMask } from './segmentation.ts';
import { type ResponseOutput, elementCount, modelMetadata } from './oip.ts';
import { parseInferRequest } from './oip-request.ts';
import { encodeInferResponse } from './oip-response.ts';
import { classificationOutput, topK } from './oip-classification.ts';

export interface RouteDeps {
  models: Map<string, ModelEntry>;
  backend: InferenceBackend;
  /** top_k entries returned for image requests (default 5; `?top_k=N` overrides, 0..100). */
  topK?: number;
  /** Server name/version for GET /v2. */
  server?: { name: string; version: string };
  /** Called for 5xx failures (default: console.error). Pass a no-op to silence. */
  onError?: (err: unknown, event: FcHttpEvent) => void;
  /** API keys; absent or empty: open. */
  access?: ApiKeys;
  /** Bounds this instance's concurrent inference requests; absent: unbounded. */
  admission?: Admission;
  /** Server-side request deadline, ms; absent: the backend's own timeout (the client header still applies). */
  requestTimeoutMs?: number;
  /** Prometheus metrics: `GET /metrics` (open, like health) and one observation per inference request. */
  metrics?: RouteMetrics;
  /** Set by `route()` for one request: receives the backend's cost report. */
  onCost?: (cost: unknown) => void;
}

/** What the routes need of a metrics registry (src/telemetry/metrics.ts implements it). */
export interface RouteMetrics {
  readonly contentType: string;
  render(): Promise<string>;
  /** An answered inference request; `cost` is the backend's report, unparsed. */
  observe(o: { model: string; status: number; seconds: number; cost?: unknown }): void;
}

export const SERVER_EXTENSIONS = ['binary_tensor_data', 'classification'] as const;
const MAX_TOP_K = 100;

type Handler = (event: FcHttpEvent, deps: RouteDeps, params: string[]) => Promise<FcHttpResult>;
interface Route {
  pattern: RegExp;
  methods: Record<string, Handler>;
}

const ROUTES: Route[] = [
  { pattern: /^\/v2$/, methods: { GET: serverMetadata } },
  { pattern: /^\/v2\/health\/live$/, methods: { GET: async () => jsonResult(200, { live: true }) } },
  { pattern: /^\/v2\/health\/ready$/, methods: { GET: serverReady } },
  { pattern: /^\/v2\/models\/([^/]+)$/, methods: { GET: modelMetadataRoute } },
  { pattern: /^\/v2\/models\/([^/]+)\/ready$/, methods: { GET: modelReady } },
  { pattern: /^\/v2\/models\/([^/]+)\/infer$/, methods: { POST: infer } },
  // A version of a repository model is registered as `<name>/<version>`.
  { pattern: /^\/v2\/models\/([^/]+)\/versions\/([^/]+)$/, methods: { GET: versioned(modelMetadataRoute) } },
  { pattern: /^\/v2\/models\/([^/]+)\/versions\/([^/]+)\/ready$/, methods: { GET: versioned(modelReady) } },
  { pattern: /^\/v2\/models\/([^/]+)\/versions\/([^/]+)\/infer$/, methods: { POST: versioned(infer) } },
];

function versioned(h: Handler): Handler {
  return (event, deps, [name, version]) => h(event, deps, [`${name}/${version}`]);
}

/** Routes one event; with `deps.metrics`, also serves `GET /metrics` and observes inference requests. */
export async function route(event: FcHttpEvent, deps: RouteDeps): Promise<FcHttpResult> {
  const metrics = deps.metrics;
  if (!metrics) return routeEvent(event, deps);
  const path = normalPath(event);
  // Open like the health checks: scrapers carry no API key, and the numbers name no client data.
  if (path === '/metrics' && event.requestContext.http.method.toUpperCase() === 'GET') {
    return { statusCode: 200, headers: { 'content-type': metrics.contentType }, body: await metrics.render(), isBase64Encoded: false };
  }
  const m = /^\/v2\/models\/([^/]+)\/infer$/.exec(path);
  if (!m) return routeEvent(event, deps);
  const t0 = performance.now();
  let cost: unknown;
  const result = await routeEvent(event, { ...deps, onCost: (c) => { cost = c; } });
  let name: string;
  try { name = decodeURIComponent(m[1]!); } catch { name = m[1]!; }
  // Clients choose the path: unknown names share one label rather than growing the registry.
  metrics.observe({ model: deps.models.has(name) ? name : 'other', status: result.statusCode, seconds: (performance.now() - t0) / 1000, cost });
  return result;
}

function normalPath(event: FcHttpEvent): string {
  let path = event.rawPath || event.requestContext.http.path || '/';
  const q = path.indexOf('?');
  if (q >= 0) path = path.slice(0, q);
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

async function routeEvent(event: FcHttpEvent, deps: RouteDeps): Promise<FcHttpResult> {
  try {
    let path = event.rawPath || event.requestContext.http.path || '/';
    const q = path.indexOf('?');
    if (q >= 0) path = path.slice(0, q);
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const method = event.requestContext.http.method.toUpperCase();
    deps.access?.check(path, (name) => eventHeader(event, name));
    for (const r of ROUTES) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      const params = m.slice(1).map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          throw badRequest(`malformed percent-encoding in path segment ${JSON.stringify(p)}`, { code: 'invalid_path' });
        }
      });
      const handler = r.methods[method];
      if (!handler) throw methodNotAllowed(method, path, Object.keys(r.methods));
      return await handler(event, deps, params);
    }
    throw notFound(`no route for ${method} ${path}`, { code: 'unknown_route' });
  } catch (err) {
    // The client's mistakes and refusals under load (503 with Retry-After) are expected, not
    // failures worth a log line each.
    const httpErr = toHttpError(err);
    if (!(httpErr.status < 500 || httpErr.headers?.['retry-after'] !== undefined)) {
      (deps.onError ?? defaultOnError)(err, event);
    }
    return jsonResult(httpErr.status, httpErr.toJSON(), httpErr.headers);
  }
}

function defaultOnError(err: unknown, event: FcHttpEvent): void {
  console.error(`[handler] ${event.requestContext.requestId} ${event.requestContext.http.method} ${event.rawPath}:`, err);
}

function lookupModel(deps: RouteDeps, name: string): ModelEntry {
  const m = deps.models.get(name);
  if (!m) {
    const available = [...deps.models.keys()].sort();
    throw notFound(`unknown model ${JSON.stringify(name)}; available: ${available.join(', ') || '(none)'}`, {
      code: 'unknown_model',
      details: { model: name, available },
    });
  }
  return m;
}

async function isReady(deps: RouteDeps): Promise<boolean> {
  try {
    return (await deps.backend.ready()) === true;
  } catch {
    return false;
  }
}

async function serverMetadata(_e: FcHttpEvent, deps: RouteDeps): Promise<FcHttpResult> {
  return jsonResult(200, {
    name: deps.server?.name ?? 'fc-tiled-cnn',
    version: deps.server?.version ?? '0.1.0',
    extensions: [...SERVER_EXTENSIONS],
  });
}

async function serverReady(_e: FcHttpEvent, deps: RouteDeps): Promise<FcHttpResult> {
  const ready = await isReady(deps);
  return jsonResult(ready ? 200 : 503, { ready });
}

async function modelMetadataRoute(_e: FcHttpEvent, deps: RouteDeps, [name]: string[]): Promise<FcHttpResult> {
  const m = lookupModel(deps, name!);
  if (m.metadata) return jsonResult(200, modelMetadata({ name: m.name, ...m.metadata }));
  return jsonResult(
    200,
    modelMetadata({
      name: m.name,
      inputs: [{ name: m.inputName, datatype: 'FP32', shape: m.inputShape }],
      outputs: [{ name: m.outputName, datatype: 'FP32', shape: m.outputShape }],
    }),
  );
}

async function modelReady(_e: FcHttpEvent, deps: RouteDeps, [name]: string[]): Promise<FcHttpResult> {
  const m = lookupModel(deps, name!);
  const ready = await isReady(deps);
  return jsonResult(ready ? 200 : 503, { name: m.name, ready });
}

const fmt = (s: readonly number[]) => `[${s.join(',')}]`;

/** Fixed dims must be equal, -1 is free; ranks must match. 400 naming the input. */
export function checkInputShape(model: ModelEntry, shape: readonly number[]): void {
  const want = model.inputShape;
  const what = `input "${model.inputName}" of model "${model.name}"`;
  if (shape.length !== want.length) {
    throw badRequest(`${what}: expected rank ${want.length} shape ${fmt(want)}, got ${fmt(shape)}`, { code: 'shape_mismatch', details: { expected: want, got: shape } });
  }
  for (let i = 0; i < want.length; i++) {
    if (want[i]! >= 0 && shape[i] !== want[i]) {
      const dimName = want.length === 4 ? ['N (batch)', 'C (channels)', 'H (height)', 'W (width)'][i] : `dimension ${i}`;
      throw badRequest(`${what}: ${dimName} must be ${want[i]}, got ${shape[i]} (expected shape ${fmt(want)}, -1 = any)`, {
        code: 'shape_mismatch',
        details: { expected: want, got: shape },
      });
    }
  }
  const count = elementCount(shape, what);
  if (count === 0) throw badRequest(`${what}: shape ${fmt(shape)} has no elements`, { code: 'shape_mismatch' });
  if (model.maxInputElements !== undefined && count > model.maxInputElements) {
    throw payloadTooLarge(`${what}: ${count} elements (shape ${fmt(shape)}) is over the limit of ${model.maxInputElements}`, {
      code: 'input_too_large',
      details: { limit: model.maxInputElements },
    });
  }
}

async function runBackend(deps: RouteDeps, model: ModelEntry, input: FloatTensor, requestId: string, deadline: number | undefined): Promise<{ output: FloatTensor; cost: unknown }> {
  const res = await deps.backend.infer(model, input, requestId, deadline === undefined ? undefined : { deadline });
  deps.onCost?.(res.cost);
  const { output } = res;
  if (!output || !(output.data instanceof Float32Array) || !Array.isArray(output.dims)) {
    throw internal(`backend returned no output tensor for model "${model.name}"`);
  }
  let n = 1;
  for (const d of output.dims) n *= d;
  if (n !== output.data.length) {
    throw internal(`backend output of model "${model.name}" has dims ${fmt(output.dims)} but ${output.data.length} elements`);
  }
  return res;
}

function parseTopKParam(event: FcHttpEvent, dflt: number): number {
  const raw = event.queryParameters?.top_k;
  if (raw === undefined) return dflt;
  if (!/^\d+$/.test(raw) || Number(raw) > MAX_TOP_K) {
    throw badRequest(`query parameter top_k must be an integer in 0..${MAX_TOP_K}, got ${JSON.stringify(raw)}`, { code: 'invalid_parameter' });
  }
  return Number(raw);
}

/** Per-row top-k for [N, ...] outputs: a flat list for N = 1, else one list per row. */
function topKRows(output: FloatTensor, k: number, labels?: string[]) {
  const rows = output.dims.length >= 2 ? output.dims[0]! : 1;
  if (rows <= 1) return topK(output.data, k, labels);
  const per = output.data.length / rows;
  return Array.from({ length: rows }, (_, r) => topK(output.data.subarray(r * per, (r + 1) * per), k, labels));
}

function costParams(cost: unknown): Record<string, unknown> {
  return cost === undefined ? {} : { cost };
}

/** The request's deadline (epoch ms), or undefined when neither the server nor the client sets one. */
function deadlineOf(event: FcHttpEvent, deps: RouteDeps): number | undefined {
  const header = eventHeader(event, REQUEST_TIMEOUT_HEADER);
  if (deps.requestTimeoutMs !== undefined) return requestDeadline(header, deps.requestTimeoutMs);
  return header === undefined ? undefined : requestDeadline(header, Infinity);
}

async function infer(event: FcHttpEvent, deps: RouteDeps, params: string[]): Promise<FcHttpResult> {
  lookupModel(deps, params[0]!); // 404 before waiting for a slot
  const deadline = deadlineOf(event, deps);
  if (!deps.admission) return inferAdmitted(event, deps, params, deadline);
  return deps.admission.run(() => inferAdmitted(event, deps, params, deadline), deadline);
}

async function inferAdmitted(event: FcHttpEvent, deps: RouteDeps, [name]: string[], deadline: number | undefined): Promise<FcHttpResult> {
  const model = lookupModel(deps, name!);
  const requestId = event.requestContext.requestId;
  const contentType = eventHeader(event, 'content-type');
  const type = mediaType(contentType);
  const body = eventBody(event);

  if (type.startsWith('image/') && model.textDetection) {
    const probabilityMap = wantsProbabilityMap(event);
    const { tensor, image } = await detectionInput(body, contentType ?? '', model.textDetection);
    checkInputShape(model, tensor.dims);
    const { output, cost } = await runBackend(deps, model, tensor, requestId, deadline);
    const enc = await detectionResponse(model, requestId, output, image, { probabilityMap, parameters: costParams(cost) });
    return enc.binary ? binaryResult(200, enc.body, enc.headers) : { statusCode: 200, headers: enc.headers, body: enc.body.toString('utf8'), isBase64Encoded: false };
  }

  if (type.startsWith('image/')) {
    if (!model.preprocessing) {
      throw unsupportedMediaType(`model "${model.name}" does not accept images (no preprocessing configured); send an OIP v2 tensor request`, {
        code: 'images_not_supported',
      });
    }
    const k = parseTopKParam(event, deps.topK ?? 5);
    const rgb = await preprocessImage(body, contentType ?? '', model.preprocessing);
    const input = model.channelOrder === 'bgr' ? toBgr(rgb) : rgb;
    try {
      checkInputShape(model, input.dims);
    } catch (e) {
      // The preprocessing config disagrees with the model: a server misconfiguration, not the client's fault.
      throw internal(`preprocessing of model "${model.name}" produces ${fmt(input.dims)}, which the model does not accept`, { cause: e });
    }
    const { output, cost } = await runBackend(deps, model, input, requestId, deadline);
    const out: ResponseOutput = { name: model.outputName, shape: output.dims, datatype: 'FP32', data: output.data };
    const enc = encodeInferResponse({
      model_name: model.name,
      id: requestId,
      parameters: { top_k: topKRows(output, k, model.labels), ...costParams(cost) },
      outputs: [out],
    });
    return { statusCode: 200, headers: enc.headers, body: enc.body.toString('utf8'), isBase64Encoded: false };
  }

  const req = parseInferRequest(body, event.headers ?? {});
  if (req.inputs.length !== 1 || req.inputs[0]!.name !== model.inputName) {
    const got = req.inputs.map((i) => JSON.stringify(i.name)).join(', ');
    throw badRequest(`model "${model.name}" takes exactly one input "${model.inputName}"; got ${got}`, { code: 'invalid_input_name' });
  }
  const input = req.inputs[0]!;
  checkInputShape(model, input.shape);
  for (const o of req.outputs ?? []) {
    if (o.name !== model.outputName && !(model.segmentation && o.name === 'mask')) {
      throw badRequest(`unknown output ${JSON.stringify(o.name)} requested; model "${model.name}" has output "${model.outputName}"`, {
        code: 'unknown_output',
        details: { output: o.name },
      });
    }
  }

  const { output, cost } = await runBackend(deps, model, { dims: [...input.shape], data: input.data }, requestId, deadline);
  const classification = req.outputs?.find((o) => o.name === model.outputName)?.classification;
  const out: ResponseOutput =
    classification !== undefined
      ? classificationOutput(model.outputName, output.dims, output.data, classification, model.labels)
      : { name: model.outputName, shape: output.dims, datatype: 'FP32', data: output.data };
  const enc = encodeInferResponse(
    {
      model_name: model.name,
      ...(req.id !== undefined ? { id: req.id } : {}),
      parameters: { request_id: requestId, ...costParams(cost) },
      outputs: model.segmentation && output.dims.length === 4 ? [out, segmentationMask(output)] : [out],
    },
    { binary: req.binaryOutput },
  );
  return enc.binary ? binaryResult(200, enc.body, enc.headers) : { statusCode: 200, headers: enc.headers, body: enc.body.toString('utf8'), isBase64Encoded: false };
}
