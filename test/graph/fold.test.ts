import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { buildGraph } from '../../src/graph/ir.ts';
import { analyzeGraph } from '../../src/graph/fold.ts';
import { inferTypes } from '../../src/graph/types.ts';
import { DataType, decodeModel, scalarTensor, tensorValues } from '../../src/onnx/model-io.ts';

const i64 = (b: GraphBuilder, n: string, v: number[]) => b.initializer(n, [v.length], BigInt64Array.from(v.map(BigInt)));

describe('graph analysis for one input shape', () => {
  it('folds the shape arithmetic that feeds Resize sizes, not a Reshape reading the batch', () => {
    const b = new GraphBuilder({ name: 'm', opset: 17 });
    const x = b.input('input', ['N', 2, 'H', 'W']);
    const low = b.node('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] })[0];
    const shape = b.node('Shape', [x])[0];
    const sizes = b.node('Concat', [b.node('Slice', [b.node('Shape', [low])[0], i64(b, 'a', [0]), i64(b, 'b', [2])])[0], b.node('Slice', [shape, i64(b, 'c', [2]), i64(b, 'd', [4])])[0]], { axis: 0 })[0];
    const up = b.node('Resize', [low, '', '', sizes], { mode: 'nearest' })[0];
    // x.view(x.size(0), -1): the batch must stay computed (plans are batch-agnostic).
    const batch = b.node('Gather', [b.node('Shape', [up])[0], i64(b, 'z', [0])], { axis: 0 })[0];
    b.output(b.node('Reshape', [up, b.node('Concat', [batch, i64(b, 'm1', [-1])], { axis: 0 })[0]])[0]);
    const read = buildGraph(decodeModel(b.build()));
    const { graph, info } = analyzeGraph(read, { input: [1, 2, 8, 6] });
    assert.deepEqual(info.values.get(sizes), [1, 2, 8, 6]);
    assert.ok(graph.constants.has(sizes), 'sizes became a constant');
    assert.deepEqual(graph.nodes.map((n) => n.op), ['MaxPool', 'Resize', 'Shape', 'Gather', 'Concat', 'Reshape']);
  });

  it('keeps nodes computed from constants alone (weight DequantizeLinear) out of the stages', () => {
    const b = new GraphBuilder({ name: 'm', opset: 17 });
    const x = b.input('input', ['N', 1, 'H', 'W']);
    const w = b.node('DequantizeLinear', [b.rawInitializer('wq', DataType.INT8, [1, 1, 3, 3], new Uint8Array(9).fill(3)), b.constant('ws', [], [0.1])])[0];
    b.output(b.node('Conv', [x, w], { kernel_shape: [3, 3] })[0]);
    const { graph } = analyzeGraph(buildGraph(decodeModel(b.build())), { input: [1, 1, 5, 5] });
    assert.deepEqual(graph.nodes.map((n) => n.op), ['Conv']);
    assert.equal(graph.derived?.get(w)?.op, 'DequantizeLinear');
  });

  it('infers element types through Cast, QuantizeLinear, comparisons and integer convs', () => {
    const b = new GraphBuilder({ name: 'm', opset: 17 });
    const x = b.input('input', ['N', 1, 'H', 'W']);
    const h = b.node('Cast', [x], { to: DataType.FLOAT16 })[0];
    const q = b.node('QuantizeLinear', [x, b.constant('s', [], [0.1]), b.rawInitializer('z', DataType.INT8, [], new Uint8Array([0]))])[0];
    const m = b.node('Greater', [x, b.constant('zero', [], [0])])[0];
    const shape = b.node('Shape', [x])[0];
    // Declared outputs would carry the builder's float type: read the types of intermediates.
    const back = b.node('Cast', [h], { to: DataType.FLOAT })[0];
    const dq = b.node('DequantizeLinear', [q, 's', 'z'])[0];
    b.node('Unsqueeze', [shape, i64(b, 'ax', [0])]);
    b.output(b.node('Where', [m, back, dq])[0]);
    const g = buildGraph(decodeModel(b.build()));
    const t = inferTypes(g);
    assert.equal(t.get(h), DataType.FLOAT16);
    assert.equal(t.get(q), DataType.INT8);
    assert.equal(t.get(m), DataType.BOOL);
    assert.equal(t.get(shape), DataType.INT64);
  });

  it('typed scalars round-trip (runtime Pad fills of every element type)', () => {
    assert.deepEqual(tensorValues(scalarTensor('f', DataType.FLOAT16, -1.5)), [-1.5]);
    assert.deepEqual(tensorValues(scalarTensor('f', DataType.FLOAT16, -Infinity)), [-Infinity]);
    assert.deepEqual(tensorValues(scalarTensor('u', DataType.UINT8, 131)), [131]);
    assert.deepEqual(tensorValues(scalarTensor('i', DataType.INT8, -128)), [-128]);
  });
});
