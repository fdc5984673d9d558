import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { OssStore } from '../../src/store/oss-store.ts';
import type { OssStoreOptions } from '../../src/store/oss-store.ts';
import { startOssServer } from '../../src/emulators/oss-server.ts';
import type { OssServer, OssServerOptions } from '../../src/emulators/oss-server.ts';
import type { OssServerCredentials } from '../../src/emulators/oss-signing.ts';
import {
  CachedCredentials,
  CredentialsError,
  envCredentials,
  staticCredentials,
} from '../../src/cloud/credentials.ts';
import type { Credentials, CredentialsProvider } from '../../src/cloud/credentials.ts';
import {
  InvalidRangeError,
  ObjectNotFoundError,
  StoreAuthError,
  StoreError,
  StoreThrottledError,
  StoreTimeoutError,
} from '../../src/store/errors.ts';
import { runObjectStoreContract } from './contract.ts';

const BUCKET = 'tiles-test';
const STS: OssServerCredentials = { accessKeyId: 'STS.test-ak', accessKeySecret: 'sts-secret/+=', securityToken: 'CAIS-token-1+/=' };

async function setup(
  serverOpts: Partial<OssServerOptions> = {},
  storeOpts: Partial<OssStoreOptions> = {},
): Promise<{ server: OssServer; store: OssStore; close: () => Promise<void> }> {
  const server = await startOssServer({ bucket: BUCKET, credentials: [STS], ...serverOpts });
  const store = new OssStore({
    bucket: BUCKET,
    endpoint: server.endpoint,
    sldEnable: true,
    credentials: staticCredentials(STS),
    ...storeOpts,
  });
  return { server, store, close: () => server.close() };
}

runObjectStoreContract('OssStore via ali-oss on the loopback server', async () => {
  const { store, close } = await setup();
  return { store, cleanup: close };
});

