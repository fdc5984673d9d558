import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ApiKeys, isOpenPath, presentedKey } from '../../src/http/access.ts';
import { HttpError } from '../../src/http/errors.ts';
import { type FcHttpEvent, type FcHttpResult, jsonResult, resultBody } from '../../src/http/fc-event.ts';
import { type Gateway, startGateway } from '../../src/http/gateway.ts';
import { encodeInferRequest } from '../../src/http/oip-client.ts';
import { route } from '../../src/http/routes.ts';
import type { InferenceBackend, ModelEntry } from '../../src/serve/model-entry.ts';
import { ConfigError, loadConfig, parseApiKeys } from '../../src/config.ts';

const KEY = 'k3y-0123456789abcdef';
const OTHER = 'other-key-fedcba9876543210';

/** TEST BACKEND (routing layer only): echoes the input's first element as a 1x1 output. */
const backend: InferenceBackend = {
  ready: async () => true,
  infer: async (_m, input) => ({ output: { dims: [1, 1], data: Float32Array.of(input.data[0]!) }, cost: undefined }),
};
const models = new Map<string, ModelEntry>([['m', { name: 'm', inputName: 'input', inputShape: [1, 2], outputName: 'out', outputShape: [1, 1] }]]);

function ev(method: string, path: string, headers: Record<string, string> = {}, body = ''): FcHttpEvent {
  return {
    version: 'v1', rawPath: path, body: Buffer.from(body).toString('base64'), isBase64Encoded: true, headers, queryParameters: {},
    requestContext: { http: { method, path }, requestId: 'r1' },
  };
}
const json = (r: FcHttpResult) => JSON.parse(resultBody(r).toString('utf8'));
const inferBody = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [7, 8] }] });

describe('ApiKeys', () => {
  const keys = new ApiKeys([KEY, OTHER]);

  it('matches configured keys only (any length, no prefix matches)', () => {
    assert.ok(keys.matches(KEY));
    assert.ok(keys.matches(OTHER));
    assert.ok(!keys.matches(KEY.slice(0, -1)));
    assert.ok(!keys.matches(`${KEY}x`));
    assert.ok(!keys.matches(''));
    assert.ok(!new ApiKeys([]).enabled);
  });

  it('reads Bearer (any case) or x-api-key; a malformed Authorization is a 401', () => {
    const h = (o: Record<string, string>) => (n: string) => o[n];
    assert.equal(presentedKey(h({ authorization: `Bearer ${KEY}` })), KEY);
    assert.equal(presentedKey(h({ authorization: `bearer   ${KEY} ` })), KEY);
    assert.equal(presentedKey(h({ 'x-api-key': KEY })), KEY);
    assert.equal(presentedKey(h({})), undefined);
    assert.throws(() => presentedKey(h({ authorization: `Basic ${KEY}` })), (e: HttpError) => e.status === 401 && !e.message.includes(KEY));
  });

  it('health stays open', () => {
    for (const p of ['/v2/health/live', '/v2/health/ready', '/healthz', '/internal/healthz', '/metrics']) assert.ok(isOpenPath(p), p);
    for (const p of ['/v2', '/v2/models/m', '/v2/models/m/infer', '/v2/health', '/healthz/x']) assert.ok(!isOpenPath(p), p);
  });
});

describe('API_KEYS configuration', () => {
  it('parses a comma-separated list; a bad key is named by position, never shown', () => {
    assert.deepEqual(parseApiKeys(` ${KEY} ,${OTHER},${KEY}`), [KEY, OTHER]);
    assert.deepEqual(parseApiKeys(undefined), []);
    assert.deepEqual(loadConfig({ API_KEYS: KEY }).apiKeys, [KEY]);
    const short = 'tooShort';
    assert.throws(() => loadConfig({ API_KEYS: `${KEY},${short}` }), (e: Error) => e instanceof ConfigError && /key 2 of 2/.test(e.message) && !e.message.includes(short) && !e.message.includes(KEY));
  });
});

