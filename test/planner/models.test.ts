import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel, type Arch } from '../../src/models/index.ts';
import { planModel, type CutSpec, type Grid } from '../../src/planner/plan.ts';
import { verifyPlan } from '../../src/exec/verify.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';

const cache = new Map<string, Uint8Array>();
const model = (arch: Arch, opset?: number) => {
  const key = `${arch}:${opset ?? ''}`;
  if (!cache.has(key)) cache.set(key, buildModel(arch, { opset }));
  return cache.get(key)!;
};

async function check(bytes: Uint8Array, shape: number[], grid: Grid | Grid[], cuts: CutSpec = 'stage') {
  const p = planModel(bytes, { inputShape: shape, grid, cuts });
  const r = await verifyPlan(bytes, p.plan, p.subModels, { seed: 3 });
  assert.ok(r.ok, `maxAbsDiff ${r.maxAbsDiff} > ${r.tolerance}`);
  return { plan: p.plan, r };
}

describe('reference CNNs: tiled == monolithic ORT', () => {
  const cases: [Arch, number[], Grid | Grid[], CutSpec][] = [
    ['resnet18', [1, 3, 224, 224], { rows: 2, cols: 2 }, 'stage'],
    ['resnet18', [4, 3, 224, 224], { rows: 4, cols: 4 }, 'block'],
    ['resnet18', [1, 3, 160, 208], { rows: 3, cols: 2 }, 'stage'],
    ['resnet18', [4, 3, 97, 131], { rows: 2, cols: 3 }, 'none'],
    ['vgg16', [1, 3, 224, 224], { rows: 2, cols: 2 }, 'stage'],
    ['vgg16', [4, 3, 64, 96], { rows: 2, cols: 2 }, 'stage'],
    ['mobilenetv2', [1, 3, 224, 224], { rows: 3, cols: 3 }, 'stage'],
    ['mobilenetv2', [4, 3, 150, 190], { rows: 2, cols: 3 }, 'block'],
  ];
  for (const [arch, shape, grid, cuts] of cases) {
    const g = Array.isArray(grid) ? 'mixed' : `${grid.rows}x${grid.cols}`;
    it(`${arch} ${shape.join('x')} grid ${g} cuts ${cuts}`, async () => {
      const { plan } = await check(model(arch), shape, grid, cuts);
      assert.ok(plan.summary.groups >= 1);
      // Weights are stored once across sub-models (target <= 1.05x the model).
      assert.ok(plan.summary.subModelBytes <= 1.05 * plan.model.bytes, `sub-models ${plan.summary.subModelBytes} vs model ${plan.model.bytes}`);
    });
  }

  it('mobilenetv2 at opset 10 (Clip attributes; sub-models lifted to opset 11)', async () => {
    await check(model('mobilenetv2', 10), [1, 3, 96, 96], { rows: 2, cols: 2 });
  });

  it('resnet18 at opset 9', async () => {
    await check(model('resnet18', 9), [1, 3, 64, 80], { rows: 2, cols: 2 }, 'block');
  });

  it('per-group grids, including ones that do not divide the map', async () => {
    const { plan } = await check(model('resnet18'), [1, 3, 224, 224], [{ rows: 3, cols: 5 }, { rows: 5, cols: 3 }, { rows: 3, cols: 3 }, { rows: 2, cols: 3 }, { rows: 1, cols: 2 }]);
    const groups = plan.stages.filter((s) => s.kind === 'group');
    assert.deepEqual(groups.map((g) => g.kind === 'group' && g.tiles.length), [15, 15, 9, 6, 2]);
  });
});

