import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/models/index.ts';
import { planModel, parseGrid, parseShape } from '../../src/planner/plan.ts';
import { materializePlan, parsePlan } from '../../src/planner/materialize.ts';
import { verifyPlan } from '../../src/exec/verify.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { ModelDecodeError, InputShapeError } from '../../src/onnx/errors.ts';
import { GridTooLargeError, PlanMismatchError, PlanSpecError } from '../../src/planner/errors.ts';

const resnet = buildModel('resnet18');

describe('bad input gets an error naming the problem and where it is', () => {
  it('corrupt or non-ONNX bytes', () => {
    assert.throws(() => planModel(Buffer.from('this is not a model at all'), { inputShape: [1, 3, 32, 32], grid: { rows: 1, cols: 1 }, name: 'notes.txt' }),
      (e: Error) => e instanceof ModelDecodeError && /notes\.txt/.test(e.message) && /not a valid ONNX model/.test(e.message));
    assert.throws(() => planModel(resnet.subarray(0, 1000), { inputShape: [1, 3, 32, 32], grid: { rows: 1, cols: 1 } }), ModelDecodeError);
    assert.throws(() => planModel(new Uint8Array(0), { inputShape: [1, 3, 32, 32], grid: { rows: 1, cols: 1 } }), ModelDecodeError);
  });

  it('grid larger than the feature map names the group, the grid and the map', () => {
    assert.throws(() => planModel(resnet, { inputShape: [1, 3, 224, 224], grid: { rows: 8, cols: 8 }, cuts: 'stage' }),
      (e: Error) => e instanceof GridTooLargeError && /group 4/.test(e.message) && /8x8/.test(e.message) && /7x7/.test(e.message));
  });

  it('input shape that does not match the model', () => {
    assert.throws(() => planModel(resnet, { inputShape: [1, 4, 224, 224], grid: { rows: 1, cols: 1 } }),
      (e: Error) => e instanceof InputShapeError && /dimension 1 is 4/.test(e.message) && /input/.test(e.message));
    assert.throws(() => parseShape('1x3x224'), PlanSpecError);
    assert.throws(() => parseGrid('2by2'), (e: Error) => e instanceof PlanSpecError && /2by2/.test(e.message));
    assert.throws(() => planModel(resnet, { inputShape: [1, 3, 224, 224], grid: [{ rows: 2, cols: 2 }], cuts: 'stage' }), (e: Error) => /1 grids given for 5 groups/.test(e.message));
    assert.throws(() => planModel(resnet, { inputShape: [1, 3, 224, 224], grid: [{ rows: 2, cols: 2 }] }), (e: Error) => /1 grids given for 5 groups/.test(e.message));
    assert.throws(() => planModel(resnet, { inputShape: [1, 3, 224, 224], grid: [{ rows: 2, cols: 2 }], cuts: 'exchange' }), (e: Error) => e instanceof PlanSpecError && /one grid for every group/.test(e.message));
  });

  it('an op the planner cannot tile runs on the master instead of failing', async () => {
    const b = new GraphBuilder({ name: 'odd', opset: 13, seed: 2 });
    const x = b.input('input', [1, 3, 'H', 'W']);
    const y = b.conv(x, 3, 8, 3, { pads: [1, 1, 1, 1] });
    const [n] = b.node('LpNormalization', [y], { axis: 1, p: 2 });
    const [sm] = b.node('Softmax', [n], { axis: 1 });
    const z = b.conv(sm, 8, 4, 3, { pads: [1, 1, 1, 1] });
    b.output(z);
    const bytes = b.build();
    const { plan, subModels } = planModel(bytes, { inputShape: [1, 3, 20, 30], grid: { rows: 2, cols: 2 } });
    assert.deepEqual(plan.stages.map((s) => s.kind), ['group', 'master', 'group']);
    const master = plan.stages[1];
    assert.ok(master.kind === 'master' && /LpNormalization is not spatially local/.test(master.reasons.LpNormalization));
    const r = await verifyPlan(bytes, plan, subModels, {});
    assert.ok(r.ok);
  });

  it('malformed plans and plans for another model', () => {
    const { plan } = planModel(resnet, { inputShape: [1, 3, 64, 64], grid: { rows: 2, cols: 2 } });
    const json = JSON.parse(JSON.stringify(plan));
    json.stages[0].grid.rows = -1;
    delete json.summary;
    assert.throws(() => parsePlan(json, 'bad.json'), (e: Error) => e instanceof PlanMismatchError && /bad\.json/.test(e.message) && /stages\.0\.grid\.rows/.test(e.message) && /summary/.test(e.message));
    assert.throws(() => parsePlan({ ...plan, version: 99 }), (e: Error) => /version/.test(e.message));
    const other = buildModel('resnet18', { seed: 1 });
    assert.throws(() => materializePlan(other, plan), (e: Error) => e instanceof PlanMismatchError && /sha256/.test(e.message));
  });
});
