import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultSpecError } from '../../src/emulators/oss-faults.ts';
import { startOssServer, type OssServer } from '../../src/emulators/oss-server.ts';
import { loadConfig } from '../../src/config.ts';
import { startLocalStack, withEmulatorDefaults } from '../../src/compose/stack.ts';
import { OssStore } from '../../src/store/oss-store.ts';
import { RetryingStore } from '../../src/store/retrying-store.ts';
import { staticCredentials } from '../../src/cloud/credentials.ts';
import { ensureModel } from '../../src/models/index.ts';
import { parsePlan } from '../../src/planner/materialize.ts';
import { randomTensor, compareTensors } from '../../src/tensor/random.ts';
import { runOrt } from '../helpers/ort.ts';
import { InProcessStack } from '../helpers/in-process.ts';
import { buildRoutes, INPUT, readerRuns } from '../../src/plan/bundles.ts';
import { chainsFor } from '../../src/planner/chains.ts';
import { bundleBody, SegmentReader } from '../../src/serve/segments.ts';
import { StoreExchange } from '../../src/exchange/exchange.ts';
import { requestKeys } from '../../src/serve/keys.ts';
import { TileFormatError } from '../../src/serve/errors.ts';

// Requests through the real handler, master and worker code, every byte through ali-oss to the
// loopback OSS server injecting 5% errors, 1% truncated and 1% corrupted bodies and 2% slow
// answers: retries and checksums must turn them into right answers or clean failures, and
// nothing may stay under requests/.
const CRED = { accessKeyId: 'STS.faults', accessKeySecret: 'faults-secret', securityToken: 'CAIS-faults' };
const FAULTS = 'error:0.05,truncate:0.01,corrupt:0.01,slow:0.02,slowMs:300,seed:20261130';

describe('requests under OSS faults', () => {
  let server: OssServer;
  let store: RetryingStore;
  let stack: InProcessStack;
  let modelBytes: Buffer;
  let planKey: string;

  before(async () => {
    server = await startOssServer({ bucket: 'faults-test', credentials: [CRED], faults: FAULTS });
    store = new RetryingStore(new OssStore({ bucket: 'faults-test', endpoint: server.endpoint, credentials: staticCredentials(CRED), timeoutMs: 10_000 }));
    stack = new InProcessStack(store, 4);
    modelBytes = await readFile(await ensureModel('resnet18', 'models/resnet18.onnx'));
    const plan = parsePlan(JSON.parse(await readFile('plans/resnet18-224-2x2.json', 'utf8')), 'resnet18-224-2x2');
    // Publishing goes through the same faults: the artifacts must still be whole.
    planKey = await stack.publish(modelBytes, plan, 'resnet18-224-2x2');
  });
  after(async () => {
    await stack?.close();
    await server?.close();
  });

  it('answers equal monolithic ORT, retries are counted, and the store is left clean', async () => {
    const seeds = [1, 2, 3, 4, 5, 6];
    const results = await Promise.allSettled(seeds.map(async (seed) => {
      const x = randomTensor([1, 3, 224, 224], seed);
      const r = await stack.run(planKey, x, `faults-${seed}`);
      const ref = (await runOrt(modelBytes, { input: x })).logits;
      const c = compareTensors(ref, r.outputs.logits);
      const retries = r.store.retries + r.report.master.storeRetries + r.report.units.reduce((a, u) => a + u.storeRetries, 0);
      return { ok: c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), maxAbsDiff: c.maxAbsDiff, retries };
    }));
    const ok = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<{ ok: boolean; maxAbsDiff: number; retries: number }>).value);
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(ok.filter((r) => !r.ok), [], 'no wrong answers');
    assert.ok(ok.length >= seeds.length - 1, `at least ${seeds.length - 1} of ${seeds.length} succeed; failures: ${failed.join(' | ')}`);
    const st = server.stats();
    const injected = st.faults.error + st.faults.truncate + st.faults.corrupt;
    assert.ok(injected > 0, 'faults were injected');
    assert.ok(store.stats.retries > 0, 'the store retried');
    assert.ok(ok.some((r) => r.retries > 0), 'per-request reports count retries');
    assert.deepEqual(await store.list('requests/'), [], 'nothing left under requests/');
    console.log(`store faults: ${ok.length}/${seeds.length} ok, ${injected} faults injected (${JSON.stringify(st.faults)}) in ${st.requests} OSS requests, ${store.stats.retries} retries (${ok.map((r) => r.retries).join(', ')} per request)`);
  });

  it('a failed request leaves nothing either', async () => {
    stack.failWorker = (t) => t.worker === 2;
    try {
      await assert.rejects(stack.run(planKey, randomTensor([1, 3, 224, 224], 9), 'faults-fail'), /worker|chain/);
    } finally {
      stack.failWorker = undefined;
    }
    assert.deepEqual(await store.list('requests/'), []);
  });

  it('the stack refuses a bad OSS_EMULATOR_FAULTS before starting anything', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fc-faults-'));
    try {
      const config = loadConfig(withEmulatorDefaults({ STORE: 'oss', OSS_EMULATOR_FAULTS: 'error:0.05,truncate:2', PORT: '0', DATA_DIR: dir }));
      await assert.rejects(startLocalStack(config), (e: unknown) => e instanceof FaultSpecError && /OSS_EMULATOR_FAULTS.*truncate/.test(e.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a segment that fails its CRC-32 is read again; twice in a row fails loudly, naming the key', async () => {
    const plan = parsePlan(JSON.parse(await readFile('plans/resnet18-224-2x2.json', 'utf8')), 'resnet18-224-2x2');
    const routes = buildRoutes(plan, chainsFor(plan, 4));
    const x = randomTensor([1, 3, 224, 224], 3);
    const bundle = routes.bundles.get(INPUT)!;
    const key = requestKeys.bundle('crc', INPUT);
    // A reader whose segments are one ranged read: each injected fault damages that read.
    const reader = bundle.segments.flatMap((s) => s.readers).find((r) => readerRuns(bundle, r, 1).length === 1)!;
    const read = () => new SegmentReader(new StoreExchange(store), routes, reader, { requestId: 'crc', batch: 1, deadline: Date.now() + 10_000 }).items(INPUT);
    server.setRandomFaults(undefined);
    try {
      await store.put(key, bundleBody(bundle, () => ({ t: x, region: { y0: 0, y1: 224, x0: 0, x1: 224 } })));
      const good = await read();
      // Flipped bytes inside a ranged read: only the segment's CRC-32 can tell.
      server.injectFault({ operation: 'GetObject', damage: 'corrupt' });
      assert.deepEqual(await read(), good, 'read again after a bad checksum');
      server.injectFault({ operation: 'GetObject', damage: 'corrupt', times: 2 });
      await assert.rejects(read(), (e: unknown) => e instanceof TileFormatError && e.key === key && /failed its check twice/.test(e.message) && e.message.includes(key));
    } finally {
      server.clearFaults();
      server.setRandomFaults(FAULTS);
      await store.delete([key]);
    }
  });
});
