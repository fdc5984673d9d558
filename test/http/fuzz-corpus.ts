/**
 * The hostile-request corpus and its checks, shared by fuzz.test.ts (gateway and routes with a
 * test backend) and fuzz-stack.test.ts (the real local stack).
 */
import assert from 'node:assert/strict';
import net from 'node:net';

/** Deterministic PRNG (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Answer { status: number; type: string; body: string }

/** One raw HTTP exchange: what a client that does not follow the rules would send. */
export function raw(url: string, request: string | Buffer): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), hostname, () => s.end(request));
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!m) return reject(new Error(`no HTTP answer: ${JSON.stringify(text.slice(0, 80))}`));
      const head = text.slice(0, text.indexOf('\r\n\r\n'));
      const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      const body = text.slice(head.length + 4);
      // Only the first answer counts; a server that wrote a second one on the socket fails here.
      if (body.length !== length) return reject(new Error(`not one response with a content-length: ${JSON.stringify(text.slice(0, 300))}`));
      resolve({ status: Number(m[1]), type: /content-type: *([^\r\n]*)/i.exec(head)?.[1] ?? '', body });
    });
  });
}

export function checkAnswer(what: string, a: Answer): void {
  assert.notEqual(a.status, 500, `${what}: 500 ${a.body.slice(0, 200)}`);
  assert.ok(a.status < 500 || a.status === 503 || a.status === 502 || a.status === 504 || a.status === 401, `${what}: ${a.status}`);
  assert.match(a.type, /application\/json/, `${what}: content-type ${a.type} (${a.status})`);
  assert.doesNotThrow(() => JSON.parse(a.body), `${what}: body is not JSON: ${a.body.slice(0, 100)}`);
  if (a.status >= 400) assert.equal(typeof JSON.parse(a.body).error, 'string', `${what}: no error message`);
}

