import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OssStore } from '../../src/store/oss-store.ts';
import { RetryingStore, type RetryEvent } from '../../src/store/retrying-store.ts';
import { CountingStore } from '../../src/store/counting-store.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { crc64 } from '../../src/store/crc64.ts';
import { FaultSpecError, parseFaultSpec } from '../../src/emulators/oss-faults.ts';
import { startOssServer, type OssServerOptions } from '../../src/emulators/oss-server.ts';
import { staticCredentials } from '../../src/cloud/credentials.ts';
import {
  InvalidKeyError,
  ObjectNotFoundError,
  StoreAuthError,
  StoreIntegrityError,
  StoreThrottledError,
  StoreUnavailableError,
  isRetryableStoreError,
} from '../../src/store/errors.ts';
import { runObjectStoreContract } from './contract.ts';

const BUCKET = 'tiles-test';
const CRED = { accessKeyId: 'STS.test-ak', accessKeySecret: 'sts-secret', securityToken: 'CAIS-token' };
const noSleep = { sleep: async () => undefined };

async function setup(serverOpts: Partial<OssServerOptions> = {}) {
  const server = await startOssServer({ bucket: BUCKET, credentials: [CRED], ...serverOpts });
  const oss = new OssStore({ bucket: BUCKET, endpoint: server.endpoint, credentials: staticCredentials(CRED), timeoutMs: 5000 });
  return { server, oss, close: () => server.close() };
}

/** A deterministic body whose corruption anywhere changes its CRC. */
const body = (n: number, seed = 1) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff));

describe('CRC-64 (OSS x-oss-hash-crc64ecma)', () => {
  it('is CRC-64/XZ: the standard check value and the empty string', () => {
    assert.equal(BigInt(crc64(Buffer.from('123456789'))).toString(16), '995dc9bbdf1939fa');
    assert.equal(crc64(Buffer.alloc(0)), '0');
  });
});

describe('OSS_EMULATOR_FAULTS', () => {
  it('parses fractions, slowMs and seed', () => {
    assert.deepEqual(parseFaultSpec('error:0.05,truncate:0.01, corrupt:0.01,slow:0.02'), { error: 0.05, truncate: 0.01, corrupt: 0.01, slow: 0.02, reset: 0, slowMs: 3000 });
    assert.deepEqual(parseFaultSpec('reset:0.1,slowMs:10,seed:7'), { error: 0, truncate: 0, corrupt: 0, slow: 0, reset: 0.1, slowMs: 10, seed: 7 });
    assert.deepEqual(parseFaultSpec(''), { error: 0, truncate: 0, corrupt: 0, slow: 0, reset: 0, slowMs: 3000 });
  });

  it('rejects a bad spec with an error naming the variable and the problem', () => {
    for (const [spec, re] of [
      ['error:2', /error: .*(<=|less than or equal|too big)/i],
      ['eror:0.1', /eror|Unrecognized/],
      ['error=0.1,error:0.2', /given twice/],
      ['error', /not name:number/],
      ['error:0.6,corrupt:0.6', /add up to more than 1/],
      ['seed:1.5', /seed/],
    ] as const) {
      assert.throws(() => parseFaultSpec(spec), (e: unknown) => e instanceof FaultSpecError && /OSS_EMULATOR_FAULTS/.test(e.message) && re.test(e.message), spec);
    }
  });

  it('a bad spec stops the server from starting', async () => {
    await assert.rejects(startOssServer({ bucket: BUCKET, credentials: [CRED], faults: 'error:-1' }), FaultSpecError);
  });
});

