/**
 * Fc2Invoker through the real SDK (@alicloud/fc2) against the loopback FC server's FC 2.0 API,
 * which verifies `FC <ak>:<signature>` and runs the fixture functions as local processes; and the
 * server's fault injection through both SDKs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Credentials, CredentialsProvider } from '../../src/cloud/credentials.ts';
import { staticCredentials } from '../../src/cloud/credentials.ts';
import { parseFcFaults } from '../../src/emulators/fc-faults.ts';
import { fcFunctionEnv, startFcServer } from '../../src/emulators/fc-server.ts';
import { fc2ContentMd5, fc2Signature, fc2StringToSign } from '../../src/emulators/fc-signing.ts';
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
import { FcInvoker } from '../../src/invoke/fc-invoker.ts';
import { DEFAULT_FC2_SERVICE, Fc2Invoker, defaultFc2Endpoint, fc2ApiErrorParts, fc2InvokerFromEnv } from '../../src/invoke/fc2-invoker.ts';
import type { Fc2InvokerOptions } from '../../src/invoke/fc2-invoker.ts';
import { fn, json, sha } from '../helpers/functions.ts';

const ACCOUNT = '1234567890123456';
const REGION = 'cn-hangzhou';
const PERMANENT = { accessKeyId: 'LTAI5tEmulatorPermanent', accessKeySecret: 'permanent-secret-0123456789' };
const STS_A = { accessKeyId: 'STS.EmulatorTempA', accessKeySecret: 'sts-secret-a', securityToken: 'sts-token-a' };
const STS_B = { accessKeyId: 'STS.EmulatorTempB', accessKeySecret: 'sts-secret-b', securityToken: 'sts-token-b' };
/** Temporary credentials whose key id does not start with STS: the SDK would not send the token itself. */
const TEMP_C = { accessKeyId: 'TMP.EmulatorTempC', accessKeySecret: 'tmp-secret-c', securityToken: 'tmp-token-c' };
const SERVER_MAX = 8 * 1024 * 1024;
const SERVICE = 'cnn';

// The SDK itself, to sign hand-made requests exactly as it signs its own.
const require = createRequire(import.meta.url);
const Fc2Client = require('@alicloud/fc2') as { getSignature(ak: string, secret: string, method: string, path: string, headers: Record<string, string>, queries: null): string };

interface Recorded { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }

/** Records every request and forwards it unchanged (to replay or tamper with signed requests). */
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

const errorOf = (p: Promise<unknown>) => p.then(() => assert.fail('expected a rejection'), (e: unknown) => e);

