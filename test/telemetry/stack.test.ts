import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config.ts';
import { startLocalStack, type LocalStack } from '../../src/compose/stack.ts';
import { startGateway, type Gateway } from '../../src/http/gateway.ts';
import { fcHttpResultSchema, stringifyWithBody } from '../../src/http/fc-event.ts';
import { encodeInferRequest } from '../../src/http/oip-client.ts';
import { randomTensor } from '../../src/tensor/random.ts';

// One traced request through the local stack (gateway -> handler -> master -> workers, each a
// process with its own SDK), its spans received by a loopback OTLP/HTTP JSON collector.

interface OtlpValue { stringValue?: string; intValue?: string | number; boolValue?: boolean }
interface OtlpSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: { key: string; value: OtlpValue }[] }
interface Received { service: string; faas: string; span: OtlpSpan }

async function startCollector() {
  const spans: Received[] = [];
  const contentTypes = new Set<string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      contentTypes.add(`${req.method} ${req.url} ${req.headers['content-type']}`);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: { resource: { attributes: { key: string; value: OtlpValue }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const rs of body.resourceSpans) {
        const attr = (k: string) => rs.resource.attributes.find((a) => a.key === k)?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ service: attr('service.name'), faas: attr('faas.name'), span });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { spans, contentTypes, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const attr = (s: OtlpSpan, k: string) => {
  const v = s.attributes?.find((a) => a.key === k)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : v?.boolValue);
};

const API_KEY = randomBytes(16).toString('hex');

async function infer(url: string, model: string, headers: Record<string, string> = {}) {
  const x = randomTensor([1, 3, 224, 224], 7);
  const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 224, 224], data: x.data }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, { binary: true });
  const res = await fetch(`${url}/v2/models/${model}/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: { ...enc.headers, authorization: `Bearer ${API_KEY}`, ...headers } });
  await res.arrayBuffer();
  return res.status;
}

describe('telemetry on the local stack', () => {
  let stack: LocalStack;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let dir: string;
  const traceId = randomBytes(16).toString('hex');
  const clientSpan = randomBytes(8).toString('hex');

  before(async () => {
    collector = await startCollector();
    dir = await mkdtemp(join(tmpdir(), 'fc-telemetry-'));
    stack = await startLocalStack(loadConfig({
      PORT: '0', DATA_DIR: dir, HANDLER_MAX_INSTANCES: '1', WORKER_MAX_INSTANCES: '4',
      PLANS: 'plans/resnet18-224-2x2.json', DEFAULT_PLAN: 'resnet18-224-2x2', LOG_LEVEL: 'warn', API_KEYS: API_KEY,
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    }));
  });
  after(async () => {
    await stack?.close();
    await collector?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a traceparent header joins the handler, the master and every worker to the client trace', async () => {
    assert.equal(await infer(stack.url, 'resnet18', { traceparent: `00-${traceId}-${clientSpan}-01` }), 200);
    // Every function flushes before its invocation returns: the spans are in when the response is.
    const mine = collector.spans.filter((s) => s.span.traceId === traceId);
    const byService = (svc: string) => mine.filter((s) => s.service === svc);
    assert.ok([...collector.contentTypes].every((c) => c === 'POST /v1/traces application/json'), [...collector.contentTypes].join('; '));
    for (const s of mine) assert.equal(s.faas, s.service, `${s.span.name}: faas.name is the function`);

    const handlerRoot = byService('handler').find((s) => s.span.parentSpanId === clientSpan);
    assert.ok(handlerRoot, `no handler span under the client's span; got ${mine.map((s) => `${s.service}:${s.span.name}`).join(', ')}`);
    assert.equal(handlerRoot.span.name, 'POST /v2/models/{name}/infer');
    assert.equal(handlerRoot.span.kind, 2 /* SERVER */);
    assert.equal(attr(handlerRoot.span, 'http.response.status_code'), 200);
    const invokeMaster = byService('handler').find((s) => s.span.name === 'invoke master');
    assert.ok(invokeMaster);
    assert.ok(byService('handler').some((s) => s.span.name === 'store input' && (attr(s.span, 'store.bytes_written') as number) > 0));

    const master = byService('master').find((s) => s.span.kind === 2);
    assert.ok(master, 'no master span');
    assert.equal(master.span.parentSpanId, invokeMaster.span.spanId);
    const chain = byService('master').find((s) => s.span.name === 'chain 0');
    assert.ok(chain);
    const invokes = byService('master').filter((s) => s.span.name === 'invoke worker');
    assert.equal(invokes.length, 4, 'one client span per worker invocation');
    for (const i of invokes) assert.equal(i.span.parentSpanId, chain.span.spanId);

    const workers = byService('worker').filter((s) => s.span.kind === 2);
    assert.equal(workers.length, 4, 'one server span per worker invocation');
    assert.deepEqual(new Set(workers.map((w) => w.span.parentSpanId)), new Set(invokes.map((i) => i.span.spanId)));
    // Store operations grouped per stage: each worker's stage spans carry their store traffic.
    const stages = byService('worker').filter((s) => /^stage \d+$/.test(s.span.name));
    assert.ok(stages.length >= 4 * 6, `stage spans: ${stages.length}`);
    const workerIds = new Set(workers.map((w) => w.span.spanId));
    for (const s of stages) assert.ok(workerIds.has(s.span.parentSpanId!), 'stage spans hang under their worker invocation');
    assert.ok(stages.some((s) => (attr(s.span, 'store.bytes_read') as number) > 0 && (attr(s.span, 'store.requests') as number) > 0));
    const stageIds = new Set(stages.map((s) => s.span.spanId));
    assert.ok(byService('worker').some((s) => s.span.name === 'store' && stageIds.has(s.span.parentSpanId!)));
  });

  it('without a traceparent a request starts its own trace', async () => {
    const before = new Set(collector.spans.map((s) => s.span.traceId));
    assert.equal(await infer(stack.url, 'resnet18'), 200);
    const fresh = collector.spans.filter((s) => !before.has(s.span.traceId));
    assert.equal(new Set(fresh.map((s) => s.span.traceId)).size, 1);
    assert.deepEqual(new Set(fresh.map((s) => s.service)), new Set(['handler', 'master', 'worker']));
  });

  it('GET /metrics on the serving port: per-model request counts, a latency histogram and the cost report', async () => {
    assert.equal(await infer(stack.url, 'resnet18-224-2x2'), 200);
    assert.equal(await infer(stack.url, 'no-such-model'), 404);
    // Open like health: no API key needed, while inference needs one.
    const res = await fetch(`${stack.url}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(await infer(stack.url, 'resnet18', { authorization: 'Bearer wrong-key-wrong-key' }), 401);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    assert.equal(value(/^fc_tiled_cnn_requests_total\{model="resnet18",status="200"\} (\S+)$/m), 2);
    assert.equal(value(/^fc_tiled_cnn_requests_total\{model="resnet18-224-2x2",status="200"\} (\S+)$/m), 1);
    assert.equal(value(/^fc_tiled_cnn_requests_total\{model="other",status="404"\} (\S+)$/m), 1);
    assert.equal(value(/^fc_tiled_cnn_request_duration_seconds_count\{model="resnet18"\} (\S+)$/m), 2);
    assert.equal(value(/^fc_tiled_cnn_request_duration_seconds_bucket\{le="\+Inf",model="resnet18"\} (\S+)$/m), 2);
    assert.ok(value(/^fc_tiled_cnn_request_duration_seconds_sum\{model="resnet18"\} (\S+)$/m) > 0);
    assert.equal(value(/^fc_tiled_cnn_invocations_total\{model="resnet18",function="worker"\} (\S+)$/m), 8);
    assert.equal(value(/^fc_tiled_cnn_invocations_total\{model="resnet18",function="master"\} (\S+)$/m), 2);
    assert.equal(value(/^fc_tiled_cnn_stage_duration_seconds_count\{model="resnet18",kind="chain",unit="0"\} (\S+)$/m), 2);
    assert.ok(value(/^fc_tiled_cnn_store_bytes_total\{model="resnet18",direction="read"\} (\S+)$/m) > 0);
    assert.ok(value(/^fc_tiled_cnn_store_requests_total\{model="resnet18"\} (\S+)$/m) > 0);
    assert.ok(value(/^fc_tiled_cnn_worker_peak_rss_bytes\{model="resnet18"\} (\S+)$/m) > 0);
    assert.ok(value(/^fc_tiled_cnn_cold_starts_total\{model="resnet18"\} (\S+)$/m) >= 5, 'the first request started the master and four workers');
    assert.equal(value(/^fc_tiled_cnn_retries_total\{model="resnet18"\} (\S+)$/m), 0);
    assert.equal(value(/^fc_tiled_cnn_cost_reports_invalid_total (\S+)$/m), 0);
  });

  it('the handler function serves the same numbers itself (the path FC takes)', async () => {
    // A trigger without a registry of its own: GET /metrics reaches the handler instance.
    let trigger: Gateway | undefined;
    try {
      trigger = await startGateway({
        maxBodyBytes: 1 << 20,
        invoke: async (event) => fcHttpResultSchema.parse(JSON.parse((await stack.invoker.invoke('handler', Buffer.from(stringifyWithBody(event)))).payload.toString('utf8'))),
      });
      const text = await (await fetch(`${trigger.url}/metrics`)).text();
      // One handler instance served every request above.
      assert.match(text, /^fc_tiled_cnn_requests_total\{model="resnet18",status="200"\} 2$/m);
      assert.match(text, /^fc_tiled_cnn_request_duration_seconds_count\{model="resnet18-224-2x2"\} 1$/m);
      assert.match(text, /^fc_tiled_cnn_invocations_total\{model="resnet18",function="worker"\} 8$/m);
    } finally {
      await trigger?.close();
    }
  });
});
