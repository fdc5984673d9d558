import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../../src/config.ts';
import { packageFunctions, formatReport, type PackageReport } from '../../src/deploy/package.ts';
import { extractZip, listFiles } from '../../src/deploy/zip.ts';
import { runTile } from '../../src/exec/tile.ts';
import { buildModel } from '../../src/models/index.ts';
import type { GroupStage, Plan } from '../../src/plan/schema.ts';
import { planModel } from '../../src/planner/plan.ts';
import { ArtifactCache, publishPlan } from '../../src/serve/artifacts.ts';
import { makeStore } from '../../src/serve/deps.ts';
import { buildExchange, exchangeTileKey } from '../../src/serve/exchange.ts';
import { requestKeys } from '../../src/serve/keys.ts';
import { decodeTensor } from '../../src/serve/tile-codec.ts';
import { readRegion, writePieces, type WorkerReport } from '../../src/serve/worker.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';
import { OssStore } from '../../src/store/oss-store.ts';
import { staticCredentials } from '../../src/cloud/credentials.ts';
import { startOssServer } from '../../src/emulators/oss-server.ts';
import { cropRegion } from '../../src/tensor/nchw.ts';
import { randomTensor } from '../../src/tensor/random.ts';
import type { FloatTensor } from '../../src/runtime/ort.ts';

const execFileP = promisify(execFile);

// Runs inside the child: plain CommonJS, no tsx, no access to the repository. It loads the
// unzipped bundles the way FC's nodejs20 runtime does (require + handler(event, context)).
const RUNNER = String.raw`
const path = require('node:path');
const { codeDir, mode, task, runtimeRequires } = JSON.parse(process.argv[2]);
const out = { cwd: process.cwd() };
const resolves = (name) => { try { return require.resolve(name, { paths: [codeDir] }); } catch { return null; } };
(async () => {
  // Bundled dependencies must not be resolvable: proves the repository's node_modules is out of reach.
  out.zod = resolves('zod');
  out.onnxProto = resolves('onnx-proto');
  out.ort = resolves('onnxruntime-node');
  out.sharp = resolves('sharp');
  out.ortViaNodePath = (() => { try { return require.resolve('onnxruntime-node'); } catch { return null; } })();
  const ctx = { requestId: 'req-1', functionName: mode, instanceId: 'inst-1' };
  if (mode === 'worker') {
    const w = require(path.join(codeDir, 'worker.js'));
    out.report = JSON.parse(await w.handler(Buffer.from(JSON.stringify(task)), ctx));
  } else {
    for (const f of ['handler', 'master']) out[f] = typeof require(path.join(codeDir, f + '.js')).handler;
    const sharp = require(out.sharp);
    const png = await sharp({ create: { width: 5, height: 3, channels: 3, background: '#808080' } }).png().toBuffer();
    out.sharpMeta = await sharp(png).metadata().then((m) => [m.format, m.width, m.height]);
    out.runtime = runtimeRequires.map((n) => [n, typeof require(require.resolve(n, { paths: [codeDir] }))]);
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { process.stderr.write(String((e && e.stack) || e)); process.exit(1); });
`;

