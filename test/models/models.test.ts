import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { ARCHS, buildModel, ensureModel, sha256Hex, type Arch } from '../../src/models/index.ts';
import { GraphBuilder, mulberry32 } from '../../src/onnx/builder.ts';
import { runOrt } from '../helpers/ort.ts';

const { onnx } = onnxProto;

/** Recorded hash of buildModel('resnet18') with default options (seed 0, opset 13). */
const RESNET18_SHA256 = 'b5f20f8452259319415c9a7dcfc11f2759cc8504fd10f15188179bc8c2fd9ec9';
const RESNET18_BYTES = 46810478;

const cache = new Map<Arch, Uint8Array>();
function model(arch: Arch): Uint8Array {
  let m = cache.get(arch);
  if (!m) cache.set(arch, (m = buildModel(arch)));
  return m;
}

function decode(bytes: Uint8Array) {
  return onnx.ModelProto.decode(bytes);
}

function opCounts(bytes: Uint8Array): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of decode(bytes).graph!.node!) counts[n.opType!] = (counts[n.opType!] ?? 0) + 1;
  return counts;
}

/** Trainable parameter count (torchvision convention: BN running stats excluded). */
function paramCount(bytes: Uint8Array): { trainable: number; total: number } {
  let trainable = 0;
  let total = 0;
  for (const t of decode(bytes).graph!.initializer!) {
    const n = t.dims!.reduce<number>((a, d) => a * Number(d.toString()), 1);
    total += n;
    if (!/running_(mean|var)$/.test(t.name!) && !t.name!.startsWith('relu6.')) trainable += n;
  }
  return { trainable, total };
}

function randomInput(dims: number[], seed: number): { dims: number[]; data: Float32Array } {
  const r = mulberry32(seed);
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = (r() + r() + r() + r() - 2) * Math.sqrt(3);
  return { dims, data };
}

