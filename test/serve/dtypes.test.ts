import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { decodeModel, encodeModel, DataType, tensorValues } from '../../src/onnx/model-io.ts';
import { planModel } from '../../src/planner/plan.ts';
import type { Plan } from '../../src/plan/schema.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import { dtypeOf, floatToHalf, type DType, type Tensor } from '../../src/tensor/dtype.ts';
import { executePlan } from '../../src/exec/in-process.ts';
import { buildRoutes } from '../../src/plan/bundles.ts';
import { InProcessStack } from '../helpers/in-process.ts';
import { runOrtTyped } from '../helpers/ort.ts';

// Networks converted to float16 or quantized inside, with float32 input and output: their
// stage and tile boundaries carry float16 and int8 maps, halo strips included. Served through
// the real handler, master and workers, the answer must equal monolithic ORT.

/** Rewrites the float32 initializers `which` picks as float16 (bits in raw_data). */
function halfInitializers(bytes: Uint8Array, which: (name: string) => boolean): Uint8Array {
  const m = decodeModel(bytes);
  for (const t of m.graph!.initializer!) {
    if (t.dataType !== DataType.FLOAT || !which(t.name!)) continue;
    const bits = Uint16Array.from(tensorValues(t).map(floatToHalf));
    t.dataType = DataType.FLOAT16;
    t.floatData = [];
    t.rawData = new Uint8Array(bits.buffer);
  }
  return encodeModel(m);
}

/**
 * float32 in, float16 convolutions inside, float32 out. Two boundaries: `h1`, a Concat output
 * that ORT computes in float16 (so it crosses as float16, halo strips included), and `h3`, a
 * Sigmoid output that ORT holds in float32 (so it crosses as float32, unrounded).
 */
function float16Net(): Uint8Array {
  const b = new GraphBuilder({ name: 'f16net', opset: 17, seed: 5 });
  const x = b.input('input', ['N', 3, 'H', 'W']);
  const y0 = b.relu(b.conv(x, 3, 3, 3, { pads: [1, 1, 1, 1], name: 'c0' }));
  const h0 = b.node('Cast', [y0], { to: DataType.FLOAT16 }, { outputNames: ['h0'] })[0];
  const h1 = b.node('Concat', [h0, h0], { axis: 1 }, { outputNames: ['h1'] })[0];
  const h2 = b.node('Relu', [b.conv(h1, 6, 6, 3, { pads: [1, 1, 1, 1], name: 'h_c1' })])[0];
  const h3 = b.node('Sigmoid', [b.conv(h2, 6, 6, 3, { pads: [1, 1, 1, 1], name: 'h_c2' })], {}, { outputNames: ['h3'] })[0];
  const h4 = b.node('MaxPool', [h3], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, { outputNames: ['h4'] })[0];
  const h5 = b.conv(h4, 6, 4, 3, { pads: [1, 1, 1, 1], name: 'h_c3' });
  b.node('Cast', [h5], { to: DataType.FLOAT }, { outputNames: ['output'] });
  b.output('output', ['N', 4, 'H2', 'W2']);
  return halfInitializers(b.build(), (n) => n.startsWith('h_'));
}

/** float32 in; a float16 squeeze-and-excitation block: the global pool of a float16 map is reduced by the workers. */
function float16SeNet(): Uint8Array {
  const b = new GraphBuilder({ name: 'f16se', opset: 17, seed: 7 });
  const x = b.input('input', ['N', 3, 'H', 'W']);
  const h0 = b.node('Cast', [b.relu(b.conv(x, 3, 8, 3, { pads: [1, 1, 1, 1], name: 'c0' }))], { to: DataType.FLOAT16 })[0];
  const a = b.node('Relu', [b.conv(h0, 8, 8, 3, { pads: [1, 1, 1, 1], name: 'h_c1' })], {}, { outputNames: ['a'] })[0];
  const pooled = b.node('GlobalAveragePool', [a], {}, { outputNames: ['pooled'] })[0];
  const gate = b.node('Sigmoid', [b.conv(b.relu(b.conv(pooled, 8, 4, 1, { name: 'h_se1' })), 4, 8, 1, { name: 'h_se2' })])[0];
  const y = b.node('Mul', [a, gate], {}, { outputNames: ['scaled'] })[0];
  const z = b.conv(y, 8, 4, 3, { pads: [1, 1, 1, 1], name: 'h_c2' });
  b.node('Cast', [z], { to: DataType.FLOAT }, { outputNames: ['output'] });
  b.output('output', ['N', 4, 'H', 'W']);
  return halfInitializers(b.build(), (n) => n.startsWith('h_'));
}

