import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { Plan } from '../../src/plan/schema.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { startLocalStack, type LocalStack } from '../../src/compose/stack.ts';
import { decodeInferResponse, encodeInferRequest } from '../../src/http/oip-client.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import { monolithic } from '../../src/exec/verify.ts';
import { GraphBuilder, mulberry32 } from '../../src/onnx/builder.ts';
import { floatToHalf } from '../../src/tensor/dtype.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { publishServedModels } from '../../src/serve/model-sources.ts';
import { ModelConfigError } from '../../src/serve/model-config.ts';
import { planModel } from '../../src/planner/plan.ts';
import { guardBytes, guardPlan, PlanMismatchError } from '../../src/serve/guard.ts';

const FLOAT16 = 10;

/** A float16 network with float32 input and output (as converters write them), dynamic H and W unless `hw` is given. */
function fp16Net(seed: number, hw?: [number, number], channels = 3): Uint8Array {
  const b = new GraphBuilder({ name: `fp16-${seed}`, opset: 17, seed });
  const r = mulberry32(seed);
  const half = (name: string, dims: number[], scale: number) => {
    const n = dims.reduce((a, x) => a * x, 1);
    const buf = Buffer.alloc(n * 2);
    for (let i = 0; i < n; i++) buf.writeUInt16LE(floatToHalf((r() - 0.5) * scale), i * 2);
    return b.rawInitializer(name, FLOAT16, dims, new Uint8Array(buf));
  };
  const x = b.input('input', [1, channels, hw ? hw[0] : 'H', hw ? hw[1] : 'W']);
  let y = b.node('Cast', [x], { to: FLOAT16 })[0];
  const conv = (cin: number, cout: number, k: number, stride: number, dil = 1) => {
    const p = ((k - 1) * dil) >> 1;
    y = b.node('Conv', [y, half(`w${cin}x${cout}x${k}${stride}${dil}`, [cout, cin, k, k], 0.6), half(`b${cin}x${cout}x${k}${stride}${dil}`, [cout], 0.2)], { kernel_shape: [k, k], strides: [stride, stride], dilations: [dil, dil], pads: [p, p, p, p] })[0];
    y = b.node('Relu', [y])[0];
  };
  conv(channels, 8, 3, 1);
  conv(8, 8, 3, 2);
  conv(8, 8, 3, 1, 2);
  y = b.node('MaxPool', [y], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 })[0];
  conv(8, 4, 3, 1);
  y = b.node('Cast', [y], { to: 1 })[0];
  b.output(y, [1, 4, 'h', 'w']);
  return b.build();
}

/** A model with an op no runtime knows. */
function unknownOpNet(): Uint8Array {
  const b = new GraphBuilder({ name: 'unknown-op', opset: 17, seed: 1 });
  const x = b.input('input', [1, 3, 'H', 'W']);
  const y = b.node('NoSuchOp', [x])[0];
  b.output(y);
  return b.build();
}