describe('routes with API keys', () => {
  const errors: unknown[] = [];
  const call = (e: FcHttpEvent) => route(e, { models, backend, access: new ApiKeys([KEY]), onError: (err) => errors.push(err) });

  it('no key or a wrong key → 401 JSON naming neither key; a right key proceeds', async () => {
    for (const path of ['/v2', '/v2/models/m', '/v2/models/m/ready', '/v2/models/nope', '/no/such/route']) {
      const r = await call(ev('GET', path));
      assert.equal(r.statusCode, 401, path);
      assert.equal(json(r).code, 'unauthorized');
      assert.match(r.headers!['www-authenticate']!, /^Bearer/);
    }
    const wrong = await call(ev('POST', '/v2/models/m/infer', { authorization: `Bearer ${OTHER}` }, inferBody));
    assert.equal(wrong.statusCode, 401);
    assert.deepEqual(json(wrong), { error: 'invalid API key', code: 'unauthorized' });
    assert.ok(!JSON.stringify(wrong).includes(OTHER));
    const viaHeader = await call(ev('POST', '/v2/models/m/infer', { 'x-api-key': OTHER }, inferBody));
    assert.equal(viaHeader.statusCode, 401);

    const ok = await call(ev('POST', '/v2/models/m/infer', { Authorization: `Bearer ${KEY}` }, inferBody));
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(json(ok).outputs[0].data, [7]);
    assert.equal((await call(ev('GET', '/v2/models/m', { 'x-api-key': KEY }))).statusCode, 200);
    assert.equal(errors.length, 0, '401s are not logged as failures');
  });

  it('health answers without a key', async () => {
    assert.equal((await call(ev('GET', '/v2/health/live'))).statusCode, 200);
    assert.equal((await call(ev('GET', '/v2/health/ready'))).statusCode, 200);
  });
});

describe('gateway with API keys', () => {
  let gw: Gateway;
  let invoked = 0;
  before(async () => {
    gw = await startGateway({
      maxBodyBytes: 1 << 20, access: new ApiKeys([KEY]), lingerMs: 200,
      invoke: async (e) => {
        invoked++;
        return e.rawPath.startsWith('/v2') ? route(e, { models, backend, access: new ApiKeys([KEY]) }) : jsonResult(200, { ok: true });
      },
    });
  });
  after(() => gw.close());

  it('refuses before invoking the function; health, and a right key, pass', async () => {
    const r = await fetch(`${gw.url}/v2/models/m/infer`, { method: 'POST', body: inferBody });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).code, 'unauthorized');
    const w = await fetch(`${gw.url}/v2/models/m`, { headers: { 'x-api-key': `${KEY}!` } });
    assert.equal(w.status, 401);
    await w.body?.cancel();
    assert.equal(invoked, 0);
    assert.equal((await fetch(`${gw.url}/v2/health/live`)).status, 200);
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
    const ok = await fetch(`${gw.url}/v2/models/m/infer`, { method: 'POST', body: inferBody, headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(ok.status, 200);
    assert.equal(invoked, 3);
  });

  it('a large unauthenticated upload gets its 401 without being read', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${gw.url}/v2/models/m/infer`, { method: 'POST', headers: { 'content-length': 1 << 19 } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(1024));
    });
    assert.equal(status, 401);
    assert.equal((await fetch(`${gw.url}/v2/health/live`)).status, 200);
  });
});

describe('binary requests with keys', () => {
  it('a binary OIP request with a key passes the route', async () => {
    const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 2], data: Float32Array.of(3, 4) }] }, { binary: true });
    const r = await route(ev('POST', '/v2/models/m/infer', { ...enc.headers, 'x-api-key': KEY }, ''), { models, backend, access: new ApiKeys([KEY]) })
      .catch((e) => e);
    // An empty body with binary headers is a 400, past the key check.
    assert.equal((r as FcHttpResult).statusCode, 400);
  });
});
