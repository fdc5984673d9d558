// The large-body fast paths of src/http/fc-event.ts: whatever the payload, they must give what
// the plain JSON.parse gives, and they must actually be taken for the payloads they are for.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import {
  binaryResult, encodeFcPayload, eventBody, fcHttpEventPayload, fcHttpEventSchema, fcHttpResultSchema, jsonResult,
  parseFcHttpEvent, parseFcHttpResult, parseFcPayloadJson, resultBody, spliceBase64Body, stringifyWithBody,
} from '../../src/http/fc-event.ts';
import { BadEventError, parseEvent } from '../../src/serve/deps.ts';

const BIG = 96 * 1024; // bytes, over the 64 KiB the fast path starts at once in base64

const context = { requestId: 'r1', http: { method: 'POST', path: '/v2/models/m/infer', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1' }, time: 't' };
const headers = { 'content-type': 'application/octet-stream', 'x-request-id': 'r1' };

function event(body: string, isBase64Encoded = true, extra: Record<string, unknown> = {}) {
  return { version: 'v1', rawPath: '/v2/models/m/infer', body, isBase64Encoded, headers, queryParameters: { a: 'b' }, requestContext: context, ...extra };
}

/** What a call returns, or the error it throws (name, message, zod issues): comparable with deepEqual. */
function outcome(f: () => unknown): { ok: unknown } | { err: string } {
  try {
    return { ok: f() };
  } catch (e) {
    const err = e as Error;
    return { err: `${err.name}: ${e instanceof z.ZodError ? JSON.stringify(e.issues) : err.message}` };
  }
}

/** Every entry point gives exactly what the plain parse gives. */
function assertSameAsPlain(buf: Buffer, what: string): void {
  const plainJson = () => JSON.parse(buf.toString('utf8'));
  assert.deepEqual(outcome(() => parseFcPayloadJson(buf)), outcome(plainJson), `${what}: JSON`);
  assert.deepEqual(outcome(() => parseFcHttpEvent(buf)), outcome(() => fcHttpEventSchema.parse(plainJson())), `${what}: event`);
  assert.deepEqual(outcome(() => parseFcHttpResult(buf)), outcome(() => fcHttpResultSchema.parse(plainJson())), `${what}: result`);
  assert.deepEqual(outcome(() => parseEvent(fcHttpEventPayload, buf, 'HTTP')), outcome(() => parseEvent(fcHttpEventSchema, buf, 'HTTP')), `${what}: parseEvent`);
  const fast = spliceBase64Body(buf);
  if (fast) assert.deepEqual(fast.value, plainJson(), `${what}: splice`);
}

const json = (x: unknown) => Buffer.from(JSON.stringify(x));
const bytes = randomBytes(BIG);
const b64 = bytes.toString('base64');

describe('fc-event large base64 bodies', () => {
  it('a big base64 body takes the fast path, gives the plain result and decodes once', () => {
    const buf = json(event(b64));
    assert.ok(spliceBase64Body(buf), 'fast path taken');
    assertSameAsPlain(buf, 'big');
    const ev = parseFcHttpEvent(buf);
    assert.equal(ev.body, b64);
    const first = eventBody(ev);
    assert.deepEqual(first, bytes);
    first.reverse(); // the caller owns what it got: the next call decodes afresh
    assert.deepEqual(eventBody(ev), bytes);
    ev.body = Buffer.from('changed').toString('base64');
    assert.equal(eventBody(ev).toString(), 'changed');
    const viaParseEvent = parseEvent(fcHttpEventPayload, buf, 'HTTP');
    viaParseEvent.body = 'QUJD'; // a cached decode of the old body is not handed out for the new one
    assert.equal(eventBody(viaParseEvent).toString(), 'ABC');
  });

  it('small bodies and bodies not flagged base64 take the plain path', () => {
    for (const [what, ev] of [
      ['small', event('QUJD')],
      ['empty', event('')],
      ['big text body', event(`{"x":"${'é"\\'.repeat(BIG)}"}`, false)],
      ['big base64-looking body, not flagged', event(b64, false)],
      ['flag is a string', event(b64, true, { isBase64Encoded: 'true' })],
    ] as const) {
      const buf = json(ev);
      assert.equal(spliceBase64Body(buf), undefined, what);
      assertSameAsPlain(buf, what);
    }
  });

  it('"body" elsewhere: in a header value, as a header name, duplicated, key order', () => {
    const cases: Array<[string, Buffer, boolean]> = [
      ['header value with the text "body":"QUJD"', json(event(b64, true, { headers: { x: '"body":"QUJD"', ...headers } })), true],
      ['header named body (small) before the body', json({ version: 'v1', rawPath: '/', headers: { body: 'QUJD' }, body: b64, isBase64Encoded: true, requestContext: context }), false],
      ['header named body (big) and an empty top-level body', json({ version: 'v1', rawPath: '/', headers: { body: b64 }, body: '', isBase64Encoded: true, requestContext: context }), false],
      ['header named body (big) and no top-level body', json({ version: 'v1', rawPath: '/', headers: { body: b64 }, isBase64Encoded: true, requestContext: context }), false],
      ['body first', json({ body: b64, isBase64Encoded: true, version: 'v1', rawPath: '/', requestContext: context }), true],
      ['body last', json({ isBase64Encoded: true, version: 'v1', rawPath: '/', requestContext: context, headers, body: b64 }), true],
      ['duplicate body, the later empty', Buffer.from(`{"body":"${b64}","isBase64Encoded":true,"version":"v1","rawPath":"/","requestContext":${JSON.stringify(context)},"body":""}`), false],
      // Only the first "body":" is tried.
      ['duplicate body, the later big', Buffer.from(`{"body":"","version":"v1","rawPath":"/","requestContext":${JSON.stringify(context)},"isBase64Encoded":true,"body":"${b64}"}`), false],
      ['a NUL character elsewhere', json(event(b64, true, { headers: { x: 'a\u0000b' } })), false],
      ['the text \\u0000 elsewhere', json(event(b64, true, { headers: { x: 'a\\u0000b' } })), false],
      ['inside another string', Buffer.from(`{"version":"v1","rawPath":"\\"body\\":\\"${b64}","body":"${b64}","isBase64Encoded":true,"requestContext":${JSON.stringify(context)}}`), true],
      ['top level is an array', Buffer.from(`[{"body":"${b64}","isBase64Encoded":true}]`), false],
    ];
    for (const [what, buf, fast] of cases) {
      assert.equal(spliceBase64Body(buf) !== undefined, fast, `${what}: fast path ${fast ? '' : 'not '}taken`);
      assertSameAsPlain(buf, what);
    }
  });

  it('whitespace around the colon falls back', () => {
    for (const buf of [Buffer.from(JSON.stringify(event(b64), null, 1)), Buffer.from(JSON.stringify(event(b64)).replace('"body":"', '"body" : "'))]) {
      assert.equal(spliceBase64Body(buf), undefined);
      assertSameAsPlain(buf, 'whitespace');
    }
  });

  it('bodies that are not clean base64 fall back', () => {
    const at = (s: string, i: number, c: string) => `${s.slice(0, i)}${c}${s.slice(i + 1)}`;
    for (const [what, body] of [
      ['invalid character', at(b64, 5000, '*')],
      ['escaped newline', at(b64, 5000, '\n')],
      ['escaped quote', at(b64, 5000, '"')],
      ['trailing escaped quote', `${b64}"`],
      ['non-ASCII', at(b64, 5000, 'é')],
      ['padding in the middle', at(b64, 5000, '=')],
      ['length not a multiple of 4', b64.slice(1)],
      ['url-safe alphabet', b64.replace(/\+/g, '-').replace(/\//g, '_')],
    ] as const) {
      const buf = json(event(body));
      if (what !== 'url-safe alphabet') assert.equal(spliceBase64Body(buf), undefined, what);
      assertSameAsPlain(buf, what);
    }
  });

  it('every byte outside the base64 alphabet, anywhere in the body, makes it fall back', () => {
    // The fast path relies on Node's decoder skipping such bytes (decoded length falls short).
    const alphabet = new Set(Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_'));
    const base = json(event(b64));
    const start = base.indexOf('"body":"') + 8;
    for (let b = 0; b < 256; b++) {
      if (alphabet.has(b)) continue;
      for (const pos of [0, 1, 63, 4097, b64.length - 3]) {
        const buf = Buffer.from(base);
        buf[start + pos] = b;
        assert.equal(spliceBase64Body(buf), undefined, `byte ${b} at ${pos}`);
        if (pos === 63) assertSameAsPlain(buf, `byte ${b}`);
      }
    }
  });

  it('truncated JSON fails as it did', () => {
    const buf = json(event(b64));
    for (const n of [20, 5000, buf.length - 40, buf.length - 1]) assertSameAsPlain(buf.subarray(0, n), `truncated at ${n}`);
  });

  it('schema failures are reported as before', () => {
    const buf = json(event(b64, true, { version: 'v2', requestContext: { http: {} } }));
    assert.ok(spliceBase64Body(buf));
    assertSameAsPlain(buf, 'invalid event');
    assert.throws(() => parseEvent(fcHttpEventPayload, buf, 'HTTP'), (e: unknown) => e instanceof BadEventError && /^invalid HTTP event: /.test(e.message));
    assert.throws(() => parseEvent(fcHttpEventPayload, Buffer.from('{"body":'), 'HTTP'), (e: unknown) => e instanceof BadEventError && e.message === 'HTTP event is not JSON');
  });

  it('round trip: encodeFcPayload -> parse gives the event; bytes equal stringifyWithBody', () => {
    const full = fcHttpEventSchema.parse(event(b64));
    for (const x of [full, fcHttpEventSchema.parse(event('QUJD')), fcHttpEventSchema.parse(event('héllo "x"', false))]) {
      const buf = encodeFcPayload(x);
      assert.deepEqual(buf, Buffer.from(stringifyWithBody(x)));
      assert.deepEqual(parseFcHttpEvent(buf), x);
      assert.deepEqual(parseEvent(fcHttpEventPayload, buf, 'HTTP'), x);
    }
    // Not base64 despite the flag: still byte for byte what stringifyWithBody gave.
    const odd = { ...full, body: `${b64}é€` };
    assert.deepEqual(encodeFcPayload(odd), Buffer.from(stringifyWithBody(odd)));
  });

  it('round trip of a big binary result; resultBody gives its bytes', () => {
    const res = binaryResult(200, bytes, { 'x-a': 'b' });
    const buf = encodeFcPayload(res);
    assert.ok(spliceBase64Body(buf));
    const back = parseFcHttpResult(buf);
    assert.deepEqual(back, fcHttpResultSchema.parse(res));
    assert.deepEqual(resultBody(back), bytes);
    assert.deepEqual(resultBody(back), bytes);
    const small = jsonResult(201, { a: 1 });
    assert.deepEqual(parseFcHttpResult(encodeFcPayload(small)), fcHttpResultSchema.parse(small));
  });
});
