import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, mulberry32 } from '../../src/onnx/builder.ts';
import { floatToHalf } from '../../src/tensor/dtype.ts';
import { planModel } from '../../src/planner/plan.ts';
import { verifyPlan } from '../../src/exec/verify.ts';
import { randomCase } from '../helpers/random-models.ts';

// Property: random CNNs with the patterns real exports contain (fractional and shape-driven
// Resize, map-sized constants, float16 segments, QDQ, quantized convs, DepthToSpace,
// SpaceToDepth, reflect/edge Pad, bool masks), tiled == monolithic ORT.
const CASES = Number(process.env.PATTERN_CASES ?? 300);

describe('exported patterns: tiled execution equals monolithic ORT', () => {
  for (let seed = 1; seed <= CASES; seed++) {
    it(`case ${seed}`, async () => {
      // Every fourth case has SE blocks too (reductions in the chain beside the patterns).
      const c = randomCase(seed, { patterns: 0.6, minPatterns: 1, maxOps: 3, se: seed % 4 === 0 ? 0.3 : 0 });
      const r = mulberry32(seed + 1000);
      const cuts = (['none', 'block', 'stage', 'exchange'] as const)[seed % 4];
      let ctx = c.desc.join(' | ');
      let res;
      try {
        const probe = planModel(c.bytes, { inputShape: c.shape, grid: { rows: 1, cols: 1 }, cuts }).plan;
        const outs = probe.stages.flatMap((s) => (s.kind === 'group' ? s.outputs.map((o) => o.shape) : []));
        const rows = 1 + Math.floor(r() * Math.min(4, ...outs.map((s) => s[2])));
        const cols = 1 + Math.floor(r() * Math.min(4, ...outs.map((s) => s[3])));
        ctx += ` | grid ${rows}x${cols} cuts ${cuts}`;
        const p = planModel(c.bytes, { inputShape: c.shape, grid: { rows, cols }, cuts });
        res = await verifyPlan(c.bytes, p.plan, p.subModels, { seed, threads: 1 });
      } catch (e) {
        assert.fail(`${ctx}: ${(e as Error).stack}`);
      }
      assert.ok(res.ok, `${ctx}: maxAbsDiff ${res.maxAbsDiff} maxRef ${res.maxRef}`);
    });
  }
});

const f16 = (values: number[]) => {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16LE(floatToHalf(v), i * 2));
  return new Uint8Array(b);
};

async function exact(bytes: Uint8Array, shape: number[], grid: { rows: number; cols: number }) {
  const p = planModel(bytes, { inputShape: shape, grid, cuts: 'none' });
  const r = await verifyPlan(bytes, p.plan, p.subModels, { seed: 3, threads: 1 });
  assert.ok(r.ok, `maxAbsDiff ${r.maxAbsDiff} maxRef ${r.maxRef}`);
  return p.plan;
}

