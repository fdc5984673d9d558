import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { planModel } from '../../src/planner/plan.ts';
import { executePlan } from '../../src/exec/in-process.ts';
import { monolithic, tolerance, verifyPlan, withBoundaryOutputs } from '../../src/exec/verify.ts';
import { decodeModel } from '../../src/onnx/model-io.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import { randomCase } from '../helpers/random-models.ts';

/** Two residual-ish conv blocks and a classifier head: groups, a cut, and a master stage. */
function model(): Uint8Array {
  const b = new GraphBuilder({ name: 'cnn', opset: 13, seed: 2 });
  let y = b.input('x', ['N', 3, 16, 16]);
  y = b.relu(b.bn(b.conv(y, 3, 8, 3, { pads: [1, 1, 1, 1] }), 8));
  const skip = y;
  y = b.conv(b.relu(b.conv(y, 8, 8, 3, { pads: [1, 1, 1, 1] })), 8, 8, 3, { pads: [1, 1, 1, 1] });
  y = b.relu(b.add(y, skip));
  y = b.maxPool(y, 2, 2, 0);
  y = b.relu(b.conv(y, 8, 8, 3, { pads: [1, 1, 1, 1], stride: 2 }));
  y = b.flatten(b.globalAvgPool(y));
  b.gemm(y, 8, 4, { outputName: 'logits' });
  b.output('logits', ['N', 4]);
  return b.build();
}

const bytes = model();
const opts = { threads: 1 };

describe('executePlan', () => {
  for (const grid of [{ rows: 1, cols: 1 }, { rows: 2, cols: 3 }]) {
    it(`equals monolithic ORT (grid ${grid.rows}x${grid.cols}, cut at blocks)`, async () => {
      const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 16, 16], grid, cuts: 'block' });
      assert.ok(plan.stages.some((s) => s.kind === 'master'), 'the head runs on the master');
      assert.ok(plan.stages.filter((s) => s.kind === 'group').length >= 2, 'the block cut makes several groups');
      const input = randomTensor([1, 3, 16, 16], 4);
      const ref = await monolithic(bytes, input, 'x', opts);
      const { outputs, timings } = await executePlan(plan, subModels, input, opts);
      const c = compareTensors(ref.logits, outputs.logits);
      assert.ok(c.maxAbsDiff <= tolerance(c.maxRef), `${c.maxAbsDiff}`);
      assert.deepEqual(timings.map((t) => [t.id, t.kind]), plan.stages.map((s) => [s.id, s.kind]));
      for (const [i, s] of plan.stages.entries()) {
        assert.equal(timings[i].tiles, s.kind === 'group' ? s.tiles.length : undefined);
        assert.ok(timings[i].ms >= 0);
      }
    });
  }

  it('runs a batch larger than the plan\'s', async () => {
    const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 16, 16], grid: { rows: 2, cols: 2 }, cuts: 'none' });
    const input = randomTensor([3, 3, 16, 16], 5);
    const ref = await monolithic(bytes, input, 'x', opts);
    const { outputs } = await executePlan(plan, subModels, input, opts);
    assert.deepEqual(outputs.logits.dims, [3, 4]);
    const c = compareTensors(ref.logits, outputs.logits);
    assert.ok(c.maxAbsDiff <= tolerance(c.maxRef));
  });

  it('names the tensor a stage needs when no earlier stage produced it', async () => {
    const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 16, 16], grid: { rows: 1, cols: 1 }, cuts: 'block' });
    const second = plan.stages[1];
    const broken = { ...plan, stages: plan.stages.slice(1) };
    await assert.rejects(executePlan(broken, subModels, randomTensor([1, 3, 16, 16], 1), opts), (e: Error) =>
      new RegExp(`^stage ${second.id} needs ${second.inputs[0].name}, which no earlier stage produced$`).test(e.message));
  });
});

describe('verifyPlan', () => {
  it('reports ok with the plan\'s summary figures', async () => {
    const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 16, 16], grid: { rows: 2, cols: 2 }, cuts: 'block' });
    const r = await verifyPlan(bytes, plan, subModels, { seed: 3, batch: 2, ...opts });
    assert.ok(r.ok, `${r.maxAbsDiff} > ${r.tolerance}`);
    assert.equal(r.groups, plan.summary.groups);
    assert.equal(r.tiles, plan.summary.tiles);
    assert.equal(r.redundancy, plan.summary.redundancy);
    assert.equal(r.tolerance, tolerance(r.maxRef));
    assert.equal(r.timings.length, plan.stages.length);
  });

  for (const seed of [3, 17]) {
    it(`random CNN ${seed} with SE blocks and a head`, async () => {
      const c = randomCase(seed, { maxOps: 5, se: 0.4, head: 1 });
      const { plan, subModels } = planModel(c.bytes, { inputShape: c.shape, grid: { rows: 2, cols: 2 }, cuts: 'block' });
      const r = await verifyPlan(c.bytes, plan, subModels, { seed, ...opts });
      assert.ok(r.ok, `${c.desc.join(' | ')}: ${r.maxAbsDiff} > ${r.tolerance}`);
    });
  }

  it('tolerance is 1e-4 relative above magnitude 1, absolute below', () => {
    assert.equal(tolerance(0.5), 1e-4);
    assert.equal(tolerance(200), 2e-2);
    assert.equal(tolerance(10, 1e-3), 1e-2);
  });
});

describe('withBoundaryOutputs', () => {
  it('adds every stage boundary as a model output and leaves the model\'s own outputs unchanged', async () => {
    const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 16, 16], grid: { rows: 2, cols: 2 }, cuts: 'block' });
    const tapped = withBoundaryOutputs(bytes, plan);
    const outs = decodeModel(tapped).graph!.output!.map((o) => o.name);
    const boundaries = new Set(plan.stages.flatMap((s) => [...s.inputs, ...s.outputs].map((t) => t.name)));
    boundaries.delete('x');
    for (const b of boundaries) assert.ok(outs.includes(b), b);
    assert.equal(outs.filter((o) => o === 'logits').length, 1);
    const input = randomTensor([1, 3, 16, 16], 8);
    const [a, b] = [await monolithic(bytes, input, 'x', opts), await monolithic(tapped, input, 'x', opts)];
    assert.deepEqual(b.logits, a.logits);
    // Each boundary holds what the partitioned run moves there.
    const { outputs } = await executePlan({ ...plan, outputs: [...boundaries].map((name) => ({ name, shape: [] })) }, subModels, input, opts);
    for (const name of boundaries) {
      const c = compareTensors(b[name], outputs[name]);
      assert.ok(c.maxAbsDiff <= tolerance(c.maxRef), `${name}: ${c.maxAbsDiff}`);
    }
  });
});