async function rejectsWith(p: Promise<unknown>, cls: new (...a: never[]) => Error, code: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${(err as Error)?.name}: ${(err as Error)?.message}`);
    assert.match((err as Error).message, code);
    return true;
  });
}

describe('OssStore on the loopback OSS server: authentication', () => {
  it('a wrong AccessKey ID fails every operation with StoreAuthError (InvalidAccessKeyId)', async () => {
    const { server, close } = await setup();
    try {
      const store = new OssStore({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, credentials: staticCredentials({ ...STS, accessKeyId: 'STS.unknown' }) });
      await rejectsWith(store.put('k', Buffer.from('x')), StoreAuthError, /"k".*InvalidAccessKeyId/);
      await rejectsWith(store.get('k'), StoreAuthError, /InvalidAccessKeyId/);
      await rejectsWith(store.list(''), StoreAuthError, /InvalidAccessKeyId/);
      await rejectsWith(store.delete(['k']), StoreAuthError, /InvalidAccessKeyId/);
      assert.equal(server.stats().errors.InvalidAccessKeyId, 4);
      assert.equal(server.stats().objects, 0, 'the rejected put stored nothing');
    } finally {
      await close();
    }
  });

  it('a wrong secret (bad signature) fails every operation with StoreAuthError (SignatureDoesNotMatch)', async () => {
    const { server, store: good, close } = await setup();
    try {
      await good.put('k/obj', Buffer.from('stored'));
      const store = new OssStore({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, credentials: staticCredentials({ ...STS, accessKeySecret: 'not-the-secret' }) });
      await rejectsWith(store.put('k/obj', Buffer.from('overwrite')), StoreAuthError, /SignatureDoesNotMatch/);
      await rejectsWith(store.get('k/obj'), StoreAuthError, /SignatureDoesNotMatch/);
      await rejectsWith(store.get('k/obj', { start: 0, end: 2 }), StoreAuthError, /SignatureDoesNotMatch/);
      await rejectsWith(store.list('k/'), StoreAuthError, /SignatureDoesNotMatch/);
      await rejectsWith(store.delete(['k/obj']), StoreAuthError, /SignatureDoesNotMatch/);
      assert.equal(server.stats().errors.SignatureDoesNotMatch, 5);
      assert.equal((await good.get('k/obj')).toString(), 'stored', 'nothing changed');
    } finally {
      await close();
    }
  });

  it('a missing or wrong STS token fails with StoreAuthError (InvalidSecurityToken)', async () => {
    const { server, close } = await setup();
    try {
      const noToken = new OssStore({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, credentials: staticCredentials({ accessKeyId: STS.accessKeyId, accessKeySecret: STS.accessKeySecret }) });
      await rejectsWith(noToken.put('k', Buffer.from('x')), StoreAuthError, /InvalidSecurityToken/);
      await rejectsWith(noToken.list(''), StoreAuthError, /InvalidSecurityToken/);
      const wrongToken = new OssStore({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, credentials: staticCredentials({ ...STS, securityToken: 'CAIS-forged' }) });
      await rejectsWith(wrongToken.get('k'), StoreAuthError, /InvalidSecurityToken/);
      assert.equal(server.stats().errors.InvalidSecurityToken, 3);
      assert.equal(server.stats().objects, 0);
    } finally {
      await close();
    }
  });

  it('an expired STS token fails with StoreAuthError (SecurityTokenExpired)', async () => {
    const { store, close } = await setup({ credentials: [{ ...STS, expiration: new Date(Date.now() - 1000) }] });
    try {
      await rejectsWith(store.get('k'), StoreAuthError, /SecurityTokenExpired/);
    } finally {
      await close();
    }
  });

  it('a clock more than 15 minutes off fails with StoreAuthError (RequestTimeTooSkewed)', async () => {
    const { store, close } = await setup({ now: () => Date.now() + 16 * 60_000 });
    try {
      await rejectsWith(store.list(''), StoreAuthError, /RequestTimeTooSkewed/);
    } finally {
      await close();
    }
  });
});

/** A provider whose answer the test controls, counting reads. */
function controllable(initial: Credentials): CredentialsProvider & { value: Credentials; reads: number } {
  const p = {
    value: initial,
    reads: 0,
    async get() {
      p.reads++;
      return { ...p.value };
    },
  };
  return p;
}

describe('OssStore credentials refresh', () => {
  const gen = (n: number, expiresInMs?: number): Credentials & OssServerCredentials => ({
    accessKeyId: `STS.ak-${n}`,
    accessKeySecret: `secret-${n}`,
    securityToken: `token-${n}`,
    ...(expiresInMs === undefined ? {} : { expiration: new Date(Date.now() + expiresInMs) }),
  });

  it('re-reads credentials that expire within 5 minutes, picking up rotated ones', async () => {
    const c1 = gen(1, 60_000); // inside the refresh margin: re-read before every request
    const { server, close } = await setup({ credentials: [c1] });
    try {
      const provider = controllable(c1);
      const store = new OssStore({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, credentials: provider });
      await store.put('a', Buffer.from('1'));
      const readsBefore = provider.reads;
      assert.ok(readsBefore >= 1);
      // STS issues new credentials; the old ones stop working at the server.
      const c2 = gen(2, 60 * 60_000);
      server.setCredentials([c2]);
      provider.value = c2;
      assert.equal((await store.get('a')).toString(), '1');
      assert.ok(provider.reads > readsBefore, 'provider was re-read');
      const st = server.stats();
      assert.ok(st.accessKeys[c1.accessKeyId] >= 1 && st.accessKeys[c2.accessKeyId] >= 1, JSON.stringify(st.accessKeys));
      assert.equal(st.errors.InvalidAccessKeyId ?? 0, 0, 'no request was sent with stale credentials');
      // c2 is valid for an hour: no more re-reads.
      const readsAfter = provider.reads;
      await store.list('');
      await store.get('a');
      assert.equal(provider.reads, readsAfter);
    } finally {
      await close();
    }
  });

  it('does not re-read long-lived credentials', async () => {
    const c = gen(3, 60 * 60_000);
    const { server, close } = await setup({ credentials: [c] });
    try {
      const provider = controllable(c);
      const store = new OssStore({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, credentials: provider });
      await Promise.all(Array.from({ length: 10 }, (_, i) => store.put(`k${i}`, Buffer.from('x'))));
      await store.list('');
      assert.equal(provider.reads, 1, 'concurrent first requests share one read');
    } finally {
      await close();
    }
  });

  it('after SecurityTokenExpired / InvalidAccessKeyId, retries once with newer credentials from the provider', async () => {
    const c4 = gen(4); // no expiration known to the client
    const { server, close } = await setup({ credentials: [c4] });
    try {
      const provider = controllable(c4);
      const store = new OssStore({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, credentials: provider });
      await store.put('a', Buffer.from('1'));
      // Rotation the client could not foresee.
      const c5 = gen(5);
      server.setCredentials([c5]);
      provider.value = c5;
      assert.equal((await store.get('a')).toString(), '1');
      assert.equal(server.stats().errors.InvalidAccessKeyId, 1, 'one rejected request, then the retry');
      // Provider has nothing newer: the error surfaces.
      server.setCredentials([gen(6)]);
      await rejectsWith(store.get('a'), StoreAuthError, /InvalidAccessKeyId/);
    } finally {
      await close();
    }
  });

  it('a failing provider surfaces as StoreAuthError', async () => {
    const { server, close } = await setup();
    try {
      const store = new OssStore({
        bucket: BUCKET, endpoint: server.endpoint, sldEnable: true,
        credentials: { get: async () => { throw new Error('metadata service down'); } },
      });
      await rejectsWith(store.get('a'), StoreAuthError, /metadata service down/);
      const envStore = new OssStore({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, credentials: envCredentials({}) });
      await rejectsWith(envStore.list(''), StoreAuthError, /ALIBABA_CLOUD_ACCESS_KEY_ID/);
      assert.equal(server.stats().requests, 0);
    } finally {
      await close();
    }
  });

  it('envCredentials reads the ALIBABA_CLOUD_* variables on every get()', async () => {
    const env: NodeJS.ProcessEnv = { ALIBABA_CLOUD_ACCESS_KEY_ID: 'ak', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'sk' };
    const p = envCredentials(env);
    assert.deepEqual(await p.get(), { accessKeyId: 'ak', accessKeySecret: 'sk' });
    env.ALIBABA_CLOUD_SECURITY_TOKEN = 'tok';
    assert.deepEqual(await p.get(), { accessKeyId: 'ak', accessKeySecret: 'sk', securityToken: 'tok' });
    await assert.rejects(envCredentials({ ALIBABA_CLOUD_ACCESS_KEY_ID: 'ak' }).get(), CredentialsError);
    assert.throws(() => staticCredentials({ accessKeyId: '', accessKeySecret: 'x' }), CredentialsError);
  });

  it('CachedCredentials refreshes within the margin, using the clock', async () => {
    let now = 1_000_000;
    const provider = controllable({ accessKeyId: 'a', accessKeySecret: 'b', securityToken: 't', expiration: new Date(now + 10 * 60_000) });
    const cache = new CachedCredentials(provider, { refreshMarginMs: 5 * 60_000, now: () => now });
    const first = await cache.get();
    assert.equal(await cache.get(), first, 'cached (same object)');
    now += 4 * 60_000; // 6 min left
    assert.equal(await cache.get(), first);
    now += 2 * 60_000; // 4 min left: refresh
    provider.value = { ...provider.value, securityToken: 't2', expiration: new Date(now + 60 * 60_000) };
    const second = await cache.get();
    assert.notEqual(second, first);
    assert.equal(second.securityToken, 't2');
    assert.equal(provider.reads, 2);
  });
});

describe('OssStore on the loopback OSS server: errors, ranges, paging', () => {
  it('a missing key is ObjectNotFoundError naming the key and the OSS code', async () => {
    const { store, close } = await setup();
    try {
      await assert.rejects(store.get('job/1/missing.f32'), (err: unknown) => {
        assert.ok(err instanceof ObjectNotFoundError);
        assert.equal(err.key, 'job/1/missing.f32');
        assert.match(err.message, /job\/1\/missing\.f32/);
        assert.match(err.message, /NoSuchKey/);
        return true;
      });
      await assert.rejects(store.get('job/1/missing.f32', { start: 0, end: 4 }), ObjectNotFoundError);
    } finally {
      await close();
    }
  });

  it('a missing bucket is a StoreError, not ObjectNotFoundError', async () => {
    const { server, close } = await setup();
    try {
      const store = new OssStore({ bucket: 'other-bucket', endpoint: server.endpoint, sldEnable: true, credentials: staticCredentials(STS) });
      await assert.rejects(store.get('k'), (err: unknown) => err instanceof StoreError && !(err instanceof ObjectNotFoundError) && /NoSuchBucket/.test(err.message));
    } finally {
      await close();
    }
  });

  it('503 SlowDown and 429 are StoreThrottledError; a slow answer is StoreTimeoutError', async () => {
    const { server, store, close } = await setup({}, { timeoutMs: 300 });
    try {
      await store.put('k', Buffer.from('x'));
      server.injectFault({ operation: 'GetObject', status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' });
      await rejectsWith(store.get('k'), StoreThrottledError, /SlowDown/);
      server.injectFault({ operation: 'PutObject', status: 429, code: 'TooManyRequests' });
      await rejectsWith(store.put('k', Buffer.from('y')), StoreThrottledError, /TooManyRequests/);
      server.injectFault({ operation: 'ListObjectsV2', delayMs: 1500 });
      await rejectsWith(store.list(''), StoreTimeoutError, /timed out|timeout/i);
      assert.equal((await store.get('k')).toString(), 'x');
    } finally {
      await close();
    }
  });

  it('validates ranges when OSS ignores x-oss-range-behavior (200 with the whole object)', async () => {
    const { server, store, close } = await setup({ honourRangeBehavior: false });
    try {
      const body = Buffer.from('0123456789abcdefghij');
      await store.put('r', body);
      assert.equal((await store.get('r', { start: 3, end: 7 })).toString(), '3456');
      for (const range of [{ start: 10, end: 21 }, { start: 20, end: 21 }, { start: 25, end: 30 }]) {
        await rejectsWith(store.get('r', range), InvalidRangeError, /range/);
      }
      assert.equal(server.stats().errors.InvalidRange ?? 0, 0, 'server answered 200, not 416');
    } finally {
      await close();
    }
  });

  it('lists beyond 1000 keys (ListObjectsV2 pages) and deletes beyond 1000 keys (DeleteMultipleObjects batches)', async () => {
    const { server, store, close } = await setup();
    try {
      const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(4, '0')}+${i % 7 === 0 ? '层' : 'x'}`);
      let next = 0;
      await Promise.all(Array.from({ length: 32 }, async () => {
        while (next < keys.length) {
          const k = keys[next++];
          await store.put(k, Buffer.from(k));
        }
      }));
      await store.put('other/keep', Buffer.from('k'));

      const listed = await store.list('many/');
      assert.equal(listed.length, 1100);
      assert.deepEqual(listed, [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      let st = server.stats();
      assert.equal(st.operations.ListObjectsV2, 2, 'two pages of at most 1000');
      assert.equal(st.maxListKeys, 1000);

      await store.delete([...keys, 'many/missing-1', 'many/missing-2']);
      st = server.stats();
      assert.equal(st.operations.DeleteMultipleObjects, 2);
      assert.equal(st.maxDeleteBatch, 1000);
      assert.deepEqual(await store.list(''), ['other/keep']);
      assert.equal(st.objects, 1);
    } finally {
      await close();
    }
  });

  it('pages with a small page size (continuation tokens are signed sub-resources)', async () => {
    const { server, store, close } = await setup({}, { listPageSize: 7, deleteBatchSize: 9 });
    try {
      const keys = Array.from({ length: 60 }, (_, i) => `p/${i}/层 ${i}?&=+`);
      await Promise.all(keys.map((k) => store.put(k, Buffer.alloc(1))));
      assert.deepEqual(await store.list('p/'), [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      assert.equal(server.stats().operations.ListObjectsV2, Math.ceil(60 / 7));
      await store.delete(keys);
      assert.equal(server.stats().operations.DeleteMultipleObjects, Math.ceil(60 / 9));
      assert.deepEqual(await store.list(''), []);
    } finally {
      await close();
    }
  });
});