describe('Fc2Invoker against the FC 2.0 API of the loopback FC server', () => {
  let server: FcServer;
  const invokers: Fc2Invoker[] = [];
  const make = (extra: Partial<Fc2InvokerOptions> = {}) => {
    const inv = new Fc2Invoker({
      accountId: ACCOUNT, region: REGION, endpoint: server.endpoint, credentials: staticCredentials(PERMANENT),
      timeoutMs: 15_000, defaultService: SERVICE, services: { pid: 'tools' }, ...extra,
    });
    invokers.push(inv);
    return inv;
  };

  before(async () => {
    server = await startFcServer({
      accountId: ACCOUNT, region: REGION, credentials: [PERMANENT, STS_A, STS_B, TEMP_C], functionCredential: STS_A,
      maxPayloadBytes: SERVER_MAX, logs: 'silent',
      functions: {
        echo: fn('echo', { maxInstances: 2 }),
        sleepShort: fn('sleep', { timeoutMs: 500 }),
        sleepClient: fn('sleep'),
        throw: fn('throw'),
        crash: fn('crash'),
        pid: fn('pid', { env: { FIXTURE_ENV: 'from-config', INVOKER: 'local' } }),
        alloc: fn('alloc'),
      },
      fc2Services: { alloc: SERVICE, echo: SERVICE, sleepShort: SERVICE, sleepClient: SERVICE, throw: SERVICE, crash: SERVICE, pid: 'tools' },
      functionInvoker: 'fc2',
    });
    await server.pool.prewarm('echo', 1);
  });

  after(async () => {
    await Promise.all(invokers.map((i) => i.close()));
    await server?.close();
  });

  it('round-trips binary payloads byte for byte (0..255, 5 MB random, empty) through the FC 2.0 path', async () => {
    const inv = make();
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const r1 = await inv.invoke('echo', all);
    assert.ok(Buffer.isBuffer(r1.payload));
    assert.deepEqual([...r1.payload], [...all]);
    assert.match(r1.instanceId, /^echo-/);
    assert.ok(r1.peakRssBytes !== undefined && r1.peakRssBytes > 0);
    const rec = server.requests.at(-1)!;
    assert.equal(rec.api, 'fc2');
    assert.equal(rec.service, SERVICE);
    const big = randomBytes(5 * 1024 * 1024);
    assert.equal(sha((await inv.invoke('echo', big)).payload), sha(big));
    assert.equal((await inv.invoke('echo', Buffer.alloc(0))).payload.length, 0);
    // JSON-looking bytes stay bytes.
    assert.equal((await inv.invoke('echo', Buffer.from('{"a":1}'))).payload.toString(), '{"a":1}');
  });

  it('invokes each function in its service, and reports cold starts and the functions\' FC 2.0 env', async () => {
    const inv = make();
    const first = await inv.invoke('pid', Buffer.from('x'));
    const second = await inv.invoke('pid', Buffer.from('x'));
    assert.equal(server.requests.at(-1)?.service, 'tools');
    assert.equal(first.coldStart, true);
    assert.ok(first.initMs !== undefined && first.initMs > 0);
    assert.equal(second.coldStart, false);
    assert.equal(first.instanceId, second.instanceId);
    assert.equal(json(second.payload).env, 'from-config');
  });

  it('maps thrown errors, crashes and timeouts to the same typed errors as the FC 3.0 adapter', async () => {
    const inv = make();
    const err = await errorOf(inv.invoke('throw', Buffer.from('typed')));
    assert.ok(err instanceof FunctionError, String(err));
    assert.equal(err.errorType, 'TileError');
    assert.equal(err.errorMessage, 'tile 3 of layer conv2 is missing');
    assert.deepEqual(err.details, { layer: 'conv2', tile: [1, 2], bytes: 1024 });
    assert.match(err.remoteStack ?? '', /TileError: tile 3/);
    assert.match(err.requestId ?? '', /^[0-9a-f-]{36}$/);

    const crashed = await errorOf(inv.invoke('crash', Buffer.from('exit:3')));
    assert.ok(crashed instanceof FunctionCrashedError, String(crashed));
    assert.equal(crashed.exitCode, 3);
    assert.match(crashed.message, /Process exited unexpectedly before completing request/);
    assert.match((await inv.invoke('crash', Buffer.from('hello'))).payload.toString(), /^alive:\d+$/);

    const fcTimeout = await errorOf(inv.invoke('sleepShort', Buffer.from(JSON.stringify({ ms: 5000 }))));
    assert.ok(fcTimeout instanceof FunctionTimeoutError, String(fcTimeout));
    assert.equal(fcTimeout.timeoutMs, 500);

    const impatient = make({ timeoutMs: 300 });
    const t0 = Date.now();
    const clientTimeout = await errorOf(impatient.invoke('sleepClient', Buffer.from(JSON.stringify({ ms: 5000 }))));
    assert.ok(clientTimeout instanceof FunctionTimeoutError, String(clientTimeout));
    assert.equal(clientTimeout.timeoutMs, 300);
    assert.ok(Date.now() - t0 < 2500, `client timeout took ${Date.now() - t0} ms`);
  });

  it('maps an unknown function, service or alias to FunctionNotFoundError', async () => {
    const missing = await errorOf(make().invoke('no-such-function', Buffer.from('x')));
    assert.ok(missing instanceof FunctionNotFoundError, String(missing));
    assert.equal(server.requests.at(-1)?.code, 'FunctionNotFound');
    const noService = await errorOf(make({ defaultService: 'nope' }).invoke('echo', Buffer.from('x')));
    assert.ok(noService instanceof FunctionNotFoundError, String(noService));
    assert.equal(server.requests.at(-1)?.code, 'ServiceNotFound');
    const wrongService = await errorOf(make({ services: { echo: 'tools' } }).invoke('echo', Buffer.from('x')));
    assert.ok(wrongService instanceof FunctionNotFoundError, String(wrongService));
    const alias = await errorOf(make({ qualifier: 'prod' }).invoke('echo', Buffer.from('x')));
    assert.ok(alias instanceof FunctionNotFoundError, String(alias));
    assert.equal((await make({ qualifier: 'LATEST' }).invoke('echo', Buffer.from('q'))).payload.toString(), 'q');
  });

  it('rejects payloads over the limit: before sending (client) and with 413 (server)', async () => {
    const inv = make();
    const sent = server.requests.length;
    const err = await errorOf(inv.invoke('echo', Buffer.alloc(32 * 1024 * 1024 + 1)));
    assert.ok(err instanceof PayloadTooLargeError, String(err));
    assert.equal(err.direction, 'request');
    assert.equal(server.requests.length, sent, 'nothing was sent');
    const over = await errorOf(inv.invoke('echo', Buffer.alloc(SERVER_MAX + 1)));
    assert.ok(over instanceof PayloadTooLargeError, String(over));
    assert.equal(over.maxBytes, SERVER_MAX);
    assert.equal(server.requests.at(-1)?.status, 413);
    const small = make({ maxPayloadBytes: 1000 });
    assert.equal((await small.invoke('echo', Buffer.alloc(1000))).payload.length, 1000);
    const resp = await errorOf(small.invoke('alloc', Buffer.from(JSON.stringify({ returnBytes: 2000 }))));
    assert.ok(resp instanceof PayloadTooLargeError && resp.direction === 'response', String(resp));
  });

  describe('authentication', () => {
    const code = async (inv: Fc2Invoker) => {
      const err = await errorOf(inv.invoke('echo', Buffer.from('secret stuff')));
      assert.ok(err instanceof FcAuthError, `expected FcAuthError, got ${String(err)}`);
      assert.ok(err instanceof FcApiError && err instanceof InvokeError);
      assert.equal(err.statusCode, 403);
      assert.ok(err.message.includes(err.code), err.message);
      return err.code;
    };

    it('accepts permanent keys, STS keys with their token, and a token on a key id the SDK does not treat as STS', async () => {
      assert.equal((await make().invoke('echo', Buffer.from('ak'))).payload.toString(), 'ak');
      assert.equal((await make({ credentials: staticCredentials(STS_A) }).invoke('echo', Buffer.from('sts'))).payload.toString(), 'sts');
      assert.equal(server.requests.at(-1)?.accessKeyId, STS_A.accessKeyId);
      assert.equal((await make({ credentials: staticCredentials(TEMP_C) }).invoke('echo', Buffer.from('tmp'))).payload.toString(), 'tmp');
    });

    it('rejects a wrong key, a wrong secret, and a missing or wrong STS token', async () => {
      assert.equal(await code(make({ credentials: staticCredentials({ ...PERMANENT, accessKeyId: 'LTAI5tUnknown' }) })), 'InvalidAccessKeyId');
      assert.equal(await code(make({ credentials: staticCredentials({ ...PERMANENT, accessKeySecret: 'wrong-secret' }) })), 'SignatureNotMatch');
      assert.equal(await code(make({ credentials: staticCredentials({ ...STS_A, securityToken: 'stolen-token' }) })), 'InvalidSecurityToken');
      assert.equal(await code(make({ credentials: staticCredentials({ ...STS_A, securityToken: STS_B.securityToken }) })), 'InvalidSecurityToken');
      assert.equal(await code(make({ credentials: staticCredentials({ ...STS_A, accessKeySecret: STS_B.accessKeySecret }) })), 'SignatureNotMatch');
      // Missing token, server side: temporary credentials sent without their token.
      assert.equal(await code(make({ credentials: staticCredentials({ accessKeyId: TEMP_C.accessKeyId, accessKeySecret: TEMP_C.accessKeySecret }) })), 'InvalidSecurityToken');
      // Missing token, client side: the SDK refuses an STS key without one; nothing is sent.
      const sent = server.requests.length;
      const local = await errorOf(make({ credentials: staticCredentials({ accessKeyId: STS_A.accessKeyId, accessKeySecret: STS_A.accessKeySecret }) }).invoke('echo', Buffer.from('x')));
      assert.ok(local instanceof InvokeError, String(local));
      assert.match(local.message, /STS key but no security token/);
      assert.equal(server.requests.length, sent);
    });

    it('rejects tampered and stale requests (signatures checked against the SDK\'s own signer)', async () => {
      const proxy = await startRecordingProxy(server.endpoint);
      try {
        const inv = make({ endpoint: proxy.endpoint });
        assert.equal((await inv.invoke('echo', Buffer.from('original'))).payload.toString(), 'original');
        const good = proxy.recorded.at(-1)!;
        assert.match(String(good.headers.authorization), new RegExp(`^FC ${PERMANENT.accessKeyId}:[A-Za-z0-9+/]+=*$`));
        assert.equal(good.headers['content-md5'], fc2ContentMd5(good.body));
        const apiCode = (r: { body: Buffer }) => json(r.body).ErrorCode as string;

        // FC 2.0 has no nonce: a replay within the date window is accepted, as by FC.
        assert.equal((await send(server.endpoint, good)).status, 200);

        // Tampered body, content-md5 left alone or updated to match: both rejected.
        const body = Buffer.from('tampered');
        const t1 = await send(server.endpoint, { ...good, body });
        assert.equal(t1.status, 403);
        assert.equal(apiCode(t1), 'SignatureNotMatch');
        assert.match(json(t1.body).ErrorMessage, /content-md5/);
        const t2 = await send(server.endpoint, { ...good, body, headers: { ...good.headers, 'content-md5': fc2ContentMd5(body) } });
        assert.equal(apiCode(t2), 'SignatureNotMatch');
        // Another function, another service, an added x-fc-* header.
        assert.equal(apiCode(await send(server.endpoint, { ...good, url: good.url.replace('/echo/', '/throw/') })), 'SignatureNotMatch');
        assert.equal(apiCode(await send(server.endpoint, { ...good, url: good.url.replace(`/${SERVICE}/`, '/tools/') })), 'SignatureNotMatch');
        assert.equal(apiCode(await send(server.endpoint, { ...good, headers: { ...good.headers, 'x-fc-invocation-type': 'Async' } })), 'SignatureNotMatch');
        // No Authorization at all.
        const { authorization: _dropped, ...unsigned } = good.headers;
        assert.equal((await send(server.endpoint, { ...good, headers: unsigned })).status, 403);

        // Correctly signed (by the SDK's signer) but dated 20 minutes ago; then the same dated now.
        const signed = (date: Date) => {
          const headers: Record<string, string> = {
            'content-type': 'application/octet-stream', 'content-md5': fc2ContentMd5(good.body), date: date.toUTCString(),
            'x-fc-account-id': ACCOUNT, 'x-fc-invocation-type': 'Sync',
          };
          const authorization = Fc2Client.getSignature(PERMANENT.accessKeyId, PERMANENT.accessKeySecret, 'POST', good.url, headers, null);
          // The emulator's canonical string is the SDK's.
          assert.equal(authorization, `FC ${PERMANENT.accessKeyId}:${fc2Signature(PERMANENT.accessKeySecret, fc2StringToSign({ method: 'POST', path: good.url, headers }))}`);
          return send(server.endpoint, { method: 'POST', url: good.url, headers: { ...headers, authorization }, body: good.body });
        };
        const old = await signed(new Date(Date.now() - 20 * 60_000));
        assert.equal(old.status, 403);
        assert.equal(apiCode(old), 'RequestTimeTooSkewed');
        const ok = await signed(new Date());
        assert.equal(ok.status, 200);
        assert.equal(ok.body.toString(), 'original');
      } finally {
        await proxy.close();
      }
    });
  });

  it('re-reads STS credentials that expire soon and rebuilds the client; caches the others', async () => {
    const provider = countingProvider([
      { ...STS_A, expiration: new Date(Date.now() + 60_000) },
      { ...STS_B, expiration: new Date(Date.now() + 3600_000) },
    ]);
    const inv = make({ credentials: provider });
    const n = server.requests.length;
    for (const s of ['1', '2', '3']) assert.equal((await inv.invoke('echo', Buffer.from(s))).payload.toString(), s);
    assert.equal(provider.reads, 2);
    assert.equal(inv.clientBuilds, 2);
    assert.deepEqual(server.requests.slice(n).map((r) => r.accessKeyId), [STS_A.accessKeyId, STS_B.accessKeyId, STS_B.accessKeyId]);
  });

  it('fails cleanly when nothing listens, and after close()', async () => {
    const dead = new Fc2Invoker({ accountId: ACCOUNT, region: REGION, endpoint: 'http://127.0.0.1:9', credentials: staticCredentials(PERMANENT), timeoutMs: 2000 });
    const err = await errorOf(dead.invoke('echo', Buffer.from('x')));
    assert.ok(err instanceof InvokeError, String(err));
    assert.match(err.message, /ECONNREFUSED/);
    await dead.close();
    await assert.rejects(dead.invoke('echo', Buffer.from('x')), /closed/);
  });
});

