import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { startTracing } from '../../src/telemetry/tracing.ts';
import { makeLogger } from '../../src/telemetry/log.ts';
import { inSpan, traceFields } from '../../src/serve/trace.ts';

// Without OTEL_EXPORTER_OTLP_ENDPOINT nothing is exported, but a client's trace id still reaches
// the logs and the payloads of the functions it invokes. (Its own file: the SDK is process-global.)
describe('trace context without an exporter', () => {
  it('logs and payloads carry the client\'s trace id; nothing is recorded', async () => {
    const tracing = startTracing({ otlpTimeoutMs: 1000, logLevel: 'info' }, { functionName: 'handler' });
    assert.equal(tracing.enabled, false);
    const out = new PassThrough();
    const lines: string[] = [];
    out.on('data', (b: Buffer) => lines.push(...b.toString('utf8').split('\n').filter(Boolean)));
    const log = makeLogger({ name: 'handler', destination: out });
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    let fields: ReturnType<typeof traceFields> = {};
    await tracing.invocation('handler', { traceparent: `00-${traceId}-b7ad6b7169203331-01` }, {}, async () => {
      await inSpan('invoke master', {}, async (span) => {
        assert.equal(span.isRecording(), false);
        fields = traceFields();
        log.info({ requestId: 'r1' }, 'inference');
      });
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(JSON.parse(lines[0]).trace_id, traceId);
    assert.match(fields.traceparent ?? '', new RegExp(`^00-${traceId}-[0-9a-f]{16}-0[01]$`));
  });
});