describe('OssStore integrity checks against the emulator', () => {
  it('every kind of damage surfaces as a retryable typed error, naming the key', async () => {
    const { server, oss, close } = await setup();
    try {
      const data = body(4096);
      await oss.put('k/obj', data);
      // Each fault kind on its own, every request: what a single attempt sees.
      const expect = async (spec: string, op: () => Promise<unknown>, cls: new (...a: never[]) => Error) => {
        server.setRandomFaults(`${spec}:1,seed:3`);
        await assert.rejects(op(), (e: unknown) => e instanceof cls && isRetryableStoreError(e) && /k\/obj/.test((e as Error).message), `${spec}`);
        server.setRandomFaults(undefined);
      };
      await expect('corrupt', () => oss.get('k/obj'), StoreIntegrityError); // CRC-64 of a whole read
      await expect('truncate', () => oss.get('k/obj'), StoreIntegrityError); // short body, consistent Content-Length
      await expect('truncate', () => oss.get('k/obj', { start: 100, end: 3000 }), StoreIntegrityError); // ranged: length
      await expect('corrupt', () => oss.put('k/obj', body(4096, 2)), StoreIntegrityError); // Content-MD5 rejected
      await expect('truncate', () => oss.put('k/obj', body(4096, 2)), StoreIntegrityError);
      await expect('error', () => oss.get('k/obj'), StoreThrottledError); // seed 3 draws a 503 SlowDown first
      await expect('reset', () => oss.get('k/obj'), StoreUnavailableError);
      await expect('reset', () => oss.put('k/obj', data), StoreUnavailableError);
      // A damaged put stored nothing: the object is still the first version.
      assert.deepEqual(await oss.get('k/obj'), data);
      const st = server.stats();
      assert.ok(st.faults.corrupt >= 2 && st.faults.truncate >= 3 && st.faults.reset >= 2 && st.faults.error >= 1, JSON.stringify(st.faults));
    } finally {
      await close();
    }
  });

  it('500 is StoreUnavailableError; NoSuchKey, auth and bad keys are not retryable', async () => {
    const { server, oss, close } = await setup();
    try {
      server.injectFault({ operation: 'GetObject', status: 500, code: 'InternalError' });
      await assert.rejects(oss.get('x'), StoreUnavailableError);
      await assert.rejects(oss.get('missing'), (e: unknown) => e instanceof ObjectNotFoundError && !isRetryableStoreError(e));
      server.injectFault({ operation: 'GetObject', status: 403, code: 'AccessDenied' });
      await assert.rejects(oss.get('x'), (e: unknown) => e instanceof StoreAuthError && !isRetryableStoreError(e));
      await assert.rejects(oss.get('../x'), (e: unknown) => e instanceof InvalidKeyError && !isRetryableStoreError(e));
    } finally {
      await close();
    }
  });
});

describe('RetryingStore', () => {
  // Flipped bytes inside a ranged read are invisible to the store (OSS only has the whole
  // object's CRC): bundle segments carry their own CRC-32 for that (SegmentReader re-reads).
  runObjectStoreContract('RetryingStore over OssStore with 20% errors, truncations and resets', async () => {
    const { oss, close } = await setup({ faults: 'error:0.08,truncate:0.06,reset:0.06,seed:11' });
    return { store: new RetryingStore(oss, { policy: { attempts: 12, baseMs: 1, maxMs: 5 } }), cleanup: close };
  });

  it('retries transient failures with jittered, growing, bounded delays, and gives up typed', async () => {
    const { server, oss, close } = await setup();
    try {
      const delays: number[] = [];
      const store = new RetryingStore(oss, { policy: { attempts: 4, baseMs: 100, maxMs: 250 }, random: () => 0.999, sleep: async (ms) => { delays.push(ms); } });
      await store.put('a', Buffer.from('a'));
      server.injectFault({ operation: 'GetObject', status: 503, code: 'SlowDown', times: 3 });
      assert.deepEqual(await store.get('a'), Buffer.from('a'));
      assert.deepEqual(delays.map(Math.round), [100, 200, 250]);
      assert.equal(store.stats.retries, 3);
      server.injectFault({ operation: 'GetObject', status: 500, code: 'InternalError', times: 4 });
      await assert.rejects(store.get('a'), (e: unknown) => e instanceof StoreUnavailableError && e.key === 'a' && /gave up after 4 attempts/.test(e.message));
      assert.equal(store.stats.exhausted, 1);
      assert.equal(server.stats().operations.GetObject, 4 + 4);
    } finally {
      await close();
    }
  });

  it('never retries what cannot get better', async () => {
    const inner = new MemoryStore();
    let calls = 0;
    const counted = { ...inner, get: async (k: string) => { calls++; return inner.get(k); }, put: inner.put.bind(inner), delete: inner.delete.bind(inner), list: inner.list.bind(inner) };
    const store = new RetryingStore(counted, noSleep);
    await assert.rejects(store.get('missing'), ObjectNotFoundError);
    assert.equal(calls, 1);
    assert.equal(store.stats.retries, 0);
  });

  it('a CountingStore over it counts its own retries only', async () => {
    let fail = 0;
    const inner = new MemoryStore();
    const flaky = {
      get: async (k: string) => { if (fail-- > 0) throw new StoreThrottledError('slow down', { key: k }); return inner.get(k); },
      put: inner.put.bind(inner), delete: inner.delete.bind(inner), list: inner.list.bind(inner),
    };
    const shared = new RetryingStore(flaky, noSleep);
    const events: RetryEvent[] = [];
    const a = new CountingStore(shared.observed((e) => events.push(e)));
    const b = new CountingStore(shared);
    await a.put('k', Buffer.from('v'));
    fail = 2;
    await a.get('k');
    fail = 1;
    await b.get('k');
    assert.equal(a.counters.retries, 2);
    assert.equal(b.counters.retries, 1);
    assert.equal(shared.stats.retries, 3);
    assert.deepEqual(events.map((e) => [e.op, e.key, e.attempt]), [['get', 'k', 1], ['get', 'k', 2]]);
  });
});