describe('FC emulator fault injection (both API generations)', () => {
  it('parses FC_EMULATOR_FAULTS with clear errors', () => {
    assert.deepEqual(parseFcFaults('throttle:0.05,crash:0.01'), { throttle: 0.05, crash: 0.01 });
    assert.deepEqual(parseFcFaults(''), { throttle: 0, crash: 0 });
    assert.deepEqual(parseFcFaults(undefined), { throttle: 0, crash: 0 });
    assert.throws(() => parseFcFaults('throttle:2'), /FC_EMULATOR_FAULTS.*throttle/);
    assert.throws(() => parseFcFaults('slow:0.1'), /FC_EMULATOR_FAULTS.*slow/);
    assert.throws(() => parseFcFaults('throttle'), /FC_EMULATOR_FAULTS.*<fault>:<fraction>/);
    assert.throws(() => parseFcFaults('crash:0.1,crash:0.2'), /twice/);
  });

  it('throttles with 429 ResourceThrottled and kills instances mid-invocation, seen through both SDKs', async () => {
    // A fixed sequence instead of Math.random: throttle draws first, then crash (when not throttled).
    const draws = [0.0, /* throttled */ 0.9, 0.9, /* fine */ 0.9, 0.0, 0.5 /* crashed after ~5 ms */];
    let i = 0;
    const server = await startFcServer({
      accountId: ACCOUNT, region: REGION, credentials: [PERMANENT], logs: 'silent',
      functions: { sleep: fn('sleep') }, faults: 'throttle:0.5,crash:0.5', random: () => draws[i++ % draws.length],
    });
    const fc3 = new FcInvoker({ accountId: ACCOUNT, region: REGION, endpoint: server.endpoint, credentials: staticCredentials(PERMANENT), timeoutMs: 10_000 });
    const fc2 = new Fc2Invoker({ accountId: ACCOUNT, region: REGION, endpoint: server.endpoint, credentials: staticCredentials(PERMANENT), timeoutMs: 10_000 });
    try {
      await server.pool.prewarm('sleep', 1);
      for (const [name, inv] of [['fc3', fc3], ['fc2', fc2]] as const) {
        const ev = Buffer.from(JSON.stringify({ ms: 300, tag: name }));
        i = 0;
        const throttled = await errorOf(inv.invoke('sleep', ev));
        assert.ok(throttled instanceof FcApiError, `${name}: ${String(throttled)}`);
        assert.equal(throttled.statusCode, 429, name);
        assert.equal(throttled.code, 'ResourceThrottled', name);
        assert.equal(json((await inv.invoke('sleep', ev)).payload).tag, name);
        const crashed = await errorOf(inv.invoke('sleep', ev));
        assert.ok(crashed instanceof FunctionCrashedError, `${name}: ${String(crashed)}`);
        assert.equal(crashed.signal, 'SIGKILL', name);
      }
      assert.deepEqual(server.faults, { throttled: 2, crashed: 2 });
    } finally {
      await fc3.close();
      await fc2.close();
      await server.close();
    }
  });

  it('refuses a bad fault spec before starting', async () => {
    await assert.rejects(startFcServer({ accountId: ACCOUNT, region: REGION, credentials: [PERMANENT], functions: {}, faults: 'crash:-1' }), /FC_EMULATOR_FAULTS/);
  });
});