/** Rewrites float32 initializer `name` as int8 (raw_data, as exporters write it). */
function int8Initializer(bytes: Uint8Array, name: string): Uint8Array {
  const m = decodeModel(bytes);
  const t = m.graph!.initializer!.find((x) => x.name === name)!;
  const v = Int8Array.from(tensorValues(t));
  t.dataType = DataType.INT8;
  t.floatData = [];
  t.rawData = new Uint8Array(v.buffer);
  return encodeModel(m);
}

/** float32 in, a per-tensor int8 quantized map (q) crossing the boundary, float32 out. */
function int8Net(): Uint8Array {
  const b = new GraphBuilder({ name: 'int8net', opset: 17, seed: 9 });
  const x = b.input('input', ['N', 3, 'H', 'W']);
  const y0 = b.conv(x, 3, 5, 3, { pads: [1, 1, 1, 1], name: 'c0' });
  const scale = b.constant('q_scale', [], [0.02]);
  const zp = b.constant('q_zp', [], [3]);
  const q = b.node('QuantizeLinear', [y0, scale, zp], {}, { outputNames: ['q'] })[0];
  const d = b.node('DequantizeLinear', [q, scale, zp], {}, { outputNames: ['dq'] })[0];
  const y1 = b.conv(d, 5, 4, 3, { pads: [1, 1, 1, 1], name: 'c1' });
  b.node('Identity', [y1], {}, { outputNames: ['output'] });
  b.output('output', ['N', 4, 'H', 'W']);
  return int8Initializer(b.build(), 'q_zp');
}

const boundaryDtypes = (plan: Plan): Set<DType> => {
  const s = new Set<DType>();
  for (const st of plan.stages) for (const o of st.outputs) s.add(o.dtype ?? 'float32');
  return s;
};

/** Serves `plan` through the in-process stack; returns its outputs, the in-process executor's and monolithic ORT's. */
async function serve(bytes: Uint8Array, plan: Plan, subModels: Map<number, Uint8Array>, shape: number[], seed: number) {
  const st = new InProcessStack();
  try {
    const key = await st.publish(bytes, plan);
    const x = randomTensor(shape, seed);
    const res = await st.run(key, x, `dt${seed}`, 60_000);
    const local = await executePlan(plan, subModels, x);
    const ref = await runOrtTyped(bytes, { [plan.input.name]: x });
    return { got: res.outputs, local: local.outputs, ref };
  } finally {
    await st.close();
  }
}

function expectClose(ref: Record<string, Tensor>, got: Record<string, Tensor>, plan: Plan, ctx: string, exact = false) {
  for (const o of plan.outputs) {
    assert.ok(got[o.name], `${ctx}: output ${o.name} missing`);
    assert.equal(dtypeOf(got[o.name]), dtypeOf(ref[o.name]), `${ctx}: ${o.name} dtype`);
    const c = compareTensors(ref[o.name], got[o.name]);
    const tol = exact ? 0 : 1e-4 * Math.max(1, c.maxRef);
    assert.ok(c.maxAbsDiff <= tol, `${ctx}: ${o.name} maxAbsDiff ${c.maxAbsDiff} (max |ref| ${c.maxRef})`);
  }
}

// On x86 ORT runs a float16 network's convolutions in float32 and removes the float32 -> float16
// -> float32 Cast pairs between them, so a float16 map between two such ops is never rounded in
// the whole model. The planner moves such maps as float32 (graph/types.ts `float16Boundaries`)
// and the ones ORT really computes in float16 as float16: either way the answer is ORT's.

