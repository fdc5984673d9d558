/**
 * FcInvoker through the real SDK (@alicloud/fc20230330) against the loopback FC 3.0 emulator,
 * which verifies ACS3-HMAC-SHA256 signatures and runs the fixture functions as local processes.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Credentials, CredentialsProvider } from '../../src/cloud/credentials.ts';
import { staticCredentials } from '../../src/cloud/credentials.ts';
import { fcFunctionEnv, startFcServer } from '../../src/emulators/fc-server.ts';
import { acs3CanonicalRequest, acs3Signature } from '../../src/emulators/fc-signing.ts';
import type { FcServer } from '../../src/emulators/fc-server.ts';
import {
  FunctionCrashedError,
  FunctionError,
  FunctionNotFoundError,
  FunctionTimeoutError,
  InvokeError,
  PayloadTooLargeError,
} from '../../src/invoke/errors.ts';
import { FcApiError, FcAuthError } from '../../src/invoke/fc-errors.ts';
import { FcInvoker, defaultFcEndpoint, parseFcEndpoint } from '../../src/invoke/fc-invoker.ts';
import type { FcInvokerOptions } from '../../src/invoke/fc-invoker.ts';

import { fn, json, sha } from '../helpers/functions.ts';

const ACCOUNT = '1234567890123456';
const REGION = 'cn-hangzhou';
const PERMANENT = { accessKeyId: 'LTAI5tEmulatorPermanent', accessKeySecret: 'permanent-secret-0123456789' };
const STS_A = { accessKeyId: 'STS.EmulatorTempA', accessKeySecret: 'sts-secret-a', securityToken: 'sts-token-a' };
const STS_B = { accessKeyId: 'STS.EmulatorTempB', accessKeySecret: 'sts-secret-b', securityToken: 'sts-token-b' };
const SERVER_MAX = 8 * 1024 * 1024;

/** Records every request and forwards it unchanged to the emulator (to replay/tamper with signed requests). */
interface Recorded { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }
async function startRecordingProxy(target: string): Promise<{ endpoint: string; recorded: Recorded[]; close(): Promise<void> }> {
  const recorded: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      recorded.push({ method: req.method!, url: req.url!, headers: { ...req.headers }, body });
      send(target, { method: req.method!, url: req.url!, headers: req.headers, body }).then((r) => {
        res.writeHead(r.status, r.headers);
        res.end(r.body);
      }, () => res.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    recorded,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** Raw HTTP request (headers sent exactly as given, including `host`). */
function send(endpoint: string, r: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }):
  Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const { hostname, port } = new URL(endpoint);
  const headers = { ...r.headers };
  delete headers['transfer-encoding'];
  delete headers.connection;
  headers['content-length'] = String(r.body.length);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, method: r.method, path: r.url, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(r.body);
  });
}

function countingProvider(sequence: Credentials[]): CredentialsProvider & { reads: number } {
  const p = {
    reads: 0,
    async get() {
      const c = sequence[Math.min(p.reads, sequence.length - 1)];
      p.reads++;
      return { ...c };
    },
  };
  return p;
}