describe('Fc2Invoker endpoints and env', () => {
  it('builds the default endpoint, reads the env, and parses SDK errors', () => {
    assert.equal(defaultFc2Endpoint('123', 'cn-shanghai'), 'https://123.cn-shanghai.fc.aliyuncs.com');
    assert.equal(defaultFc2Endpoint('123', 'cn-shanghai', true), 'https://123.cn-shanghai-internal.fc.aliyuncs.com');
    const inside = fc2InvokerFromEnv({ FC_ACCOUNT_ID: '42', FC_REGION: 'cn-beijing', INVOKE_INTERNAL: 'true', FC_SERVICE_NAME: 'svc' });
    assert.equal(inside.endpoint, 'https://42.cn-beijing-internal.fc.aliyuncs.com');
    assert.equal(inside.serviceOf('worker'), 'svc');
    assert.equal(fc2InvokerFromEnv({ ALIBABA_ACCOUNT_ID: '42', ALIBABA_REGION: 'x' }).serviceOf('w'), DEFAULT_FC2_SERVICE);
    assert.throws(() => new Fc2Invoker({ accountId: '1', region: 'r', endpoint: 'http://h/path', credentials: staticCredentials(PERMANENT), timeoutMs: 1 }), TypeError);
    const e = Object.assign(new Error('POST /services/a/functions/b/invocations failed with 429. requestid: r-1, message: slow down.'), { code: 'ResourceThrottled' });
    assert.deepEqual(fc2ApiErrorParts(e), { status: 429, code: 'ResourceThrottled', fcMessage: 'slow down', requestId: 'r-1' });
    assert.equal(fc2ApiErrorParts(new Error('ECONNRESET')), undefined);
  });

  it('fcFunctionEnv selects the fc2 invoker and names the function\'s service', () => {
    const env = fcFunctionEnv({ endpoint: 'http://127.0.0.1:1234', accountId: ACCOUNT, region: REGION, credential: STS_A, functionName: 'master', invoker: 'fc2', service: 'cnn' });
    assert.equal(env.INVOKER, 'fc2');
    assert.equal(env.FC_SERVICE_NAME, 'cnn');
    assert.equal(env.ALIBABA_CLOUD_SECURITY_TOKEN, STS_A.securityToken);
  });
});
