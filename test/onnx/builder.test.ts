import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, IR_VERSION, PRODUCER_NAME, mulberry32 } from '../../src/onnx/builder.ts';
import { AttrType, DataType, decodeModel, sha256, tensorValues, toNum } from '../../src/onnx/model-io.ts';
import { runOrt } from '../helpers/ort.ts';
import { randomCase } from '../helpers/random-models.ts';

/** A small conv net; `extra` adds an unrelated initializer first. */
function net(seed: number, extra = false): Uint8Array {
  const b = new GraphBuilder({ name: 'net', opset: 13, seed });
  if (extra) b.randn('unrelated', [7], 1);
  const x = b.input('x', ['N', 3, 8, 8]);
  let y = b.relu(b.bn(b.conv(x, 3, 4, 3, { pads: [1, 1, 1, 1], name: 'c1' }), 4, { name: 'bn1' }));
  y = b.maxPool(y, 2, 2, 0);
  y = b.flatten(b.globalAvgPool(y));
  b.gemm(y, 4, 5, { name: 'fc', outputName: 'logits' });
  b.output('logits', ['N', 5]);
  return b.build();
}

const init = (bytes: Uint8Array, name: string) => {
  const t = decodeModel(bytes).graph!.initializer!.find((i) => i.name === name);
  assert.ok(t, name);
  return tensorValues(t);
};

describe('GraphBuilder determinism', () => {
  it('the same calls and seed give byte-identical models', () => {
    assert.equal(sha256(net(7)), sha256(net(7)));
  });

  it('another seed changes the weights, not the structure', () => {
    const a = decodeModel(net(7));
    const b = decodeModel(net(8));
    assert.deepEqual(a.graph!.node, b.graph!.node);
    assert.notDeepEqual(init(net(7), 'c1.weight'), init(net(8), 'c1.weight'));
  });

  it('weights are keyed by tensor name: adding another tensor first does not change them', () => {
    assert.deepEqual(init(net(7, true), 'c1.weight'), init(net(7), 'c1.weight'));
  });

  it('the random CNN generator is deterministic by seed', () => {
    const a = randomCase(11);
    assert.equal(sha256(a.bytes), sha256(randomCase(11).bytes));
    assert.deepEqual(a.desc, randomCase(11).desc);
    assert.notEqual(sha256(a.bytes), sha256(randomCase(12).bytes));
  });

  it('mulberry32 is a fixed sequence in [0, 1)', () => {
    const r = mulberry32(1);
    const xs = Array.from({ length: 1000 }, r);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.deepEqual(xs.slice(0, 3), Array.from({ length: 3 }, mulberry32(1)));
    assert.notDeepEqual(xs.slice(0, 3), Array.from({ length: 3 }, mulberry32(2)));
  });
});