describe('FcInvoker against the FC 3.0 emulator', () => {
  let server: FcServer;
  const invokers: FcInvoker[] = [];
  const make = (extra: Partial<FcInvokerOptions> = {}) => {
    const inv = new FcInvoker({
      accountId: ACCOUNT,
      region: REGION,
      endpoint: server.endpoint,
      credentials: staticCredentials(PERMANENT),
      timeoutMs: 15_000,
      ...extra,
    });
    invokers.push(inv);
    return inv;
  };

  before(async () => {
    server = await startFcServer({
      accountId: ACCOUNT,
      region: REGION,
      credentials: [PERMANENT, STS_A, STS_B],
      functionCredential: STS_A,
      maxPayloadBytes: SERVER_MAX,
      logs: 'silent',
      functions: {
        echo: fn('echo', { maxInstances: 2 }),
        sleep: fn('sleep', { maxInstances: 4 }),
        sleepShort: fn('sleep', { timeoutMs: 500 }),
        sleepClient: fn('sleep'),
        throw: fn('throw'),
        crash: fn('crash'),
        pid: fn('pid', { env: { FIXTURE_ENV: 'from-config', INVOKER: 'local' } }),
        nested: fn('fc-nested'),
      },
    });
    // Start the instances the tests time in parallel.
    await Promise.all([server.pool.prewarm('sleep', 4), server.pool.prewarm('echo', 1)]);
  });

  after(async () => {
    await Promise.all(invokers.map((i) => i.close()));
    await server?.close();
  });

  it('round-trips binary payloads byte for byte (0..255 and 5 MB random)', async () => {
    const inv = make();
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const r1 = await inv.invoke('echo', all);
    assert.ok(Buffer.isBuffer(r1.payload));
    assert.deepEqual([...r1.payload], [...all]);
    assert.match(r1.instanceId, /^echo-/);
    assert.equal(typeof r1.durationMs, 'number');
    assert.ok(r1.peakRssBytes !== undefined && r1.peakRssBytes > 0);

    const big = randomBytes(5 * 1024 * 1024);
    const r2 = await inv.invoke('echo', big);
    assert.equal(r2.payload.length, big.length);
    assert.equal(sha(r2.payload), sha(big));

    const r3 = await inv.invoke('echo', Buffer.alloc(0));
    assert.equal(r3.payload.length, 0);
    // A Uint8Array view into a larger buffer sends only its bytes.
    const view = new Uint8Array(all.buffer, all.byteOffset + 10, 5);
    assert.deepEqual([...(await inv.invoke('echo', view)).payload], [10, 11, 12, 13, 14]);
  });

  it('reports cold starts from the emulator headers', async () => {
    const inv = make();
    const first = await inv.invoke('pid', Buffer.from('x'));
    const second = await inv.invoke('pid', Buffer.from('x'));
    assert.equal(first.coldStart, true);
    assert.ok(first.initMs !== undefined && first.initMs > 0);
    assert.equal(second.coldStart, false);
    assert.equal(second.initMs, undefined);
    assert.equal(first.instanceId, second.instanceId);
    const info = json(second.payload);
    // The emulator's FC variables are merged over the function's configured env.
    assert.equal(info.env, 'from-config');
  });

  it('runs parallel invocations on distinct instance processes', async () => {
    const inv = make();
    const t0 = Date.now();
    const results = await Promise.all([0, 1, 2, 3].map((i) => inv.invoke('sleep', Buffer.from(JSON.stringify({ ms: 400, tag: i })))));
    const elapsed = Date.now() - t0;
    const bodies = results.map((r) => json(r.payload));
    assert.deepEqual(bodies.map((b) => b.tag), [0, 1, 2, 3]);
    assert.equal(new Set(bodies.map((b) => b.pid)).size, 4);
    assert.equal(new Set(results.map((r) => r.instanceId)).size, 4);
    assert.ok(elapsed < 1500, `4 × 400 ms in parallel took ${elapsed} ms (serial would be ≥ 1600)`);
  });

  it('maps a thrown error to FunctionError with the remote type, message, details and stack', async () => {
    const inv = make();
    const err = await inv.invoke('throw', Buffer.from('typed')).then(() => assert.fail('expected a FunctionError'), (e: unknown) => e);
    assert.ok(err instanceof FunctionError, String(err));
    assert.equal(err.errorType, 'TileError');
    assert.equal(err.errorMessage, 'tile 3 of layer conv2 is missing');
    assert.deepEqual(err.details, { layer: 'conv2', tile: [1, 2], bytes: 1024 });
    assert.match(err.remoteStack ?? '', /TileError: tile 3/);
    assert.equal(err.functionName, 'throw');
    assert.match(err.requestId ?? '', /^[0-9a-f-]{36}$/);
    assert.match(err.instanceId ?? '', /^throw-/);

    const rej = await inv.invoke('throw', Buffer.from('reject')).catch((e: unknown) => e);
    assert.ok(rej instanceof FunctionError);
    assert.equal(rej.errorType, 'TypeError');
    assert.equal(rej.errorMessage, 'async rejection');
    // The instance lives on after a handler error.
    assert.match((await inv.invoke('throw', Buffer.from('fine'))).payload.toString(), /^ok:\d+$/);
  });

  it('maps a crash to FunctionCrashedError naming the exit, and recovers with a new instance', async () => {
    const inv = make();
    const before = json((await inv.invoke('pid', Buffer.alloc(0))).payload).pid as number;
    assert.ok(before > 0);
    const err = await inv.invoke('crash', Buffer.from('exit:3')).catch((e: unknown) => e);
    assert.ok(err instanceof FunctionCrashedError, String(err));
    assert.ok(err instanceof InvokeError);
    assert.equal(err.exitCode, 3);
    assert.match(err.message, /Process exited unexpectedly before completing request/);
    assert.match(err.message, /exited with code 3/);
    const killed = await inv.invoke('crash', Buffer.from('kill')).catch((e: unknown) => e);
    assert.ok(killed instanceof FunctionCrashedError);
    assert.equal(killed.signal, 'SIGKILL');
    assert.match((await inv.invoke('crash', Buffer.from('hello'))).payload.toString(), /^alive:\d+$/);
  });

  it('maps timeouts (function timeout in FC, and no response within timeoutMs) to FunctionTimeoutError', async () => {
    const inv = make();
    const fcTimeout = await inv.invoke('sleepShort', Buffer.from(JSON.stringify({ ms: 5000 }))).catch((e: unknown) => e);
    assert.ok(fcTimeout instanceof FunctionTimeoutError, String(fcTimeout));
    assert.equal(fcTimeout.timeoutMs, 500);
    assert.match(fcTimeout.message, /Function timed out after 0\.5 seconds/);

    const impatient = make({ timeoutMs: 300 });
    const t0 = Date.now();
    const clientTimeout = await impatient.invoke('sleepClient', Buffer.from(JSON.stringify({ ms: 5000 }))).catch((e: unknown) => e);
    assert.ok(clientTimeout instanceof FunctionTimeoutError, String(clientTimeout));
    assert.equal(clientTimeout.timeoutMs, 300);
    assert.ok(Date.now() - t0 < 2500, `client timeout took ${Date.now() - t0} ms`);
  });

  it('maps an unknown function to FunctionNotFoundError (404 FunctionNotFound)', async () => {
    const err = await make().invoke('no-such-function', Buffer.from('x')).catch((e: unknown) => e);
    assert.ok(err instanceof FunctionNotFoundError, String(err));
    assert.equal(err.functionName, 'no-such-function');
    assert.equal(server.requests.at(-1)?.code, 'FunctionNotFound');
    assert.equal(server.requests.at(-1)?.status, 404);
    const alias = await make({ qualifier: 'prod' }).invoke('echo', Buffer.from('x')).catch((e: unknown) => e);
    assert.ok(alias instanceof FunctionNotFoundError, String(alias));
    assert.equal((await make({ qualifier: 'LATEST' }).invoke('echo', Buffer.from('q'))).payload.toString(), 'q');
  });

  it('rejects payloads over the limit: before sending (client) and with 413 (server)', async () => {
    const inv = make();
    const sent = server.requests.length;
    const tooBig = Buffer.alloc(32 * 1024 * 1024 + 1);
    const err = await inv.invoke('echo', tooBig).catch((e: unknown) => e);
    assert.ok(err instanceof PayloadTooLargeError, String(err));
    assert.equal(err.direction, 'request');
    assert.equal(err.maxBytes, 32 * 1024 * 1024);
    assert.equal(server.requests.length, sent, 'nothing was sent');

    const over = await inv.invoke('echo', Buffer.alloc(SERVER_MAX + 1)).catch((e: unknown) => e);
    assert.ok(over instanceof PayloadTooLargeError, String(over));
    assert.equal(over.maxBytes, SERVER_MAX);
    assert.equal(server.requests.at(-1)?.status, 413);

    const small = make({ maxPayloadBytes: 1000 });
    const resp = await small.invoke('echo', Buffer.alloc(1000)).then((r) => r.payload.length);
    assert.equal(resp, 1000);
  });

  describe('authentication', () => {
    const code = async (inv: FcInvoker) => {
      const err = await inv.invoke('echo', Buffer.from('secret stuff')).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof FcAuthError, `expected FcAuthError, got ${String(err)}`);
      assert.ok(err instanceof FcApiError && err instanceof InvokeError);
      assert.equal(err.statusCode, 403);
      assert.ok(err.message.includes(err.code), err.message);
      return err.code;
    };

    it('accepts permanent keys and STS keys with their token', async () => {
      assert.equal((await make().invoke('echo', Buffer.from('ak'))).payload.toString(), 'ak');
      assert.equal((await make({ credentials: staticCredentials(STS_A) }).invoke('echo', Buffer.from('sts'))).payload.toString(), 'sts');
      assert.equal(server.requests.at(-1)?.accessKeyId, STS_A.accessKeyId);
    });

    it('rejects an unknown access key, a wrong secret, and a missing or wrong STS token', async () => {
      assert.equal(await code(make({ credentials: staticCredentials({ ...PERMANENT, accessKeyId: 'LTAI5tUnknown' }) })), 'InvalidAccessKeyId');
      assert.equal(await code(make({ credentials: staticCredentials({ ...PERMANENT, accessKeySecret: 'wrong-secret' }) })), 'SignatureNotMatch');
      assert.equal(await code(make({ credentials: staticCredentials({ accessKeyId: STS_A.accessKeyId, accessKeySecret: STS_A.accessKeySecret }) })), 'InvalidSecurityToken');
      assert.equal(await code(make({ credentials: staticCredentials({ ...STS_A, securityToken: 'stolen-token' }) })), 'InvalidSecurityToken');
      assert.equal(await code(make({ credentials: staticCredentials({ ...STS_A, securityToken: STS_B.securityToken }) })), 'InvalidSecurityToken');
      // STS secret of another key.
      assert.equal(await code(make({ credentials: staticCredentials({ ...STS_A, accessKeySecret: STS_B.accessKeySecret }) })), 'SignatureNotMatch');
    });

    it('rejects replayed, tampered and stale requests', async () => {
      const proxy = await startRecordingProxy(server.endpoint);
      try {
        const inv = make({ endpoint: proxy.endpoint });
        assert.equal((await inv.invoke('echo', Buffer.from('original'))).payload.toString(), 'original');
        const good = proxy.recorded.at(-1)!;
        const apiCode = (r: { body: Buffer }) => json(r.body).Code as string;

        const replay = await send(server.endpoint, good);
        assert.equal(replay.status, 403);
        assert.equal(apiCode(replay), 'SignatureNonceUsed');

        const fresh = (extra: Partial<Recorded> & { headers?: http.IncomingHttpHeaders } = {}) => ({
          ...good,
          ...extra,
          headers: { ...good.headers, 'x-acs-signature-nonce': randomUUID(), ...(extra.headers ?? {}) },
        });
        // New nonce without re-signing: the signature covers the nonce.
        const renonced = await send(server.endpoint, fresh());
        assert.equal(renonced.status, 403);
        assert.equal(apiCode(renonced), 'SignatureNotMatch');

        // Tampered body (hash header left alone, or updated to match): both rejected.
        const body = Buffer.from('tampered');
        const t1 = await send(server.endpoint, { ...good, body });
        assert.equal(apiCode(t1), 'SignatureNotMatch');
        assert.match(json(t1.body).Message, /x-acs-content-sha256/);
        const t2 = await send(server.endpoint, { ...good, body, headers: { ...good.headers, 'x-acs-content-sha256': sha(body) } });
        assert.equal(apiCode(t2), 'SignatureNotMatch');

        // Another function, or a query the client did not sign.
        const t3 = await send(server.endpoint, { ...good, url: good.url.replace('/echo/', '/pid/') });
        assert.equal(apiCode(t3), 'SignatureNotMatch');
        const t4 = await send(server.endpoint, { ...good, url: `${good.url}?qualifier=LATEST` });
        assert.equal(apiCode(t4), 'SignatureNotMatch');

        // An unsigned x-acs-* header.
        const t5 = await send(server.endpoint, { ...good, headers: { ...good.headers, 'x-acs-extra': '1' } });
        assert.equal(apiCode(t5), 'SignatureNotMatch');
        assert.match(json(t5.body).Message, /x-acs-extra/);

        // Correctly signed but dated 20 minutes ago.
        const stale = new Date(Date.now() - 20 * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
        const headers: Record<string, string> = {
          host: new URL(server.endpoint).host,
          'content-type': 'application/octet-stream',
          'x-acs-date': stale,
          'x-acs-signature-nonce': randomUUID(),
          'x-acs-content-sha256': sha(good.body),
        };
        const signedHeaders = Object.keys(headers).sort();
        const canonical = acs3CanonicalRequest({ method: 'POST', rawPath: good.url, query: {}, headers, signedHeaders, contentSha256: sha(good.body) });
        const authorization = `ACS3-HMAC-SHA256 Credential=${PERMANENT.accessKeyId},SignedHeaders=${signedHeaders.join(';')},Signature=${acs3Signature(PERMANENT.accessKeySecret, canonical)}`;
        const old = await send(server.endpoint, { method: 'POST', url: good.url, headers: { ...headers, authorization }, body: good.body });
        assert.equal(old.status, 403);
        assert.equal(apiCode(old), 'RequestTimeTooSkewed');
        // The same, dated now, is accepted: the helpers sign like the SDK.
        headers['x-acs-date'] = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
        const c2 = acs3CanonicalRequest({ method: 'POST', rawPath: good.url, query: {}, headers, signedHeaders, contentSha256: sha(good.body) });
        const ok = await send(server.endpoint, {
          method: 'POST', url: good.url, body: good.body,
          headers: { ...headers, authorization: `ACS3-HMAC-SHA256 Credential=${PERMANENT.accessKeyId},SignedHeaders=${signedHeaders.join(';')},Signature=${acs3Signature(PERMANENT.accessKeySecret, c2)}` },
        });
        assert.equal(ok.status, 200);
        assert.equal(ok.body.toString(), 'original');

        // No Authorization at all.
        const anon = await send(server.endpoint, { method: 'POST', url: good.url, headers: { 'content-type': 'application/octet-stream' }, body: good.body });
        assert.equal(anon.status, 403);
      } finally {
        await proxy.close();
      }
    });
  });

  it('re-reads STS credentials that expire soon and rebuilds the client; caches the others', async () => {
    const provider = countingProvider([
      { ...STS_A, expiration: new Date(Date.now() + 60_000) }, // within the 5-minute refresh margin
      { ...STS_B, expiration: new Date(Date.now() + 3600_000) },
    ]);
    const inv = make({ credentials: provider });
    const n = server.requests.length;
    for (const s of ['1', '2', '3']) assert.equal((await inv.invoke('echo', Buffer.from(s))).payload.toString(), s);
    assert.equal(provider.reads, 2);
    assert.equal(inv.clientBuilds, 2);
    assert.deepEqual(server.requests.slice(n).map((r) => r.accessKeyId), [STS_A.accessKeyId, STS_B.accessKeyId, STS_B.accessKeyId]);

    const stable = countingProvider([PERMANENT]);
    const inv2 = make({ credentials: stable });
    await Promise.all([1, 2, 3].map(() => inv2.invoke('echo', Buffer.from('x'))));
    await inv2.invoke('echo', Buffer.from('y'));
    assert.equal(stable.reads, 1);
    assert.equal(inv2.clientBuilds, 1);
  });

  it('lets emulated functions invoke functions through FC (FcInvoker from the env it passes)', async () => {
    const inv = make();
    const n = server.requests.length;
    const r = await inv.invoke('nested', Buffer.from(JSON.stringify({ target: 'echo', bytes: 1000 })));
    const out = json(r.payload);
    assert.equal(out.invoker, 'fc');
    assert.equal(out.endpoint, server.endpoint);
    assert.equal(out.sent, 1000);
    assert.equal(out.sha256Got, out.sha256Sent);
    assert.match(out.instanceId, /^echo-/);
    // The inner call went through the server, signed with the function's STS credentials.
    const inner = server.requests.slice(n).find((q) => q.functionName === 'echo');
    assert.ok(inner, 'nested call reached the emulator');
    assert.equal(inner.accessKeyId, STS_A.accessKeyId);
    assert.equal(inner.status, 200);

    // A failing nested call surfaces as the outer function's error.
    const err = await inv.invoke('nested', Buffer.from(JSON.stringify({ target: 'missing' }))).catch((e: unknown) => e);
    assert.ok(err instanceof FunctionError, String(err));
    assert.equal(err.errorType, 'FunctionNotFoundError');
    assert.match(err.errorMessage, /missing/);
  });

  it('fails cleanly when nothing listens, and after close()', async () => {
    const dead = new FcInvoker({
      accountId: ACCOUNT, region: REGION, endpoint: 'http://127.0.0.1:9', credentials: staticCredentials(PERMANENT), timeoutMs: 2000,
    });
    const err = await dead.invoke('echo', Buffer.from('x')).catch((e: unknown) => e);
    assert.ok(err instanceof InvokeError, String(err));
    assert.match(err.message, /ECONNREFUSED/);
    await dead.close();
    await assert.rejects(dead.invoke('echo', Buffer.from('x')), /closed/);
  });
});

