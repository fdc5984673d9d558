import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-node';
import { ConfigError, functionEnv, loadConfig } from '../../src/config.ts';
import { startTracing, otlpTracesUrl, parseOtlpHeaders } from '../../src/telemetry/tracing.ts';
import { makeLogger } from '../../src/telemetry/log.ts';
import { costOfResponse, inferModelOf, ServeMetrics } from '../../src/telemetry/metrics.ts';
import { TelemetryError } from '../../src/telemetry/errors.ts';
import { inSpan, traceFields } from '../../src/serve/trace.ts';
import { workerTaskSchema } from '../../src/serve/protocol.ts';

describe('telemetry configuration', () => {
  it('reads the standard OTLP variables and hands them to function processes', () => {
    const c = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_HEADERS: 'x-sls-otel-project=p', LOG_LEVEL: 'debug' });
    assert.equal(otlpTracesUrl(c.telemetry), 'http://collector:4318/v1/traces');
    assert.equal(otlpTracesUrl({ ...c.telemetry, otlpTracesEndpoint: 'http://other/traces' }), 'http://other/traces');
    const env = functionEnv(c);
    assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://collector:4318/');
    assert.equal(env.OTEL_EXPORTER_OTLP_HEADERS, 'x-sls-otel-project=p');
    assert.equal(env.LOG_LEVEL, 'debug');
    assert.equal(otlpTracesUrl(loadConfig({}).telemetry), undefined);
  });

  it('refuses a protocol the JSON exporter cannot speak, naming the variable', () => {
    assert.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }), (e: Error) => e instanceof ConfigError && /OTEL_EXPORTER_OTLP_PROTOCOL: only http\/json/.test(e.message));
    assert.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), /OTEL_EXPORTER_OTLP_ENDPOINT/);
  });

  it('parses OTLP headers without echoing their values', () => {
    assert.deepEqual(parseOtlpHeaders('a=1, x-sls-otel-ak-secret=s%3Dcret'), { a: '1', 'x-sls-otel-ak-secret': 's=cret' });
    assert.throws(() => parseOtlpHeaders('a=1,topsecret'), (e: Error) => e instanceof TelemetryError && /entry 2/.test(e.message) && !e.message.includes('topsecret'));
  });
});

describe('tracing and logs in one instance', () => {
  const exporter = new InMemorySpanExporter();
  const tracing = startTracing({ otlpTimeoutMs: 1000, logLevel: 'info' }, { functionName: 'worker', region: 'cn-hangzhou' }, exporter);
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const parent = '00f067aa0ba902b7';

  it('an invocation runs under the carrier\'s trace, its spans exported before it returns', async () => {
    exporter.reset();
    let fields: ReturnType<typeof traceFields> = {};
    await tracing.invocation('worker', { traceparent: `00-${traceId}-${parent}-01`, tracestate: 'ali=1' }, { 'request.id': 'r1' }, async () => {
      await inSpan('stage 3', { 'stage.id': 3 }, async () => { fields = traceFields(); });
    });
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(spans.map((s) => s.name).sort(), ['stage 3', 'worker']);
    const server = spans.find((s) => s.name === 'worker')!;
    assert.equal(server.spanContext().traceId, traceId);
    assert.equal(server.parentSpanContext?.spanId, parent);
    assert.equal(server.resource.attributes['service.name'], 'worker');
    assert.equal(server.resource.attributes['faas.name'], 'worker');
    assert.equal(server.resource.attributes['cloud.region'], 'cn-hangzhou');
    // What a payload would carry from inside the stage: the same trace, the stage as parent, the vendor state kept.
    const stage = spans.find((s) => s.name === 'stage 3')!;
    assert.equal(fields.traceparent, `00-${traceId}-${stage.spanContext().spanId}-01`);
    assert.equal(fields.tracestate, 'ali=1');
    assert.ok(workerTaskSchema.safeParse({ requestId: 'r1', planKey: 'p', maxWorkers: 4, batch: 1, deadline: 1, chain: 0, worker: 0, ...fields }).success);
  });

  it('task schemas refuse a malformed traceparent', () => {
    const r = workerTaskSchema.safeParse({ requestId: 'r1', planKey: 'p', maxWorkers: 4, batch: 1, deadline: 1, chain: 0, worker: 0, traceparent: 'not-a-trace' });
    assert.ok(!r.success && /W3C traceparent/.test(r.error.issues[0].message));
  });

  it('a failing invocation records the error and still flushes', async () => {
    exporter.reset();
    await assert.rejects(tracing.invocation('worker', {}, {}, async () => { throw new Error('tile 3 lost'); }), /tile 3 lost/);
    const [span] = exporter.getFinishedSpans();
    assert.equal(span.status.code, 2);
    assert.equal(span.parentSpanContext, undefined, 'no carrier: a root span');
  });

  it('log lines carry the trace and span ids of the active span, and the request id', async () => {
    const out = new PassThrough();
    const lines: string[] = [];
    out.on('data', (b: Buffer) => lines.push(...b.toString('utf8').split('\n').filter(Boolean)));
    const log = makeLogger({ name: 'worker', destination: out });
    await tracing.invocation('worker', { traceparent: `00-${traceId}-${parent}-01` }, {}, async () => { log.info({ requestId: 'r9' }, 'invocation done'); });
    log.info('outside');
    await new Promise((r) => setImmediate(r));
    const [inside, outside] = lines.map((l) => JSON.parse(l));
    assert.equal(inside.trace_id, traceId);
    assert.match(inside.span_id, /^[0-9a-f]{16}$/);
    assert.equal(inside.requestId, 'r9');
    assert.equal(inside.name, 'worker');
    assert.equal(outside.trace_id, undefined);
  });
});

