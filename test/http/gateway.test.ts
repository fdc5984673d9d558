import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { FunctionError, FunctionTimeoutError } from '../../src/invoke/errors.ts';
import { type FcHttpEvent, type FcHttpResult, binaryResult, eventBody, fcHttpEventSchema, jsonResult } from '../../src/http/fc-event.ts';
import { type Gateway, startGateway } from '../../src/http/gateway.ts';

const LIMIT = 64 * 1024;

describe('gateway', () => {
  let gw: Gateway;
  const events: FcHttpEvent[] = [];
  const errors: unknown[] = [];

  /** Echo function: behaviour picked by path. */
  async function invoke(event: FcHttpEvent): Promise<FcHttpResult> {
    events.push(event);
    switch (event.rawPath) {
      case '/echo-binary':
        return binaryResult(200, eventBody(event), { 'x-len': String(eventBody(event).length) });
      case '/throw':
        throw new Error('handler process exploded');
      case '/timeout':
        throw new FunctionTimeoutError('handler: timed out after 50 ms', { functionName: 'handler', timeoutMs: 50 });
      case '/function-error':
        throw new FunctionError({ functionName: 'handler', errorType: 'TypeError', errorMessage: 'x is undefined' });
      case '/malformed':
        return { statusCode: 'two hundred' } as unknown as FcHttpResult;
      case '/teapot':
        return { statusCode: 418, headers: { 'Content-Type': 'text/plain', connection: 'keep-alive', 'transfer-encoding': 'chunked', 'X-Brew': 'earl grey' }, body: 'short and stout' };
      default:
        return jsonResult(200, {
          method: event.requestContext.http.method,
          path: event.rawPath,
          query: event.queryParameters,
          headers: event.headers,
          requestId: event.requestContext.requestId,
          bodyLength: eventBody(event).length,
          valid: fcHttpEventSchema.safeParse(event).success,
        });
    }
  }

  before(async () => {
    gw = await startGateway({ host: '127.0.0.1', port: 0, maxBodyBytes: LIMIT, invoke, lingerMs: 500, onError: (e) => errors.push(e) });
  });
  after(() => gw.close());

  const stillUp = async () => {
    const r = await fetch(`${gw.url}/ping?after=1`);
    assert.equal(r.status, 200);
    assert.equal((await r.json()).path, '/ping');
  };

  it('builds a valid FC 3.0 event (method, path, query, lowercased headers, base64 body)', async () => {
    const r = await fetch(`${gw.url}/v2/models/m/infer?a=1&b=two&a=3`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Custom-Thing': 'Value' },
      body: '{"hello": "wörld"}',
    });
    assert.equal(r.status, 200);
    const echo = await r.json();
    assert.equal(echo.valid, true);
    assert.equal(echo.method, 'POST');
    assert.equal(echo.path, '/v2/models/m/infer');
    assert.deepEqual(echo.query, { a: '1', b: 'two' });
    assert.equal(echo.headers['content-type'], 'application/json');
    assert.equal(echo.headers['x-custom-thing'], 'Value');
    assert.ok(Object.keys(echo.headers).every((k: string) => k === k.toLowerCase()));
    assert.equal(echo.bodyLength, Buffer.byteLength('{"hello": "wörld"}'));
    const ev = events.at(-1)!;
    assert.equal(ev.version, 'v1');
    assert.equal(ev.isBase64Encoded, true);
    assert.equal(Buffer.from(ev.body, 'base64').toString(), '{"hello": "wörld"}');
  });

  it('adds x-request-id to the event and the response (keeps a sane client one)', async () => {
    const r1 = await fetch(`${gw.url}/x`);
    const id1 = r1.headers.get('x-request-id');
    assert.match(id1 ?? '', /^[0-9a-f-]{36}$/);
    const e1 = await r1.json();
    assert.equal(e1.requestId, id1);
    assert.equal(e1.headers['x-request-id'], id1);

    const r2 = await fetch(`${gw.url}/x`, { headers: { 'x-request-id': 'client-42' } });
    assert.equal(r2.headers.get('x-request-id'), 'client-42');
    assert.equal((await r2.json()).requestId, 'client-42');

    const r3 = await fetch(`${gw.url}/x`, { headers: { 'x-request-id': 'bad id with spaces' } });
    assert.notEqual(r3.headers.get('x-request-id'), 'bad id with spaces');
    await r3.body?.cancel();
  });

  it('roundtrips a binary body byte-for-byte', async () => {
    const payload = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(LIMIT - 256)]);
    const r = await fetch(`${gw.url}/echo-binary`, { method: 'POST', body: payload, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    assert.equal(r.headers.get('x-len'), String(LIMIT));
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(payload));
  });

  it('passes status and headers through, dropping hop-by-hop ones', async () => {
    const r = await fetch(`${gw.url}/teapot`);
    assert.equal(r.status, 418);
    assert.equal(r.headers.get('x-brew'), 'earl grey');
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(r.headers.get('transfer-encoding'), null);
    assert.equal(r.headers.get('content-length'), '15');
    assert.equal(await r.text(), 'short and stout');
  });

  it('413 for an over-limit body (declared length), without calling invoke; stays up', async () => {
    const before = events.length;
    const r = await fetch(`${gw.url}/echo-binary`, { method: 'POST', body: Buffer.alloc(LIMIT + 1) });
    assert.equal(r.status, 413);
    const body = await r.json();
    assert.equal(body.code, 'payload_too_large');
    assert.match(body.error, new RegExp(`over the limit of ${LIMIT} bytes`));
    assert.ok(r.headers.get('x-request-id'));
    assert.equal(events.length, before);
    await stillUp();
  });

  it('413 for a large streamed (chunked) body: answered early, not buffered; stays up', async () => {
    const before = events.length;
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    const total = 32 * 1024 * 1024;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= total) return c.close();
        sent += chunk.length;
        c.enqueue(chunk);
      },
    });
    const r = await fetch(`${gw.url}/echo-binary`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    assert.equal(r.status, 413);
    assert.equal((await r.json()).code, 'payload_too_large');
    assert.equal(events.length, before);
    await stillUp();
  });

  it('413 via node:http with Expect: 100-continue (body never sent)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${gw.url}/echo-binary`, { method: 'POST', headers: { 'content-length': LIMIT * 4, expect: '100-continue' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('continue', () => reject(new Error('gateway asked for the body')));
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(status, 413);
    await stillUp();
  });

  it('invoke throwing → 502 JSON naming the failure; stays up', async () => {
    const r = await fetch(`${gw.url}/throw`, { method: 'POST', body: 'x' });
    assert.equal(r.status, 502);
    assert.match(r.headers.get('content-type')!, /application\/json/);
    const body = await r.json();
    assert.match(body.error, /function invocation failed: Error: handler process exploded/);
    assert.equal(body.code, 'invoke_failed');
    assert.ok(!JSON.stringify(body).includes('at '), 'no stack trace');
    assert.ok(errors.some((e) => (e as Error).message === 'handler process exploded'));
    await stillUp();
  });

  it('maps invoker errors: timeout → 504, function error → 502, malformed result → 502', async () => {
    const t = await fetch(`${gw.url}/timeout`);
    assert.equal(t.status, 504);
    assert.equal((await t.json()).code, 'function_timeout');
    const f = await fetch(`${gw.url}/function-error`);
    assert.equal(f.status, 502);
    assert.match((await f.json()).error, /TypeError: x is undefined/);
    const m = await fetch(`${gw.url}/malformed`);
    assert.equal(m.status, 502);
    const mb = await m.json();
    assert.equal(mb.code, 'invalid_function_result');
    assert.match(mb.error, /statusCode/);
    await stillUp();
  });

  it('serves concurrent requests', async () => {
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => fetch(`${gw.url}/c?i=${i}`).then((r) => r.json())));
    assert.deepEqual(rs.map((r) => r.query.i), Array.from({ length: 20 }, (_, i) => String(i)));
  });
});