describe('FcInvoker endpoints and env', () => {
  it('builds the default FC 3.0 endpoint and parses overrides', () => {
    assert.equal(defaultFcEndpoint('123', 'cn-shanghai'), 'https://123.cn-shanghai.fc.aliyuncs.com');
    assert.equal(defaultFcEndpoint('123', 'cn-shanghai', true), 'https://123.cn-shanghai-internal.fc.aliyuncs.com');
    assert.deepEqual(parseFcEndpoint('http://127.0.0.1:9000'), { protocol: 'http', host: '127.0.0.1:9000' });
    assert.deepEqual(parseFcEndpoint('HTTPS://example.com/'), { protocol: 'https', host: 'example.com' });
    assert.deepEqual(parseFcEndpoint('123.cn-hangzhou.fc.aliyuncs.com'), { protocol: 'https', host: '123.cn-hangzhou.fc.aliyuncs.com' });
    assert.throws(() => parseFcEndpoint('http://h/path'), TypeError);
    const inv = new FcInvoker({ accountId: '42', region: 'cn-beijing', internal: true, credentials: staticCredentials(PERMANENT), timeoutMs: 1000 });
    assert.deepEqual(inv.endpoint, { protocol: 'https', host: '42.cn-beijing-internal.fc.aliyuncs.com' });
  });

  it('fcFunctionEnv selects the FC invoker with the emulator endpoint and credentials', () => {
    const env = fcFunctionEnv({ endpoint: 'http://127.0.0.1:1234', accountId: ACCOUNT, region: REGION, credential: STS_A, functionName: 'master' });
    assert.deepEqual(env, {
      INVOKER: 'fc',
      INVOKE_ENDPOINT: 'http://127.0.0.1:1234',
      ALIBABA_ACCOUNT_ID: ACCOUNT,
      ALIBABA_REGION: REGION,
      ALIBABA_CLOUD_ACCESS_KEY_ID: STS_A.accessKeyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: STS_A.accessKeySecret,
      ALIBABA_CLOUD_SECURITY_TOKEN: STS_A.securityToken,
      FC_ACCOUNT_ID: ACCOUNT,
      FC_REGION: REGION,
      FC_FUNCTION_NAME: 'master',
    });
  });
});
