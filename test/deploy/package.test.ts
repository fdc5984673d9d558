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
import { buildModel } from '../../src/models/index.ts';
import type { GroupStage, Plan } from '../../src/plan/schema.ts';
import { planModel } from '../../src/planner/plan.ts';
import { ArtifactCache, publishPlan } from '../../src/serve/artifacts.ts';
import { makeStore } from '../../src/serve/deps.ts';
import { buildRoutes, INPUT, tileSource } from '../../src/plan/bundles.ts';
import { requestKeys } from '../../src/serve/keys.ts';
import { runWorkerTask } from '../../src/serve/worker.ts';
import { bundleBody } from '../../src/serve/segments.ts';
import { workerReportSchema } from '../../src/serve/protocol.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';
import { OssStore } from '../../src/store/oss-store.ts';
import { staticCredentials } from '../../src/cloud/credentials.ts';
import { startOssServer } from '../../src/emulators/oss-server.ts';
import { randomTensor } from '../../src/tensor/random.ts';

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

  // One worker of ResNet-18 at 64x64, 2x2, planned for one worker at a time so each chain is a
  // single group: the last tile of the first group (a border tile with halo), whose strips
  // go into its bundle.
  const modelBytes = buildModel('resnet18');
  const { plan } = planModel(modelBytes, { inputShape: [1, 3, 64, 64], grid: { rows: 2, cols: 2 }, name: 'resnet18', maxWorkers: 1 });
  const routes = buildRoutes(plan as Plan);
  const chain = routes.chains[0];
  const stage = plan.stages.find((s) => s.id === chain.stages[0]) as GroupStage;
  const tile = stage.tiles[stage.tiles.length - 1];
  const x = randomTensor(plan.input.shape, 7);
  let expected: Buffer | undefined;

  /** Publishes the plan and writes the input bundle, as the handler would; returns the task. */
  async function prepareTile(store: ObjectStore, rid: string) {
    const { planKey } = await publishPlan(store, modelBytes, plan, 'resnet18-64-2x2');
    assert.equal(chain.stages.length, 1, 'a single-group chain: the worker waits for no one');
    const whole = { y0: 0, y1: x.dims[2], x0: 0, x1: x.dims[3] };
    await store.put(requestKeys.bundle(rid, INPUT), bundleBody(routes.bundles.get(INPUT)!, () => ({ t: x, region: whole })));
    return { requestId: rid, planKey, maxWorkers: 1, batch: 1, deadline: Date.now() + 60_000, chain: chain.id, worker: tile.index };
  }

  /** The tile's bundle computed in-process by the same worker code (tsx, not the bundle). */
  async function reference(store: ObjectStore, rid: string): Promise<Buffer> {
    const task = await prepareTile(store, `${rid}-ref`);
    await runWorkerTask(task, { store, cache: new ArtifactCache(store, { threads: 1 }) });
    return store.get(requestKeys.bundle(task.requestId, tileSource(stage.id, tile.index)));
  }

  async function expectBundle(store: ObjectStore, rid: string, want: Buffer) {
    const got = await store.get(requestKeys.bundle(rid, tileSource(stage.id, tile.index)));
    assert.equal(got.length, want.length);
    const a = new Float32Array(got.buffer.slice(got.byteOffset, got.byteOffset + got.length));
    const b = new Float32Array(want.buffer.slice(want.byteOffset, want.byteOffset + want.length));
    let maxDiff = 0;
    // Word 0 of each segment is its CRC; float words compare within rounding.
    for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]) && Number.isFinite(b[i])) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    assert.ok(maxDiff <= 1e-6, `bundle max |diff| ${maxDiff}`);
  }

  it('the bundled worker runs a real tile (fs store) and writes the same pieces as runTile in-process', async () => {
    const store = makeStore(loadConfig({ STORE: 'fs', DATA_DIR: dataDir }));
    const task = await prepareTile(store, 'pkgtest-fs');
    const out = await runChild({ mode: 'worker', task });
    const rep = workerReportSchema.parse(out.report);
    assert.equal(rep.chain, chain.id);
    assert.equal(rep.worker, tile.index);
    assert.equal(rep.sessionsLoaded, 1);
    expected = await reference(store, task.requestId);
    await expectBundle(store, task.requestId, expected);
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
      assert.equal(workerReportSchema.parse(out.report).worker, tile.index);
      assert.ok((oss.stats().operations.GetObject ?? 0) > 0);
      await expectBundle(store, task.requestId, expected ?? await reference(store, task.requestId));
    } finally {
      await oss.close();
    }
  });
});