export async function send(url: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const r = await fetch(`${url}${path}`, init);
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

/** The hostile corpus: [what, path, init]. Shared with the real-stack fuzz test. */
export function corpus(key: string, model: string, seed = 1): [string, string, RequestInit][] {
  const auth = { authorization: `Bearer ${key}` };
  const json = (body: string) => ({ method: 'POST', body, headers: { ...auth, 'content-type': 'application/json' } });
  const infer = `/v2/models/${model}/infer`;
  const cases: [string, string, RequestInit][] = [
    ['no key', infer, { method: 'POST', body: '{}' }],
    ['empty bearer', infer, { method: 'POST', body: '{}', headers: { authorization: 'Bearer' } }],
    ['basic auth', infer, { method: 'POST', body: '{}', headers: { authorization: `Basic ${Buffer.from(`u:${key}`).toString('base64')}` } }],
    ['two tokens', infer, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${key} ${key}` } }],
    ['10 KB key', infer, { method: 'POST', body: '{}', headers: { 'x-api-key': 'k'.repeat(10_000) } }],
    ['key prefix', `/v2/models/${model}`, { headers: { 'x-api-key': key.slice(0, -1) } }],
    ['metadata without key', `/v2/models/${model}`, {}],
    ['unknown route without key', '/admin', {}],
    ['truncated JSON', infer, json('{"inputs": [')],
    ['JSON array', infer, json('[]')],
    ['JSON null', infer, json('null')],
    ['JSON string', infer, json('"x"')],
    ['inputs not a list', infer, json('{"inputs": 5}')],
    ['no inputs', infer, json('{}')],
    ['data not numbers', infer, json(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], datatype: 'FP32', data: 'zz' }] }))],
    ['short data', infer, json(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], datatype: 'FP32', data: [1, 2] }] }))],
    ['huge shape', infer, json(JSON.stringify({ inputs: [{ name: 'input', shape: [1e12, 3, 4, 4], datatype: 'FP32', data: [1] }] }))],
    ['negative shape', infer, json(JSON.stringify({ inputs: [{ name: 'input', shape: [-1, 3, 4, 4], datatype: 'FP32', data: [1] }] }))],
    ['fractional shape', infer, json(JSON.stringify({ inputs: [{ name: 'input', shape: [0.5, 3, 4, 4], datatype: 'FP32', data: [1] }] }))],
    ['wrong rank', infer, json(JSON.stringify({ inputs: [{ name: 'input', shape: [48], datatype: 'FP32', data: Array(48).fill(1) }] }))],
    ['wrong name', infer, json(JSON.stringify({ inputs: [{ name: 'x', shape: [1, 3, 4, 4], datatype: 'FP32', data: Array(48).fill(1) }] }))],
    ['odd datatype', infer, json(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], datatype: 'BYTES', data: ['a'] }] }))],
    ['unknown datatype', infer, json(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], datatype: 'FP1024', data: [1] }] }))],
    ['nested 5000 deep', infer, json(`${'['.repeat(5000)}${']'.repeat(5000)}`)],
    ['proto pollution', infer, json('{"__proto__": {"inputs": []}, "constructor": {"prototype": {"x": 1}}}')],
    ['unknown output', infer, json(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 4, 4], datatype: 'FP32', data: Array(48).fill(1) }], outputs: [{ name: 'nope' }] }))],
    ['binary header past body', infer, { method: 'POST', body: '{"inputs":[]}', headers: { ...auth, 'inference-header-content-length': '999999' } }],
    ['binary header negative', infer, { method: 'POST', body: '{}', headers: { ...auth, 'inference-header-content-length': '-1' } }],
    ['binary header text', infer, { method: 'POST', body: '{}', headers: { ...auth, 'inference-header-content-length': 'abc' } }],
    ['garbage jpeg', infer, { method: 'POST', body: 'not a jpeg', headers: { ...auth, 'content-type': 'image/jpeg' } }],
    ['svg', infer, { method: 'POST', body: '<svg/>', headers: { ...auth, 'content-type': 'image/svg+xml' } }],
    ['bad top_k', `${infer}?top_k=-1`, { method: 'POST', body: 'x', headers: { ...auth, 'content-type': 'image/png' } }],
    ['bad timeout header', infer, { method: 'POST', body: '{}', headers: { ...auth, 'x-request-timeout-ms': 'soon' } }],
    ['traversal', '/v2/models/..%2f..%2fetc%2fpasswd/infer', json('{}')],
    ['bad percent', '/v2/models/%E0%A4%A/infer', json('{}')],
    ['long path', `/v2/models/${'a'.repeat(8000)}/infer`, json('{}')],
    ['unicode model', '/v2/models/%F0%9F%92%A5', { headers: auth }],
    ['DELETE', infer, { method: 'DELETE', headers: auth }],
    ['PUT', `/v2/models/${model}`, { method: 'PUT', body: '{}', headers: auth }],
    ['OPTIONS', infer, { method: 'OPTIONS', headers: auth }],
    ['GET infer', infer, { headers: auth }],
    ['unknown route', '/v3/everything', { headers: auth }],
  ];
  const r = rng(seed);
  const types = ['application/json', 'application/octet-stream', 'image/png', 'image/webp', 'text/plain', ''];
  for (let i = 0; i < 60; i++) {
    const body = Buffer.from(Array.from({ length: Math.floor(r() * 600) }, () => Math.floor(r() * 256)));
    const type = types[Math.floor(r() * types.length)]!;
    const headers: Record<string, string> = { ...auth, ...(type ? { 'content-type': type } : {}) };
    if (r() < 0.3) headers['inference-header-content-length'] = String(Math.floor(r() * 700) - 50);
    cases.push([`random body ${i}`, infer, { method: 'POST', body, headers }]);
  }
  return cases;
}

export function rawCorpus(key: string, model: string): [string, string | Buffer][] {
  return [
    ['not HTTP', 'GARBAGE\r\n\r\n'],
    ['huge header', `GET /v2/models/${model} HTTP/1.1\r\nhost: x\r\nx-api-key: ${key}\r\nx-big: ${'a'.repeat(40_000)}\r\n\r\n`],
    ['many headers', `GET /v2/models/${model} HTTP/1.1\r\nhost: x\r\n${Array.from({ length: 3000 }, (_, i) => `x-h${i}: v`).join('\r\n')}\r\n\r\n`],
    ['bad content-length', `POST /v2/models/${model}/infer HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n`],
    ['two content-lengths', `POST /v2/models/${model}/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}`],
    ['bad chunking', `POST /v2/models/${model}/infer HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n`],
    ['non-ASCII key', Buffer.concat([Buffer.from(`GET /v2/models/${model} HTTP/1.1\r\nhost: x\r\nx-api-key: `), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('\r\nconnection: close\r\n\r\n')])],
    ['NUL in path', `GET /v2/models/\0/infer HTTP/1.1\r\nhost: x\r\n\r\n`],
  ];
}

export async function runFuzz(url: string, key: string, model: string): Promise<number> {
  let n = 0;
  for (const [what, path, init] of corpus(key, model)) {
    checkAnswer(what, await send(url, path, init));
    n++;
  }
  for (const [what, req] of rawCorpus(key, model)) {
    checkAnswer(what, await raw(url, req));
    n++;
  }
  return n;
}