async function checkRun(bytes: Uint8Array, n: number, h: number, w: number, numClasses = 1000): Promise<void> {
  const out = await runOrt(bytes, { input: randomInput([n, 3, h, w], h * 1000 + w) });
  const logits = out.logits;
  assert.ok(logits, 'output "logits" present');
  assert.deepEqual(logits.dims, [n, numClasses]);
  let sumSq = 0;
  let maxAbs = 0;
  for (const v of logits.data) {
    assert.ok(Number.isFinite(v), 'logits finite');
    sumSq += v * v;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const rms = Math.sqrt(sumSq / logits.data.length);
  assert.ok(rms > 0.1 && rms < 100, `rms ${rms} of reasonable magnitude`);
  assert.ok(maxAbs < 1000, `max |logit| ${maxAbs}`);
  // Logits vary across classes and across different inputs.
  const row0 = logits.data.subarray(0, numClasses);
  const spread = Math.max(...row0) - Math.min(...row0);
  assert.ok(spread > 0.1 * rms, `class spread ${spread}`);
  if (n > 1) {
    const row1 = logits.data.subarray(numClasses, 2 * numClasses);
    let d = 0;
    for (let i = 0; i < numClasses; i++) d = Math.max(d, Math.abs(row0[i] - row1[i]));
    assert.ok(d > 1e-3 * rms, `batch items differ (max diff ${d})`);
  }
}

describe('determinism', () => {
  test('resnet18 builds byte-identically and matches the recorded sha256', () => {
    const a = model('resnet18');
    const b = buildModel('resnet18');
    assert.equal(sha256Hex(a), sha256Hex(b));
    assert.equal(a.byteLength, RESNET18_BYTES);
    assert.equal(sha256Hex(a), RESNET18_SHA256);
  });

  test('mobilenetv2 builds byte-identically; seed changes the bytes', () => {
    const a = model('mobilenetv2');
    assert.equal(sha256Hex(a), sha256Hex(buildModel('mobilenetv2')));
    assert.notEqual(sha256Hex(a), sha256Hex(buildModel('mobilenetv2', { seed: 1 })));
  });

  test('GraphBuilder attribute typing and metadata', () => {
    const g = new GraphBuilder({ name: 't', opset: 13, seed: 3 });
    const x = g.input('x', ['N', 4]);
    g.node('Dummy', [x], { i: 2, is: [1, 2], f: 0.5, fs: [0.5, 1], ff: { floats: [1, 2] }, s: 'abc', f1: { float: 1 } }, {
      outputNames: ['y'],
    });
    g.output('y');
    const m = decode(g.build());
    assert.equal(Number(m.irVersion!.toString()), 8);
    assert.equal(m.producerName, 'fc-tiled-cnn');
    assert.equal(Number(m.opsetImport![0].version!.toString()), 13);
    assert.equal(m.opsetImport![0].domain, '');
    const T = onnx.AttributeProto.AttributeType;
    const types = Object.fromEntries(m.graph!.node![0].attribute!.map((a) => [a.name, a.type]));
    assert.deepEqual(types, { i: T.INT, is: T.INTS, f: T.FLOAT, fs: T.FLOATS, ff: T.FLOATS, s: T.STRING, f1: T.FLOAT });
    const dims = m.graph!.input![0].type!.tensorType!.shape!.dim!;
    assert.equal(dims[0].dimParam, 'N');
    assert.equal(Number(dims[1].dimValue!.toString()), 4);
  });
});

describe('structure', () => {
  test('resnet18 matches torchvision node and parameter counts', () => {
    const bytes = model('resnet18');
    const c = opCounts(bytes);
    assert.deepEqual(c, {
      Conv: 20,
      BatchNormalization: 20,
      Relu: 17,
      MaxPool: 1,
      Add: 8,
      GlobalAveragePool: 1,
      Flatten: 1,
      Gemm: 1,
    });
    const { trainable, total } = paramCount(bytes);
    assert.equal(trainable, 11_689_512); // torchvision resnet18
    assert.equal(total, 11_689_512 + 2 * 4800); // + BN running mean/var
    const g = decode(bytes).graph!;
    assert.deepEqual(
      g.input!.map((i) => i.name),
      ['input'],
    );
    assert.deepEqual(
      g.input![0].type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue!.toString())),
      ['N', 3, 'H', 'W'],
    );
    assert.deepEqual(
      g.output!.map((o) => o.name),
      ['logits'],
    );
    const kernels = g.node!.filter((n) => n.opType === 'Conv').map((n) => {
      const ks = n.attribute!.find((a) => a.name === 'kernel_shape')!.ints!;
      return Number(ks[0].toString());
    });
    assert.deepEqual(
      [kernels.filter((k) => k === 7).length, kernels.filter((k) => k === 3).length, kernels.filter((k) => k === 1).length],
      [1, 16, 3],
    );
  });

  test('mobilenetv2 matches torchvision counts', () => {
    const bytes = model('mobilenetv2');
    const c = opCounts(bytes);
    assert.equal(c.Conv, 52);
    assert.equal(c.BatchNormalization, 52);
    assert.equal(c.Clip, 35);
    assert.equal(c.Add, 10);
    assert.equal(c.Gemm, 1);
    assert.equal(paramCount(bytes).trainable, 3_504_872); // torchvision mobilenet_v2
  });

  test('vgg16 counts (GlobalAveragePool classifier variant)', () => {
    const bytes = model('vgg16');
    const c = opCounts(bytes);
    assert.deepEqual(c, { Conv: 13, Relu: 15, MaxPool: 5, GlobalAveragePool: 1, Flatten: 1, Gemm: 3 });
    // torchvision conv params 14,714,688 + 512->4096->4096->1000 classifier
    assert.equal(paramCount(bytes).trainable, 14_714_688 + 2_101_248 + 16_781_312 + 4_097_000);
  });
});

describe('onnxruntime', () => {
  for (const arch of ARCHS) {
    test(`${arch} runs at 224x224 batch 1`, async () => {
      await checkRun(model(arch), 1, 224, 224);
    });
    test(`${arch} runs at a non-square size batch 2`, async () => {
      if (arch === 'vgg16') await checkRun(model(arch), 2, 96, 128);
      else await checkRun(model(arch), 2, 160, 208);
    });
  }

  test('mobilenetv2 at opset 10 (Clip attributes) and 11 (Clip inputs)', async () => {
    for (const opset of [10, 11]) {
      const bytes = buildModel('mobilenetv2', { opset, numClasses: 10 });
      await checkRun(bytes, 2, 64, 96, 10);
    }
  });

  test('resnet18 with numClasses=10 and opset 9', async () => {
    await checkRun(buildModel('resnet18', { opset: 9, numClasses: 10 }), 2, 64, 64, 10);
  });
});

describe('ensureModel', () => {
  test('generates the file once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ensure-model-'));
    try {
      const p = join(dir, 'sub', 'mb.onnx');
      assert.equal(await ensureModel('mobilenetv2', p), p);
      assert.ok(existsSync(p));
      const st = statSync(p);
      assert.equal(st.size, model('mobilenetv2').byteLength);
      await ensureModel('mobilenetv2', p);
      assert.equal(statSync(p).mtimeMs, st.mtimeMs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