/** conv -> SE (GAP -> FC -> ReLU -> FC -> Sigmoid, scale) -> conv: a non-local op mid-network. */
function seModel(): Uint8Array {
  const b = new GraphBuilder({ name: 'se', opset: 13, seed: 5 });
  const x = b.input('image', ['N', 3, 'H', 'W']);
  const y = b.relu(b.conv(x, 3, 16, 3, { pads: [1, 1, 1, 1], stride: 2 }));
  const s = b.flatten(b.globalAvgPool(y));
  const e = b.relu(b.gemm(s, 16, 4));
  const [sig] = b.node('Sigmoid', [b.gemm(e, 4, 16)]);
  const shape = b.initializer('se_shape', [4], BigInt64Array.from([0n, 16n, 1n, 1n]));
  const [scale] = b.node('Reshape', [sig, shape]);
  const [z] = b.node('Mul', [y, scale]);
  const out = b.conv(b.relu(z), 16, 8, 3, { pads: [1, 1, 1, 1] });
  b.output(out);
  return b.build();
}

describe('non-local op in the middle (SE block)', () => {
  it('runs the squeeze-excite branch on the master between two groups', async () => {
    const { plan } = await check(seModel(), [2, 3, 45, 38], { rows: 2, cols: 3 });
    const kinds = plan.stages.map((s) => s.kind);
    assert.deepEqual(kinds, ['group', 'master', 'group']);
    const second = plan.stages[2];
    assert.ok(second.kind === 'group' && second.inputs.some((i) => !i.spatial), 'the SE scale enters the second group whole');
  });
});

describe('ONNX variations the planner must accept', () => {
  it('opset 7 models (oldest supported)', async () => {
    await check(buildModel('mobilenetv2', { opset: 7 }), [1, 3, 64, 80], { rows: 2, cols: 2 });
    await check(buildModel('resnet18', { opset: 7 }), [2, 3, 64, 64], { rows: 2, cols: 2 }, 'block');
  });

  it('initializers listed as graph inputs, weights from Constant nodes, unnamed nodes', async () => {
    const b = new GraphBuilder({ name: 'legacy', opset: 9, seed: 9 });
    const x = b.input('data', [1, 2, 'H', 'W']);
    const y = b.relu(b.conv(x, 2, 4, 3, { pads: [1, 1, 1, 1] }));
    const z = b.conv(y, 4, 3, 3, { pads: [0, 1, 2, 1], stride: 2 });
    b.output(z);
    const { onnx } = await import('../../src/onnx/model-io.ts');
    const m = onnx.ModelProto.decode(b.build());
    const g = m.graph!;
    // Old exporters list every initializer as a graph input too.
    for (const t of g.initializer!) g.input!.push({ name: t.name, type: { tensorType: { elemType: 1, shape: { dim: t.dims!.map((d) => ({ dimValue: d })) } } } });
    // Move the second conv's weight into a Constant node, and strip every node name.
    const wName = g.node!.find((n, i) => n.opType === 'Conv' && i > 0)!.input![1];
    const w = g.initializer!.find((t) => t.name === wName)!;
    g.initializer = g.initializer!.filter((t) => t !== w);
    g.input = g.input!.filter((i) => i.name !== wName);
    g.node!.unshift({ opType: 'Constant', output: [wName], attribute: [{ name: 'value', type: 4, t: w }] });
    for (const n of g.node!) n.name = '';
    const bytes = onnx.ModelProto.encode(m).finish();
    const { plan } = await check(bytes, [1, 2, 23, 17], { rows: 3, cols: 2 }, 'none');
    assert.equal(plan.input.name, 'data');
  });
});

describe('Resize from opset 10 (lifted to 11 in sub-models)', () => {
  for (const mode of ['nearest', 'linear']) {
    it(`${mode}, scale 3, keeps Resize-10's asymmetric mapping`, async () => {
      const b = new GraphBuilder({ name: 'r10', opset: 10, seed: 1 });
      const x = b.input('input', [1, 2, 'H', 'W']);
      const y = b.conv(x, 2, 3, 3, { pads: [1, 1, 1, 1] });
      const [z] = b.node('Resize', [y, b.constant('scales', [4], new Float32Array([1, 1, 3, 3]))], { mode });
      b.output(b.conv(z, 3, 2, 3, { pads: [1, 1, 1, 1] }));
      const { plan } = await check(b.build(), [1, 2, 13, 17], { rows: 3, cols: 3 }, 'none');
      assert.deepEqual(plan.stages.map((s) => s.kind), ['group']);
    });
  }
});
