import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { analyzeModel } from '../../src/planner/plan.ts';
import type { LocalOp } from '../../src/tiling/ops.ts';
import { windowOutSize } from '../../src/tiling/geometry.ts';
import { depthToSpaceBackward, padBackward, spaceToDepthBackward } from '../../src/tiling/maps.ts';

/** The LocalOp (or the master reason) of the one node `build` adds to a [1,C,H,W] input. */
function classify(shape: number[], build: (b: GraphBuilder, x: string) => string, opset = 17): LocalOp | string {
  const b = new GraphBuilder({ name: 'op', opset });
  const y = build(b, b.input('x', ['N', shape[1], 'H', 'W']));
  b.output(y);
  const { graph, cls } = analyzeModel(b.build(), shape);
  const node = graph.nodes[graph.nodes.length - 1];
  return cls.local.get(node) ?? cls.reasons.get(node)!;
}
const local = (op: LocalOp | string): LocalOp => {
  if (typeof op === 'string') assert.fail(`expected a tiled op, got: ${op}`);
  return op;
};
const iv = (start: number, end: number) => ({ start, end });
const rows = (op: LocalOp, s: number, e: number) => op.backward(0, iv(s, e));

describe('backward maps, hand-computed', () => {
  it('Conv: stride 2, pad 1', () => {
    const op = local(classify([1, 2, 8, 8], (b, x) => b.conv(x, 2, 3, 3, { stride: 2, pads: [1, 1, 1, 1] })));
    // out y reads [2y-1, 2y+2): outputs [1,3) read [1,6), [0,2) read [-1,4) (one row of border).
    assert.deepEqual(rows(op, 1, 3), { need: iv(1, 6), produced: iv(1, 3) });
    assert.deepEqual(rows(op, 0, 2), { need: iv(-1, 4), produced: iv(0, 2) });
    assert.equal(op.fill, 0);
  });
  it('Conv: dilation 2, asymmetric pads', () => {
    const op = local(classify([1, 2, 8, 8], (b, x) => b.conv(x, 2, 2, [3, 3], { dilation: 2, pads: [2, 0, 1, 0] })));
    // Extent 5, begin pad 2: out y reads [y-2, y+3).
    assert.deepEqual(rows(op, 0, 4), { need: iv(-2, 6), produced: iv(0, 4) });
    assert.deepEqual(op.backward(1, iv(2, 3)), { need: iv(2, 7), produced: iv(2, 3) });
  });
  it('MaxPool ceil mode: the last window overhangs, filled with -inf', () => {
    assert.equal(windowOutSize(8, { k: 3, s: 2, d: 1, p0: 0, p1: 0 }, true), 4);
    assert.equal(windowOutSize(8, { k: 3, s: 2, d: 1, p0: 0, p1: 0 }, false), 3);
    // ceil mode never starts a window in the end padding: 5 with k2 s2 p1 gives 3, not 4.
    assert.equal(windowOutSize(5, { k: 2, s: 2, d: 1, p0: 1, p1: 1 }, true), 3);
    const op = local(classify([1, 2, 8, 8], (b, x) => b.node('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 })[0]));
    assert.deepEqual(rows(op, 3, 4), { need: iv(6, 9), produced: iv(3, 4) });
    assert.equal(op.fill, -Infinity);
  });
  it('AveragePool divides by the positions it counts', () => {
    const op = local(classify([1, 2, 5, 5], (b, x) => b.node('AveragePool', [x], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1, count_include_pad: 0 })[0]));
    assert.deepEqual(rows(op, 2, 3), { need: iv(4, 6), produced: iv(2, 3) });
    assert.equal(op.avgPool?.countIncludePad, false);
  });

  const resize = (shape: number[], attrs: Record<string, string>, scales?: number[], sizes?: number[], opset = 17) => classify(shape, (b, x) => {
    const roi = b.constant('roi', [0], new Float32Array(0));
    const sc = b.constant('scales', scales ? [4] : [0], new Float32Array(scales ?? []));
    const ins = [x, roi, sc];
    if (sizes) ins.push(b.initializer('sizes', [4], BigInt64Array.from(sizes.map(BigInt))));
    return b.node('Resize', ins, attrs)[0];
  }, opset);

  it('Resize nearest asymmetric x2: floor(y/2)', () => {
    const op = local(resize([1, 1, 4, 4], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, [1, 1, 2, 2]));
    assert.deepEqual(rows(op, 3, 6), { need: iv(1, 3), produced: iv(2, 6) });
  });
  it('Resize linear half_pixel x2: both taps, clamped at the border', () => {
    const op = local(resize([1, 1, 4, 4], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' }, [1, 1, 2, 2]));
    // y=0 samples -0.25 -> clamped to row 0 (taps 0 and 1); y=3,4 sample 1.25, 1.75 -> rows 1, 2.
    assert.deepEqual(rows(op, 0, 1), { need: iv(0, 2), produced: iv(0, 4) });
    assert.deepEqual(rows(op, 3, 5), { need: iv(1, 3), produced: iv(2, 6) });
    // The last output samples 3.25 -> clamped to row 3.
    assert.deepEqual(rows(op, 7, 8), { need: iv(3, 4), produced: iv(6, 8) });
  });
  it('Resize cubic half_pixel x2: four taps', () => {
    const op = local(resize([1, 1, 6, 6], { mode: 'cubic', coordinate_transformation_mode: 'half_pixel' }, [1, 1, 2, 2]));
    // y=4 samples 1.75 (taps 0..3), y=5 samples 2.25 (taps 1..4).
    assert.deepEqual(rows(op, 4, 6), { need: iv(0, 5), produced: iv(0, 10) });
  });
  it('Resize with sizes giving an integer factor is tiled with that factor', () => {
    const op = local(resize([1, 1, 5, 5], { mode: 'nearest', coordinate_transformation_mode: 'half_pixel' }, undefined, [1, 1, 10, 15]));
    assert.deepEqual(op.backward(1, iv(0, 3)), { need: iv(0, 1), produced: iv(0, 3) });
  });
  it('Resize is never approximated: fractional scales, align_corners, tf_crop_and_resize run on the master', () => {
    // Scale 2.1 on 5 gives 10 rows but samples at steps of 1/2.1, not 1/2.
    assert.match(resize([1, 1, 5, 5], { mode: 'nearest' }, [1, 1, 2.1, 2.1]) as string, /not an integer/);
    assert.match(resize([1, 1, 4, 4], { mode: 'linear' }, [1, 1, 1.5, 1.5]) as string, /not an integer/);
    assert.match(resize([1, 1, 8, 8], { mode: 'linear' }, [1, 1, 0.5, 0.5]) as string, /not an integer/);
    assert.match(resize([1, 1, 4, 4], { mode: 'linear', coordinate_transformation_mode: 'align_corners' }, [1, 1, 2, 2]) as string, /align_corners/);
    assert.match(resize([1, 1, 5, 5], { mode: 'nearest' }, undefined, [1, 1, 8, 8]) as string, /not an integer/);
  });
  it('DepthToSpace and SpaceToDepth', () => {
    assert.deepEqual(depthToSpaceBackward(iv(3, 7), 2), { need: iv(1, 4), produced: iv(2, 8) });
    assert.deepEqual(depthToSpaceBackward(iv(0, 3), 3), { need: iv(0, 1), produced: iv(0, 3) });
    assert.deepEqual(spaceToDepthBackward(iv(1, 3), 2), { need: iv(2, 6), produced: iv(1, 3) });
    for (const mode of ['DCR', 'CRD']) {
      const op = local(classify([1, 8, 4, 4], (b, x) => b.node('DepthToSpace', [x], { blocksize: 2, mode })[0]));
      assert.equal(op.kind, 'depthToSpace');
      assert.deepEqual(rows(op, 3, 5), { need: iv(1, 3), produced: iv(2, 6) });
    }
    const s2d = local(classify([1, 2, 6, 6], (b, x) => b.node('SpaceToDepth', [x], { blocksize: 3 })[0]));
    assert.deepEqual(rows(s2d, 1, 2), { need: iv(3, 6), produced: iv(1, 2) });
  });
  it('Pad constant, reflect and edge', () => {
    // constant: output rows [0,3) with 2 rows before read input rows [-2,1) (2 of them border).
    assert.deepEqual(padBackward(iv(0, 3), 2, 5, 'constant'), { need: iv(-2, 1), produced: iv(0, 3) });
    // reflect: border rows -2,-1 copy rows 2,1, so the tile must hold rows up to 2.
    assert.deepEqual(padBackward(iv(0, 3), 2, 5, 'reflect'), { need: iv(-2, 3), produced: iv(0, 5) });
    // edge: a tile wholly in the border still needs row 0.
    assert.deepEqual(padBackward(iv(0, 1), 2, 5, 'edge'), { need: iv(-2, 1), produced: iv(0, 3) });
    // reflect at the end: rows 5, 6 of a 5-row map copy rows 3, 2.
    assert.deepEqual(padBackward(iv(5, 7), 0, 5, 'reflect'), { need: iv(2, 7), produced: iv(2, 7) });
    assert.deepEqual(padBackward(iv(6, 7), 0, 5, 'edge'), { need: iv(4, 7), produced: iv(4, 7) });
    const pads = (b: GraphBuilder) => b.initializer('pads', [8], BigInt64Array.from([0, 0, 2, 1, 0, 0, 0, 3].map(BigInt)));
    for (const mode of ['reflect', 'edge']) {
      const op = local(classify([1, 1, 5, 5], (b, x) => b.node('Pad', [x, pads(b)], { mode })[0]));
      assert.equal(op.padMode, mode);
    }
  });
  it('Cast, QDQ and quantized convs are tiled; DynamicQuantizeLinear is not', () => {
    assert.equal(local(classify([1, 2, 4, 4], (b, x) => b.node('Cast', [x], { to: 10 })[0])).kind, 'pointwise');
    const q = local(classify([1, 2, 4, 4], (b, x) => b.node('QuantizeLinear', [x, b.constant('s', [2], [0.1, 0.2]), b.rawInitializer('z', 2, [2], new Uint8Array([128, 120]))], { axis: 1 })[0]));
    assert.deepEqual(q.spatialInputs, [0]);
    const qc = local(classify([1, 2, 6, 6], (b, x) => {
      const xq = b.node('QuantizeLinear', [x, b.constant('xs', [], [0.02]), b.rawInitializer('xz', 2, [], new Uint8Array([131]))])[0];
      return b.node('ConvInteger', [xq, b.rawInitializer('w', 2, [3, 2, 3, 3], new Uint8Array(54).fill(129)), 'xz'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })[0];
    }));
    // ConvInteger pads with the input's zero point.
    assert.equal(qc.fill, 131);
    assert.deepEqual(rows(qc, 0, 2), { need: iv(-1, 3), produced: iv(0, 2) });
    const dq = classify([1, 2, 4, 4], (b, x) => b.node('DynamicQuantizeLinear', [x], {}, { outputs: 3 })[0]);
    assert.equal(typeof dq, 'string');
  });
});