describe('dtypes across tile and stage boundaries, served end to end', () => {
  const f16Cases = [[[1, 3, 17, 13], { rows: 2, cols: 2 }], [[2, 3, 12, 16], { rows: 3, cols: 2 }]] as const;
  const f16 = float16Net();
  for (const [shape, grid] of f16Cases) {
    const planned = planModel(f16, { inputShape: [...shape], grid, cuts: { tensors: ['h1', 'h3'] } });
    const { plan } = planned;
    const ctx = `float16 net ${shape.join('x')} grid ${grid.rows}x${grid.cols}: stages ${plan.stages.map((s) => `${s.kind}[${s.outputs.map((o) => `${o.name}:${o.dtype ?? 'float32'}`)}]`).join(' ')}`;
    let run: Promise<Awaited<ReturnType<typeof serve>>> | undefined;
    const once = () => (run ??= serve(f16, plan, planned.subModels, [...shape], 4));

    it(`${shape.join('x')} grid ${grid.rows}x${grid.cols}: float16 halo strips move between workers, bit-exact against the in-process executor`, async () => {
      assert.equal(plan.stages[0].outputs[0].dtype, 'float16', `${ctx}: h1 crosses as float16`);
      assert.equal(plan.stages[1].outputs[0].dtype, undefined, `${ctx}: h3 crosses as float32 (ORT never rounds it)`);
      const routes = buildRoutes(plan);
      const f16Strips = [...routes.bundles.values()].flatMap((b) => b.segments.flatMap((s) => s.items)).filter((it) => it.kind === 'strip' && it.dtype === 'float16');
      assert.ok(f16Strips.length > 0, `${ctx}: no float16 strips move between workers`);
      const { got, local } = await once();
      expectClose(local, got, plan, ctx, true);
    });

    it(`${shape.join('x')} grid ${grid.rows}x${grid.cols}: equals monolithic ORT`, async () => {
      const { got, ref } = await once();
      expectClose(ref, got, plan, ctx);
    });
  }

  it('a float16 SE block: workers reduce the map ORT holds in float32, and the gate equals monolithic ORT', async () => {
    const bytes = float16SeNet();
    const shape = [2, 3, 13, 11];
    const planned = planModel(bytes, { inputShape: shape, grid: { rows: 2, cols: 2 } });
    const { plan } = planned;
    const ctx = `float16 SE net: stages ${plan.stages.map((s) => `${s.kind}${s.kind === 'master' && s.reduce ? '(reduce)' : ''}[${s.outputs.map((o) => `${o.name}:${o.dtype ?? 'float32'}`)}]`).join(' ')} chains ${JSON.stringify(plan.chains)}`;
    const reduce = plan.stages.find((s) => s.kind === 'master' && s.reduce && plan.chains.some((c) => c.stages.includes(s.id)));
    assert.ok(reduce, `${ctx}: no in-chain reduction`);
    // ORT pools and gates in float32, never rounding to float16 in between: so do the workers.
    assert.deepEqual(reduce.inputs.map((i) => i.dtype), [undefined], ctx);
    const { got, local, ref } = await serve(bytes, plan, planned.subModels, shape, 6);
    for (const [what, want] of [['in-process executor', local], ['monolithic ORT', ref]] as const) {
      const c = compareTensors(want.output, got.output);
      assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `${ctx}: vs ${what} maxAbsDiff ${c.maxAbsDiff} (max |ref| ${c.maxRef})`);
    }
  });

  it('a quantized network: an int8 map crossing a boundary equals monolithic ORT', async () => {
    const bytes = int8Net();
    const shape = [1, 3, 14, 11];
    const planned = planModel(bytes, { inputShape: shape, grid: { rows: 2, cols: 2 }, cuts: { tensors: ['q'] } });
    const { plan } = planned;
    const ctx = `int8 net: stages ${plan.stages.map((s) => `${s.kind}[${s.outputs.map((o) => `${o.name}:${o.dtype ?? 'float32'}`)}]`).join(' ')}`;
    assert.ok(boundaryDtypes(plan).has('int8'), `${ctx}: no int8 boundary`);
    const { got, local, ref } = await serve(bytes, plan, planned.subModels, shape, 4);
    expectClose(local, got, plan, ctx, true);
    expectClose(ref, got, plan, ctx);
  });
});