describe('gateway lifecycle', () => {
  it('close() resolves even with an idle keep-alive connection open', async () => {
    const gw = await startGateway({ maxBodyBytes: 10, invoke: async () => jsonResult(200, {}) });
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve) => http.get(gw.url, { agent }, (res) => res.resume().on('end', resolve)));
    await gw.close();
    agent.destroy();
    await assert.rejects(fetch(gw.url));
  });

  it('rejects a negative maxBodyBytes', async () => {
    await assert.rejects(startGateway({ maxBodyBytes: -1, invoke: async () => jsonResult(200, {}) }), RangeError);
  });
});

describe('fc-event helpers', () => {
  it('parseFcHttpEvent applies defaults and validates; errorResult maps errors', async () => {
    const { parseFcHttpEvent, serializeFcHttpResult, errorResult, eventHeader, mediaType } = await import('../../src/http/fc-event.ts');
    const { badRequest } = await import('../../src/http/errors.ts');
    const e = parseFcHttpEvent(JSON.stringify({ version: 'v1', rawPath: '/x', headers: { 'Content-Type': 'Image/PNG; q=1' }, requestContext: { http: { method: 'GET', path: '/x' }, requestId: 'r' } }));
    assert.equal(e.body, '');
    assert.equal(e.isBase64Encoded, false);
    assert.deepEqual(e.queryParameters, {});
    assert.equal(mediaType(eventHeader(e, 'content-type')), 'image/png');
    assert.throws(() => parseFcHttpEvent('{"version":"v2"}'));
    assert.deepEqual(JSON.parse(serializeFcHttpResult(jsonResult(201, { a: 1 })).toString()).statusCode, 201);

    const r400 = errorResult(badRequest('input "x": bad', { details: { input: 'x', error: 'ignored' } }));
    assert.equal(r400.statusCode, 400);
    assert.deepEqual(JSON.parse(r400.body), { input: 'x', error: 'input "x": bad', code: 'bad_request' });
    const zodErr = fcHttpEventSchema.safeParse({}).error;
    const rz = errorResult(zodErr);
    assert.equal(rz.statusCode, 400);
    assert.match(JSON.parse(rz.body).error, /invalid request: version/);
    const r500 = errorResult(new TypeError('secret internals at /srv/app.ts:12'));
    assert.equal(r500.statusCode, 500);
    assert.deepEqual(JSON.parse(r500.body), { error: 'internal server error', code: 'internal' });
  });
});
