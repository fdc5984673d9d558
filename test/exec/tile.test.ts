import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { planModel, type PlannedModel } from '../../src/planner/plan.ts';
import { padsFeed, runTile } from '../../src/exec/tile.ts';
import { monolithic, tolerance } from '../../src/exec/verify.ts';
import { createSession, type FloatTensor, type ModelSession, type Tensor } from '../../src/runtime/ort.ts';
import { cropRegion } from '../../src/tensor/nchw.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import type { GroupStage } from '../../src/plan/schema.ts';

/** Convs with borders, a pool and a strided conv: every tile needs halos and image-border pads. */
function model(): Uint8Array {
  const b = new GraphBuilder({ name: 'tiles', opset: 13, seed: 5 });
  let y = b.input('x', [1, 3, 18, 18]);
  y = b.relu(b.conv(y, 3, 4, 3, { pads: [1, 1, 1, 1], bias: true }));
  y = b.maxPool(y, 3, 1, 1);
  y = b.conv(y, 4, 6, 3, { stride: 2, pads: [1, 0, 1, 2], name: 'down' });
  b.output(y, [1, 6, 9, 9]);
  return b.build();
}

describe('runTile', () => {
  const bytes = model();
  const input = randomTensor([1, 3, 18, 18], 9);
  let planned: PlannedModel;
  let group: GroupStage;
  let session: ModelSession;
  let ref: Record<string, Tensor>;

  before(async () => {
    planned = planModel(bytes, { inputShape: [1, 3, 18, 18], grid: { rows: 3, cols: 2 }, cuts: 'none' });
    const g = planned.plan.stages.find((s) => s.kind === 'group');
    assert.ok(g && g.kind === 'group');
    group = g;
    session = await createSession(planned.subModels.get(group.id)!, `group ${group.id}`, { threads: 1 });
    ref = await monolithic(bytes, input, 'x', { threads: 1 });
  });
  after(async () => { await session?.release(); });

  it('the plan tiles the whole model as one group with runtime pads', () => {
    assert.equal(planned.plan.stages.length, 1);
    assert.equal(group.tiles.length, 6);
    assert.ok(group.runtimePads.length > 0);
  });

  it('each tile equals the same region of the monolithic output', async () => {
    for (const tile of group.tiles) {
      const spatial: Record<string, Tensor> = {};
      for (const i of tile.inputs) spatial[i.tensor] = cropRegion(input, i.region);
      const out = await runTile(session, group, tile, spatial, {});
      for (const o of tile.outputs) {
        const want = cropRegion(ref[o.tensor] as FloatTensor, o.region);
        assert.deepEqual(out[o.tensor].dims, want.dims);
        const c = compareTensors(want, out[o.tensor]);
        assert.ok(c.maxAbsDiff <= tolerance(c.maxRef), `tile ${tile.index}: ${c.maxAbsDiff}`);
      }
    }
  });

  it('names the group, tile and input that is missing', async () => {
    const tile = group.tiles[1];
    await assert.rejects(runTile(session, group, tile, {}, {}), new RegExp(`^Error: group ${group.id} tile 1: missing input x$`));
  });

  it('rejects a tile output whose size is not its region (a crop of the wrong size)', async () => {
    const tile = group.tiles[0];
    // The whole map instead of the tile's region: the sub-model runs, its output is too large.
    await assert.rejects(runTile(session, group, tile, { x: input }, {}), (e: Error) => {
      const o = tile.outputs[0];
      return e.message.startsWith(`group ${group.id} tile 0: output ${o.tensor} is [`) && e.message.endsWith(`expected ${o.region.y1 - o.region.y0}x${o.region.x1 - o.region.x0}`);
    });
  });
});

describe('padsFeed', () => {
  it('lays [top, left, bottom, right] out as ONNX Pad int64[8] over NCHW, negative crops kept', () => {
    const f = padsFeed([1, -2, 3, 0]);
    assert.deepEqual(f.dims, [8]);
    assert.ok(f.data instanceof BigInt64Array);
    assert.deepEqual(Array.from(f.data), [0n, 0n, 1n, -2n, 0n, 0n, 3n, 0n]);
  });
});