describe('GraphBuilder output', () => {
  it('writes IR version, opset, producer and float32 value infos with symbolic dims', () => {
    const m = decodeModel(net(1));
    assert.equal(toNum(m.irVersion), IR_VERSION);
    assert.equal(m.producerName, PRODUCER_NAME);
    assert.equal(toNum(m.opsetImport![0].version), 13);
    const dims = m.graph!.input![0].type!.tensorType!.shape!.dim!;
    assert.equal(dims[0].dimParam, 'N');
    assert.equal(toNum(dims[1].dimValue), 3);
    assert.equal(m.graph!.input![0].type!.tensorType!.elemType, DataType.FLOAT);
  });

  it('encodes attributes by value type', () => {
    const b = new GraphBuilder({ name: 'a', opset: 13 });
    const x = b.input('x', [1]);
    b.node('Custom', [x], { i: 3, f: 0.5, s: 'abc', ints: [1, 2], floats: [0.5, 1], ff: { float: 2 }, fl: { floats: [1, 2] }, t: { tensor: { dims: [2], data: BigInt64Array.from([1n, 2n]) } } }, { name: 'n' });
    b.output('n_output_0');
    const attrs = Object.fromEntries(decodeModel(b.build()).graph!.node![0].attribute!.map((a) => [a.name, a]));
    assert.equal(attrs.i.type, AttrType.INT);
    assert.equal(attrs.f.type, AttrType.FLOAT);
    assert.equal(new TextDecoder().decode(attrs.s.s!), 'abc');
    assert.equal(attrs.ints.type, AttrType.INTS);
    assert.equal(attrs.floats.type, AttrType.FLOATS);
    assert.equal(attrs.ff.type, AttrType.FLOAT);
    assert.equal(attrs.ff.f, 2);
    assert.equal(attrs.fl.type, AttrType.FLOATS);
    assert.equal(attrs.t.type, AttrType.TENSOR);
    assert.deepEqual(tensorValues(attrs.t.t!), [1, 2]);
  });

  it('relu6 is Clip with scalar inputs from opset 11, attributes before; BatchNorm gets spatial before opset 9', () => {
    const build = (opset: number) => {
      const b = new GraphBuilder({ name: 'r', opset });
      b.output(b.bn(b.relu6(b.relu6(b.input('x', [1, 2, 2, 2]))), 2));
      return decodeModel(b.build()).graph!.node!;
    };
    const n13 = build(13);
    assert.equal(n13[0].input!.length, 3);
    assert.deepEqual(n13[1].input!.slice(1), n13[0].input!.slice(1), 'the bounds are shared');
    assert.equal(n13[2].attribute!.some((a) => a.name === 'spatial'), false);
    const n8 = build(8);
    assert.equal(n8[0].input!.length, 1);
    assert.deepEqual(n8[0].attribute!.map((a) => a.name).sort(), ['max', 'min']);
    assert.equal(n8[2].attribute!.some((a) => a.name === 'spatial'), true);
  });

  it('rawInitializer keeps any element type, numParams counts elements', () => {
    const b = new GraphBuilder({ name: 'r', opset: 13 });
    b.rawInitializer('h', DataType.FLOAT16, [2], Uint8Array.from([0x00, 0x3c, 0x00, 0xc0]));
    b.constant('c', [3], [1, 2, 3]);
    b.output(b.add('h', 'h'));
    assert.equal(b.numParams, 5);
    const t = decodeModel(b.build()).graph!.initializer!;
    assert.deepEqual(tensorValues(t[0]), [1, -2]);
    assert.deepEqual(tensorValues(t[1]), [1, 2, 3]);
  });

  it('the model runs in ORT and computes what it says (conv of ones with a constant weight)', async () => {
    const b = new GraphBuilder({ name: 'k', opset: 13 });
    const x = b.input('x', [1, 1, 3, 3]);
    const w = b.constant('w', [1, 1, 3, 3], new Float32Array(9).fill(1));
    const [y] = b.node('Conv', [x, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    b.output(y, [1, 1, 3, 3]);
    const out = await runOrt(b.build(), { x: { dims: [1, 1, 3, 3], data: new Float32Array(9).fill(1) } });
    assert.deepEqual(Array.from(out[y].data), [4, 6, 4, 6, 9, 6, 4, 6, 4]);
  });
});

describe('GraphBuilder errors', () => {
  const fresh = () => new GraphBuilder({ name: 'e', opset: 13 });
  it('rejects bad opsets, duplicate and unknown names', () => {
    assert.throws(() => new GraphBuilder({ name: 'e', opset: 6 }), /unsupported opset 6/);
    const b = fresh();
    b.input('x', [1]);
    assert.throws(() => b.input('x', [1]), /value name already defined: x/);
    assert.throws(() => b.node('Relu', ['y']), /Relu: unknown input value y/);
    b.node('Relu', ['x'], {}, { name: 'r' });
    assert.throws(() => b.node('Relu', ['x'], {}, { name: 'r' }), /duplicate node name r/);
    b.output('r_output_0');
    assert.throws(() => b.output('r_output_0'), /duplicate graph output/);
  });

  it('rejects dims that do not match the data, bad dims, bad conv groups', () => {
    const b = fresh();
    assert.throws(() => b.initializer('w', [2, 2], new Float32Array(3)), /tensor w: dims \[2,2\] need 4 elements, got 3/);
    assert.throws(() => b.randn('r', [2, -1], 1), /invalid dim -1/);
    const x = b.input('x', [1, 3, 4, 4]);
    assert.throws(() => b.conv(x, 3, 4, 1, { group: 2 }), /group 2 must divide cin 3/);
  });

  it('rejects a graph without outputs or with an output nothing produces', () => {
    const b = fresh();
    b.input('x', [1]);
    assert.throws(() => b.build(), /graph has no outputs/);
    b.output('nope');
    assert.throws(() => b.build(), /graph output nope is never produced/);
  });
});