describe('exported patterns, one by one', () => {
  it('a float16 network with Casts inside plans into few stages; what crosses is what ORT holds', async () => {
    const b = new GraphBuilder({ name: 'fp16', opset: 17 });
    let x = b.node('Cast', [b.input('input', ['N', 3, 'H', 'W'])], { to: 10 })[0];
    const conv = (x: string, cin: number, cout: number, tag: string) => {
      const w = b.rawInitializer(`w${tag}`, 10, [cout, cin, 3, 3], f16(Array.from({ length: cout * cin * 9 }, (_, i) => ((i * 37) % 17) / 40 - 0.2)));
      return b.node('Relu', [b.node('Conv', [x, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })[0]])[0];
    };
    x = conv(x, 3, 4, 'a');
    x = b.node('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 })[0];
    x = b.node('Softmax', [x], { axis: 1 })[0]; // over channels: not tiled, runs on the master
    x = conv(x, 4, 2, 'b');
    b.output(b.node('Cast', [x], { to: 1 })[0]);
    const plan = await exact(b.build(), [1, 3, 20, 18], { rows: 2, cols: 2 });
    assert.equal(plan.summary.groups, 2);
    assert.equal(plan.summary.masterStages, 1);
    const master = plan.stages.find((s) => s.kind === 'master')!;
    // ORT runs MaxPool and Softmax in float32 and never rounds between them and the convs: the
    // float16 maps cross to and from the master as float32, and the plan equals ORT at 1e-4.
    assert.deepEqual(master.inputs.map((i) => i.dtype), [undefined]);
    assert.deepEqual(master.outputs.map((i) => i.dtype), [undefined]);
    assert.equal(plan.input.dtype, undefined, 'float32 is the default, left out');
  });

  it('F.interpolate(x, size=skip.shape[2:]) is resolved at plan time and tiled', async () => {
    const b = new GraphBuilder({ name: 'interp', opset: 17 });
    const skip = b.conv(b.input('input', ['N', 2, 'H', 'W']), 2, 3, 3, { pads: [1, 1, 1, 1] });
    const low = b.conv(skip, 3, 3, 3, { stride: 2, pads: [1, 1, 1, 1] });
    const i64 = (n: string, v: number[]) => b.initializer(n, [v.length], BigInt64Array.from(v.map(BigInt)));
    const nc = b.node('Slice', [b.node('Shape', [low])[0], i64('a0', [0]), i64('a2', [2]), i64('ax', [0])])[0];
    const hw = b.node('Slice', [b.node('Shape', [skip])[0], i64('b2', [2]), i64('b4', [4]), i64('bx', [0])])[0];
    const sizes = b.node('Concat', [nc, hw], { axis: 0 })[0];
    const up = b.node('Resize', [low, '', '', sizes], { mode: 'nearest', nearest_mode: 'floor', coordinate_transformation_mode: 'asymmetric' })[0];
    b.output(b.add(up, skip));
    const plan = await exact(b.build(), [1, 2, 16, 12], { rows: 2, cols: 2 });
    assert.equal(plan.summary.masterStages, 0);
    assert.equal(plan.summary.groups, 1);
  });

  it('a map-sized constant added mid-network is cropped per tile', async () => {
    const b = new GraphBuilder({ name: 'posbias', opset: 17 });
    const x = b.conv(b.input('input', ['N', 2, 'H', 'W']), 2, 3, 3, { stride: 2, pads: [1, 1, 1, 1] });
    const y = b.add(x, b.randn('pos', [1, 3, 7, 6], 1));
    b.output(b.conv(y, 3, 2, 3, { pads: [1, 1, 1, 1] }));
    const plan = await exact(b.build(), [1, 2, 13, 11], { rows: 3, cols: 2 });
    assert.equal(plan.summary.masterStages, 0);
  });

  it('Resize by 2.1 on a 5x5 map (10x10 out) runs on the master, exactly', async () => {
    const b = new GraphBuilder({ name: 'frac', opset: 17 });
    const x = b.conv(b.input('input', ['N', 1, 'H', 'W']), 1, 2, 3, { pads: [1, 1, 1, 1] });
    const up = b.node('Resize', [x, b.constant('roi', [0], []), b.constant('sc', [4], [1, 1, 2.1, 2.1])], { mode: 'nearest' })[0];
    b.output(b.conv(up, 2, 2, 3, { pads: [1, 1, 1, 1] }));
    const plan = await exact(b.build(), [1, 1, 5, 5], { rows: 2, cols: 2 });
    const master = plan.stages.find((s) => s.kind === 'master');
    assert.match(master?.reasons.Resize ?? '', /not an integer/);
  });

  it('DynamicQuantizeLinear runs on the master, exactly; its integer conv result crosses as int32', async () => {
    const b = new GraphBuilder({ name: 'dynq', opset: 17 });
    const x = b.conv(b.input('input', ['N', 2, 'H', 'W']), 2, 3, 3, { pads: [1, 1, 1, 1] });
    const [q, s, z] = b.node('DynamicQuantizeLinear', [x], {}, { outputs: 3 });
    const w = b.rawInitializer('w', 2, [2, 3, 3, 3], new Uint8Array(54).map((_, i) => 100 + (i * 7) % 50));
    const y = b.node('ConvInteger', [q, w, z], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })[0];
    b.output(b.node('Mul', [b.node('Cast', [y], { to: 1 })[0], s])[0]);
    const plan = await exact(b.build(), [1, 2, 9, 8], { rows: 2, cols: 2 });
    const dtypes = plan.stages.flatMap((st) => st.inputs.map((i) => i.dtype ?? 'float32'));
    assert.ok(dtypes.includes('int32'), dtypes.join());
    assert.match(plan.stages.find((st) => st.kind === 'master')!.label, /DynamicQuantizeLinear/);
  });
});