async function post(url: string, name: string, shape: number[], seed: number) {
  const x = randomTensor(shape, seed);
  const enc = encodeInferRequest({ inputs: [{ name: 'input', shape, data: x.data }] }, { binary: true });
  const res = await fetch(url, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(res.status, 200, `${name}: ${body.toString('utf8').slice(0, 400)}`);
  return { x, out: decodeInferResponse(body, Object.fromEntries(res.headers.entries())).outputs[0] };
}

describe('bring your own model', () => {
  let stack: LocalStack;
  let dir: string;
  const fp16 = fp16Net(1);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fc-models-'));
    await writeFile(join(dir, 'unet16.onnx'), fp16);
    // A repository: one model with a config, one with two versions.
    const repo = join(dir, 'repo');
    await mkdir(join(repo, 'seg'), { recursive: true });
    await writeFile(join(repo, 'seg', 'model.onnx'), fp16Net(2));
    await writeFile(join(repo, 'seg', 'config.json'), JSON.stringify({ input: { shape: { kind: 'dynamic', multipleOf: 8, minSide: 32, maxSide: 256 } }, postprocessing: { kind: 'segmentation' }, workerMemoryMb: 1024 }));
    for (const v of ['1', '2']) {
      await mkdir(join(repo, 'net', v), { recursive: true });
      await writeFile(join(repo, 'net', v, 'model.onnx'), fp16Net(10 + Number(v), [64, 64]));
    }
    stack = await startLocalStack(loadConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), MODEL: join(dir, 'unet16.onnx'), MODEL_REPOSITORY: repo, WORKER_MAX_INSTANCES: '4' }));
  });
  after(async () => {
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves --model FILE under its base name, with its real metadata', async () => {
    const names = stack.registry.models.map((m) => m.name).sort();
    assert.deepEqual(names, ['net', 'net/1', 'net/2', 'seg', 'unet16']);
    const meta = await (await fetch(`${stack.url}/v2/models/unet16`)).json() as Record<string, any>;
    assert.deepEqual(meta.inputs, [{ name: 'input', datatype: 'FP32', shape: [1, 3, -1, -1] }]);
    assert.equal(meta.outputs[0].datatype, 'FP32');
    const v1 = await (await fetch(`${stack.url}/v2/models/net/versions/1`)).json() as Record<string, any>;
    assert.equal(v1.name, 'net/1');
    assert.deepEqual(v1.versions, ['1', '2']);
    assert.deepEqual(v1.inputs[0].shape, [1, 3, 64, 64]);
  });

  it('serves a float16 network at any input size, equal to monolithic ORT', async () => {
    for (const [shape, seed] of [[[1, 3, 96, 128], 1], [[1, 3, 61, 77], 2], [[1, 3, 96, 128], 3]] as [number[], number][]) {
      const { x, out } = await post(`${stack.url}/v2/models/unet16/infer`, 'unet16', shape, seed);
      const ref = Object.values(await monolithic(fp16, x, 'input'))[0];
      assert.deepEqual(out.shape, ref.dims);
      const c = compareTensors(ref, { dims: out.shape, data: out.data as Float32Array });
      assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `${shape}: maxAbsDiff ${c.maxAbsDiff} (max ${c.maxRef})`);
    }
    const plans = (await stack.store.list('artifacts/')).filter((k) => /\/plans\/auto-/.test(k));
    assert.deepEqual(plans.map((k) => k.replace(/^.*\//, '')).sort(), ['auto-61x77.json', 'auto-96x128.json']);
  });

  it('serves repository models by version, and applies their shape policy', async () => {
    const { out } = await post(`${stack.url}/v2/models/net/versions/2/infer`, 'net/2', [1, 3, 64, 64], 4);
    assert.equal(out.shape[0], 1);
    // A segmentation model's response adds the per-pixel argmax.
    const x = randomTensor([1, 3, 64, 96], 5);
    const enc = encodeInferRequest({ inputs: [{ name: 'input', shape: [1, 3, 64, 96], data: x.data }] }, { binary: true });
    const sr = await fetch(`${stack.url}/v2/models/seg/infer`, { method: 'POST', body: new Uint8Array(enc.body), headers: enc.headers });
    assert.equal(sr.status, 200);
    const outs = decodeInferResponse(Buffer.from(await sr.arrayBuffer()), Object.fromEntries(sr.headers.entries())).outputs;
    const scores = outs[0];
    const mask = outs.find((o) => o.name === 'mask')!;
    assert.equal(mask.datatype, 'INT32');
    assert.deepEqual(mask.shape, [1, scores.shape[2], scores.shape[3]]);
    const plane = scores.shape[2] * scores.shape[3];
    for (const i of [0, 17, plane - 1]) {
      const col = Array.from({ length: scores.shape[1] }, (_, c) => scores.data[c * plane + i] as number);
      assert.equal(mask.data[i], col.indexOf(Math.max(...col)));
    }
    const res = await fetch(`${stack.url}/v2/models/seg/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 60, 64], datatype: 'FP32', data: new Array(3 * 60 * 64).fill(0) }] }) });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /H = 60 is not a multiple of 8/);
  });
});

describe('MODEL', () => {
  it('takes files and generated names; the committed plans stay with resnet18', () => {
    const a = loadConfig({ MODEL: 'models/unet.onnx, ppocr-det' });
    assert.deepEqual([a.model, a.models, a.modelPath], ['unet', ['models/unet.onnx', 'ppocr-det'], undefined]);
    const b = loadConfig({ MODEL: 'mobilenetv2,resnet18' });
    assert.deepEqual([b.model, b.modelPath, b.plans.length, b.plansGiven], ['resnet18', 'models/resnet18.onnx', 2, false]);
    const c = loadConfig({ MODEL_PATH: 'my.onnx', PLANS: 'p.json', DEFAULT_PLAN: 'p' });
    assert.deepEqual([c.model, c.modelPath, c.plans, c.plansGiven], ['resnet18', 'my.onnx', ['p.json'], true]);
    assert.throws(() => loadConfig({ MODEL: 'a.onnx,,b.onnx' }), /MODEL/);
  });
});

describe('models that cannot be served fail at start, naming the model and the field', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'fc-badmodels-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  const cases: [string, (d: string) => Promise<Record<string, string>>, RegExp][] = [
    ['an unknown config field', async (d) => repoWith(d, 'typo', fp16Net(3), { inptu: {} }), /model typo: config\.json .*inptu/],
    ['a fixed size the model does not have', async (d) => repoWith(d, 'fixed', fp16Net(3, [64, 64]), { input: { shape: { kind: 'fixed', height: 32, width: 64 } } }), /model fixed: input\.shape\.height: is 32, but .* H = 64/],
    ['image preprocessing for a 1-channel model', async (d) => repoWith(d, 'gray', fp16Net(3, undefined, 1), { preprocessing: { kind: 'imagenet' } }), /model gray: preprocessing: images give 3 channels/],
    ['a bad value', async (d) => repoWith(d, 'mem', fp16Net(3), { workerMemoryMb: 12 }), /model mem: config\.json workerMemoryMb/],
    ['a file that is not ONNX', async (d) => { await writeFile(join(d, 'junk.onnx'), 'not a model'); return { MODEL: join(d, 'junk.onnx') }; }, /model junk: model\.onnx: /],
    ['an op ONNX Runtime rejects', async (d) => { await writeFile(join(d, 'odd.onnx'), unknownOpNet()); return { MODEL: join(d, 'odd.onnx') }; }, /model odd: model\.onnx: (ONNX Runtime rejects it|the planner cannot read it)/],
    ['a MODEL entry that is neither', async () => ({ MODEL: 'resnet50' }), /model resnet50: MODEL: is neither/],
  ];
  for (const [what, setup, re] of cases) {
    it(what, async () => {
      const d = await mkdtemp(join(dir, 'case-'));
      const env = await setup(d);
      const store = new MemoryStore();
      await assert.rejects(publishServedModels(loadConfig(env), store), (e: Error) => {
        assert.ok(e instanceof ModelConfigError, `${e.name}: ${e.message}`);
        assert.match(e.message, re);
        return true;
      });
      assert.deepEqual(await store.list(''), [], 'nothing published');
    });
  }
});

async function repoWith(dir: string, name: string, model: Uint8Array, config: unknown): Promise<Record<string, string>> {
  await mkdir(join(dir, 'repo', name), { recursive: true });
  await writeFile(join(dir, 'repo', name, 'model.onnx'), model);
  await writeFile(join(dir, 'repo', name, 'config.json'), JSON.stringify(config));
  await writeFile(join(dir, 'ok.onnx'), fp16Net(4));
  return { MODEL: join(dir, 'ok.onnx'), MODEL_REPOSITORY: join(dir, 'repo') };
}

describe('the guard', () => {
  it('refuses a committed plan at publish, before anything is served', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fc-guard-'));
    try {
      const plan = JSON.parse(await readFile('plans/resnet18-224-2x2.json', 'utf8')) as Plan;
      const g = plan.stages.find((s) => s.kind === 'group')!;
      if (g.kind !== 'group') throw new Error('no group');
      const t = g.tiles[g.tiles.length - 1];
      t.inputs = t.inputs.map((i) => ({ ...i, region: { ...i.region, y0: i.region.y0 - 1, y1: i.region.y1 - 1 } }));
      const file = join(dir, 'bad-2x2.json');
      await writeFile(file, JSON.stringify(plan));
      const store = new MemoryStore();
      await assert.rejects(publishServedModels(loadConfig({ MODEL: 'resnet18', PLANS: file, DEFAULT_PLAN: 'bad-2x2' }), store), (e: Error) => {
        assert.ok(e instanceof PlanMismatchError, e.message);
        assert.match(e.message, new RegExp(`stage ${g.id} \\(group 0`));
        return true;
      });
      assert.deepEqual((await store.list('')).filter((k) => !k.startsWith('artifacts/models/')), [], 'no plan, sub-model or registry published');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('passes a correct plan, at a smaller shape with the same grids when the budget is short', async () => {
    const bytes = fp16Net(5);
    const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 512, 512], grid: { rows: 2, cols: 2 }, cuts: 'none' });
    const full = await guardPlan(bytes, plan, subModels);
    assert.equal(full.reduced, false);
    const small = await guardPlan(bytes, plan, subModels, { budgetBytes: guardBytes(plan) - 1 });
    assert.equal(small.reduced, true);
    assert.ok(small.shape[2] < 512 && small.shape[2] % 32 === 0, `${small.shape}`);
  });

  it('refuses a plan whose stage differs from monolithic ORT, naming the stage', async () => {
    const bytes = fp16Net(6);
    const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 64, 64], grid: { rows: 2, cols: 2 }, cuts: 'none' });
    // A tile that reads its input one row off: the answer is wrong near that tile's edge.
    const g = plan.stages.find((s) => s.kind === 'group')!;
    if (g.kind !== 'group') throw new Error('no group');
    const t = g.tiles[3];
    const tampered = structuredClone(plan);
    const tg = tampered.stages.find((s) => s.id === g.id)!;
    if (tg.kind !== 'group') throw new Error('no group');
    tg.tiles[3].inputs = t.inputs.map((i) => ({ ...i, region: { ...i.region, y0: i.region.y0 - 1, y1: i.region.y1 - 1 } }));
    await assert.rejects(guardPlan(bytes, tampered, subModels), (e: Error) => {
      assert.ok(e instanceof PlanMismatchError, e.message);
      assert.equal(e.stage.id, g.id);
      assert.match(e.message, new RegExp(`stage ${g.id} \\(group 0`));
      return true;
    });
  });
});