describe('npm run package: the FC code package', () => {
  let tmp: string;
  let report: PackageReport;
  let fcDir: string;
  let codeDir: string;
  let dataDir: string;

  async function runChild(args: Record<string, unknown>, env: Record<string, string> = { STORE: 'fs', DATA_DIR: dataDir }): Promise<Record<string, any>> {
    const { stdout } = await execFileP(process.execPath, [join(tmp, 'runner.cjs'), JSON.stringify({ codeDir, ...args })], {
      cwd: fcDir,
      // Only what FC would give: no NODE_OPTIONS (tsx), NODE_PATH at the package's node_modules.
      env: { PATH: process.env.PATH ?? '', HOME: tmp, NODE_PATH: join(codeDir, 'node_modules'), ...env },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 60_000,
    });
    return JSON.parse(stdout);
  }

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'fc-package-test-'));
    report = await packageFunctions({ outDir: join(tmp, 'dist') });
    console.log(formatReport(report, tmp).join('\n'));
    // An empty folder outside the repository, as FC's /code.
    fcDir = join(tmp, 'fc');
    codeDir = join(fcDir, 'code');
    dataDir = join(tmp, 'data');
    await mkdir(dataDir, { recursive: true });
    await extractZip(report.codeZip, codeDir);
    await writeFile(join(tmp, 'runner.cjs'), RUNNER);
  }, { timeout: 180_000 });

  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('fits FC limits and ships only the linux-x64 binaries the addons load', async () => {
    assert.deepEqual(report.problems, []);
    assert.ok(report.ok);
    assert.deepEqual(report.bundles.map((b) => b.key), ['handler', 'master', 'worker']);
    for (const l of report.limits) assert.ok(l.ok, `${l.what}: ${l.bytes} > ${l.limit}`);
    const files = await listFiles(codeDir);
    assert.equal(files.length, report.code.files);
    for (const f of ['handler.js', 'master.js', 'worker.js', 'package.json']) assert.ok(files.includes(f), f);
    assert.ok(!files.some((f) => /\/(darwin|win32)\/|linux\/arm64|\.(dylib|dll)$/.test(f)), 'other platforms are dropped');
    const ortLibs = files.filter((f) => /onnxruntime-node\/bin\/.*libonnxruntime\.so/.test(f));
    assert.equal(ortLibs.length, 1, `one copy of libonnxruntime: ${ortLibs.join(', ')}`);
    const natives = report.natives.map((n) => n.path);
    assert.ok(natives.some((p) => p.endsWith('onnxruntime_binding.node')));
    assert.ok(natives.some((p) => /@img\/sharp-linux-x64\/.*\.node$/.test(p)));
    assert.ok(natives.some((p) => /@img\/sharp-libvips-linux-x64\/lib\/libvips-cpp\.so/.test(p)));
    const binding = report.natives.find((n) => n.path.endsWith('onnxruntime_binding.node'))!;
    assert.ok(binding.needed.includes(ortLibs[0].split('/').pop()!), 'the kept library is the name the addon loads');
  });

  it('the handler and master bundles initialise from the unzipped package; sharp works', async () => {
    const out = await runChild({ mode: 'init', runtimeRequires: report.runtimeRequires.map((r) => r.name) });
    assert.equal(out.handler, 'function');
    assert.equal(out.master, 'function');
    assert.deepEqual(out.sharpMeta, ['png', 5, 3]);
    assert.equal(out.zod, null, 'zod is bundled, not resolvable: no access to the repository node_modules');
    assert.equal(out.onnxProto, null);
    assert.ok(out.ort.startsWith(codeDir) && out.sharp.startsWith(codeDir), `${out.ort} ${out.sharp}`);
    assert.ok(out.ortViaNodePath.startsWith(codeDir), 'NODE_PATH finds the package node_modules');
    for (const [name, type] of out.runtime) assert.notEqual(type, 'undefined', name);
  });

  // One tile of ResNet-18 at 64x64, 2x2: the last tile of the first group (a border tile with halo).
  const modelBytes = buildModel('resnet18');
  const { plan } = planModel(modelBytes, { inputShape: [1, 3, 64, 64], grid: { rows: 2, cols: 2 }, name: 'resnet18' });
  const stage = plan.stages.find((s) => s.kind === 'group') as GroupStage;
  const tile = stage.tiles[stage.tiles.length - 1];
  const exchange = buildExchange(plan as Plan);
  const key = exchangeTileKey(stage.id, tile.index);
  const x = randomTensor(plan.input.shape, 7);
  let expected: Map<string, FloatTensor> | undefined;

  /** Publishes the plan and writes the tile's input pieces, as the master would; returns the task. */
  async function prepareTile(store: ObjectStore, rid: string) {
    const { planKey } = await publishPlan(store, modelBytes, plan, 'resnet18-64-2x2');
    assert.ok(stage.inputs.every((i) => i.name === plan.input.name), 'the first group reads the request input only');
    const inPieces = (exchange.masterWrites.get(plan.input.name) ?? []).filter((w) => w.to.stage === stage.id);
    await writePieces(store, rid, x, { y0: 0, y1: x.dims[2], x0: 0, x1: x.dims[3] }, inPieces);
    return { requestId: rid, planKey, stage: stage.id, tile: tile.index };
  }

  /** The tile's output pieces computed in-process with runTile, keyed by piece key suffix. */
  async function reference(store: ObjectStore, rid: string): Promise<Map<string, FloatTensor>> {
    const cache = new ArtifactCache(store, { threads: 1 });
    const { session } = await cache.getSession(stage.subModel.sha256);
    const spatial: Record<string, FloatTensor> = {};
    for (const r of exchange.reads.get(key)!) spatial[r.tensor] = await readRegion(store, rid, r.region, r.pieces);
    const ref = await runTile(session, stage, tile, spatial, {});
    await session.release();
    const out = new Map<string, FloatTensor>();
    for (const p of exchange.writes.get(key) ?? []) {
      const have = tile.outputs.find((o) => o.tensor === p.tensor)!.region;
      out.set(requestKeys.piece('R', p.from, p.outputIndex, p.to), cropRegion(ref[p.tensor], { y0: p.region.y0 - have.y0, y1: p.region.y1 - have.y0, x0: p.region.x0 - have.x0, x1: p.region.x1 - have.x0 }));
    }
    return out;
  }

  async function expectPieces(store: ObjectStore, rid: string, want: Map<string, FloatTensor>) {
    const writes = exchange.writes.get(key) ?? [];
    assert.ok(writes.length > 0);
    assert.equal(writes.length, want.size);
    for (const p of writes) {
      const k = requestKeys.piece(rid, p.from, p.outputIndex, p.to);
      const exp = want.get(requestKeys.piece('R', p.from, p.outputIndex, p.to))!;
      const got = decodeTensor(await store.get(k), k).tensor;
      assert.deepEqual(got.dims, exp.dims, k);
      let maxDiff = 0;
      for (let i = 0; i < got.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got.data[i] - exp.data[i]));
      assert.ok(maxDiff <= 1e-6, `${k}: max |diff| ${maxDiff}`);
    }
  }

  it('the bundled worker runs a real tile (fs store) and writes the same pieces as runTile in-process', async () => {
    const store = makeStore(loadConfig({ STORE: 'fs', DATA_DIR: dataDir }));
    const task = await prepareTile(store, 'pkgtest-fs');
    const out = await runChild({ mode: 'worker', task });
    const rep = out.report as WorkerReport;
    assert.equal(rep.stage, stage.id);
    assert.equal(rep.tile, tile.index);
    assert.equal(rep.sessionCached, false);
    expected = await reference(store, task.requestId);
    await expectPieces(store, task.requestId, expected);
  });

  it('the bundled worker reaches OSS through the shipped ali-oss (loopback OSS server)', async () => {
    const cred = { accessKeyId: 'LTAIpackagetest01', accessKeySecret: 'package-test-secret' };
    const oss = await startOssServer({ bucket: 'pkg-test', credentials: [cred] });
    try {
      const store = new OssStore({ bucket: oss.bucket, endpoint: oss.endpoint, credentials: staticCredentials(cred) });
      const task = await prepareTile(store, 'pkgtest-oss');
      const out = await runChild({ mode: 'worker', task }, {
        STORE: 'oss', OSS_BUCKET: oss.bucket, OSS_ENDPOINT: oss.endpoint,
        ALIBABA_CLOUD_ACCESS_KEY_ID: cred.accessKeyId, ALIBABA_CLOUD_ACCESS_KEY_SECRET: cred.accessKeySecret,
      });
      assert.equal((out.report as WorkerReport).tile, tile.index);
      assert.ok((oss.stats().operations.GetObject ?? 0) > 0);
      await expectPieces(store, task.requestId, expected ?? await reference(store, task.requestId));
    } finally {
      await oss.close();
    }
  });
});