describe('loopback OSS server: raw requests', () => {
  const require = createRequire(import.meta.url);
  // The SDK's own signer, to build requests by hand.
  const signUtils = require('ali-oss/lib/common/signUtils.js') as {
    buildCanonicalString(method: string, resource: string, request: { headers: Record<string, string>; parameters?: unknown }): string;
  };

  async function raw(server: OssServer, method: string, path: string, opts: { headers?: Record<string, string>; body?: Buffer; sign?: boolean; resource?: string; secret?: string; subres?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { 'x-oss-date': new Date().toUTCString(), 'x-oss-security-token': STS.securityToken!, ...opts.headers };
    if (opts.sign !== false) {
      const sts = signUtils.buildCanonicalString(method, opts.resource ?? path.split('?')[0], { headers, parameters: opts.subres });
      headers.authorization = `OSS ${STS.accessKeyId}:${createHmac('sha1', opts.secret ?? STS.accessKeySecret).update(sts).digest('base64')}`;
    }
    const res = await fetch(server.endpoint + path, { method, headers, body: opts.body ? new Uint8Array(opts.body) : undefined });
    return { status: res.status, text: await res.text(), headers: res.headers };
  }

  it('answers OSS-style XML errors with x-oss-request-id', async () => {
    const { server, close } = await setup();
    try {
      const r = await raw(server, 'GET', `/${BUCKET}/nope`, { sign: false });
      assert.equal(r.status, 403);
      assert.match(r.text, /<Error><Code>AccessDenied<\/Code><Message>[^<]+<\/Message><RequestId>[0-9A-F]{24}<\/RequestId>/);
      assert.match(r.headers.get('x-oss-request-id') ?? '', /^[0-9A-F]{24}$/);
      const bad = await raw(server, 'GET', `/${BUCKET}/nope`, { secret: 'wrong' });
      assert.equal(bad.status, 403);
      assert.match(bad.text, /<Code>SignatureDoesNotMatch<\/Code>/);
      assert.match(bad.text, /<StringToSign>GET\n\n\n[^<]+\nx-oss-date:[^<]+\nx-oss-security-token:CAIS-token-1\+\/=\n\/tiles-test\/nope<\/StringToSign>/);
      const ok = await raw(server, 'GET', `/${BUCKET}/nope`);
      assert.equal(ok.status, 404);
      assert.match(ok.text, /<Code>NoSuchKey<\/Code>/);
      const skewed = await raw(server, 'GET', `/${BUCKET}/nope`, { headers: { 'x-oss-date': new Date(Date.now() - 20 * 60_000).toUTCString() } });
      assert.equal(skewed.status, 403);
      assert.match(skewed.text, /<Code>RequestTimeTooSkewed<\/Code>/);
      const sub = await raw(server, 'GET', `/${BUCKET}/obj?acl`, { subres: { acl: '' } });
      assert.equal(sub.status, 501);
    } finally {
      await close();
    }
  });

  it('serves HeadObject and GetObjectMeta to the SDK (errors in x-oss-err)', async () => {
    const { server, store, close } = await setup();
    try {
      const OSS = require('ali-oss') as new (o: object) => {
        head(name: string): Promise<{ status: number; res: { headers: Record<string, string> } }>;
        getObjectMeta(name: string): Promise<{ status: number; res: { headers: Record<string, string> } }>;
      };
      const client = new OSS({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, accessKeyId: STS.accessKeyId, accessKeySecret: STS.accessKeySecret, stsToken: STS.securityToken, refreshSTSTokenInterval: 1e12 });
      await store.put('h/obj', Buffer.from('12345'));
      const h = await client.head('h/obj');
      assert.equal(h.status, 200);
      assert.equal(h.res.headers['content-length'], '5');
      assert.equal((await client.getObjectMeta('h/obj')).status, 200);
      await assert.rejects(client.head('h/missing'), (e: Error & { status?: number; code?: string }) => e.status === 404 && e.code === 'NoSuchKey');
      const bad = new OSS({ bucket: BUCKET, endpoint: server.endpoint, sldEnable: true, accessKeyId: STS.accessKeyId, accessKeySecret: 'wrong', stsToken: STS.securityToken, refreshSTSTokenInterval: 1e12 });
      await assert.rejects(bad.head('h/obj'), (e: Error & { status?: number; code?: string }) => e.status === 403 && e.code === 'SignatureDoesNotMatch');
    } finally {
      await close();
    }
  });

  it('checks Content-MD5 and signs sub-resources (?delete) but not list parameters', async () => {
    const { server, close } = await setup();
    try {
      const body = Buffer.from('payload');
      const md5 = createHash('md5').update(body).digest('base64');
      const wrongMd5 = createHash('md5').update('other').digest('base64');
      const bad = await raw(server, 'PUT', `/${BUCKET}/obj`, { body, headers: { 'content-md5': wrongMd5 } });
      assert.equal(bad.status, 400);
      assert.match(bad.text, /<Code>InvalidDigest<\/Code>/);
      const good = await raw(server, 'PUT', `/${BUCKET}/obj`, { body, headers: { 'content-md5': md5 } });
      assert.equal(good.status, 200);
      assert.equal(good.headers.get('etag'), `"${createHash('md5').update(body).digest('hex').toUpperCase()}"`);

      const list = await raw(server, 'GET', `/${BUCKET}/?list-type=2&prefix=o&max-keys=5`, { resource: `/${BUCKET}/` });
      assert.equal(list.status, 200, list.text);
      assert.match(list.text, /<KeyCount>1<\/KeyCount>.*<Key>obj<\/Key>.*<Size>7<\/Size>/s);

      const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<Delete><Quiet>false</Quiet><Object><Key>obj</Key></Object></Delete>';
      const xmlMd5 = createHash('md5').update(xml).digest('base64');
      const unsignedSub = await raw(server, 'POST', `/${BUCKET}/?delete`, { body: Buffer.from(xml), headers: { 'content-md5': xmlMd5 }, resource: `/${BUCKET}/` });
      assert.equal(unsignedSub.status, 403, 'the ?delete sub-resource must be signed');
      const noMd5 = await raw(server, 'POST', `/${BUCKET}/?delete`, { body: Buffer.from(xml), resource: `/${BUCKET}/`, subres: { delete: '' } });
      assert.equal(noMd5.status, 400);
      const del = await raw(server, 'POST', `/${BUCKET}/?delete`, { body: Buffer.from(xml), headers: { 'content-md5': xmlMd5 }, resource: `/${BUCKET}/`, subres: { delete: '' } });
      assert.equal(del.status, 200, del.text);
      assert.match(del.text, /<DeleteResult><Deleted><Key>obj<\/Key><\/Deleted><\/DeleteResult>/);
      assert.equal(server.stats().objects, 0);
    } finally {
      await close();
    }
  });
});