describe('metrics from cost reports', () => {
  const cost = {
    requestId: 'r1',
    ms: { total: 120, storeInput: 5, master: 100, fetchOutput: 15, masterLoadPlan: 2 },
    stages: [{ id: 0, kind: 'chain', stages: [0, 1], ms: 90, invocations: 4, coldStarts: 1, maxColdStartMs: 300, maxWorkerMs: 88, maxWorkerComputeMs: 60, peakWorkerRssMb: 300, bytesRead: 10, bytesWritten: 20, storeRequests: 8, retries: 2, storeRetries: 1 }],
    invocations: { master: 1, worker: 4, coldStarts: 1, retries: 2 },
    store: { requests: 12, bytesRead: 100, bytesWritten: 200, retries: 1 },
    workerTime: { computeMs: 200, exchangeMs: 40, waitMs: 10, exchangeShare: 0.2 },
    peakWorkerRssMb: 300,
    billed: { invocations: 6, vcpuSeconds: 1, gbSeconds: 2, computeUnits: 3, usd: 0.0001 },
  };

  it('finds parameters.cost in JSON and binary OIP responses', () => {
    const json = Buffer.from(JSON.stringify({ model_name: 'm', parameters: { cost }, outputs: [] }));
    assert.deepEqual(costOfResponse(json, { 'content-type': 'application/json' }), cost);
    const bin = Buffer.concat([json, Buffer.alloc(16)]);
    assert.deepEqual(costOfResponse(bin, { 'Inference-Header-Content-Length': String(json.length), 'content-type': 'application/octet-stream' }), cost);
    assert.equal(costOfResponse(Buffer.from('garbage'), { 'content-type': 'application/json' }), undefined);
    assert.equal(inferModelOf('/v2/models/resnet%2D18/infer'), 'resnet-18');
    assert.equal(inferModelOf('/v2/models/resnet18'), undefined);
  });

  it('counts unknown models under one label and reports costs that do not parse', async () => {
    const m = new ServeMetrics({ knownModel: (x) => x === 'resnet18' });
    m.observe({ model: 'resnet18', status: 200, seconds: 0.12, cost });
    m.observe({ model: 'x'.repeat(200), status: 404, seconds: 0.001 });
    m.observe({ model: 'resnet18', status: 200, seconds: 0.1, cost: { nonsense: true } });
    const text = await m.render();
    assert.match(text, /^fc_tiled_cnn_requests_total\{model="resnet18",status="200"\} 2$/m);
    assert.match(text, /^fc_tiled_cnn_requests_total\{model="other",status="404"\} 1$/m);
    assert.match(text, /^fc_tiled_cnn_cost_reports_invalid_total 1$/m);
    assert.match(text, /^fc_tiled_cnn_worker_seconds_total\{model="resnet18",activity="compute"\} 0.2$/m);
    assert.match(text, /^fc_tiled_cnn_phase_duration_seconds_count\{model="resnet18",phase="master"\} 1$/m);
    assert.match(text, /^fc_tiled_cnn_retries_total\{model="resnet18"\} 2$/m);
    assert.match(text, /^fc_tiled_cnn_store_retries_total\{model="resnet18"\} 1$/m);
    assert.match(text, /^fc_tiled_cnn_worker_peak_rss_bytes\{model="resnet18"\} 314572800$/m);
  });
});
