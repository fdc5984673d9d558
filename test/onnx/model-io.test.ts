import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  AttrType, DataType, decodeModel, encodeModel, lowestOf, onnx, scalarTensor, sha256, tensorByteSize, tensorDims,
  tensorValues, toNum, type TensorProto,
} from '../../src/onnx/model-io.ts';
import { ModelDecodeError, ModelError } from '../../src/onnx/errors.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';

function smallModel(): Uint8Array {
  const b = new GraphBuilder({ name: 'small', opset: 13, seed: 3 });
  const x = b.input('x', [1, 2, 5, 5]);
  const y = b.relu(b.conv(x, 2, 3, 3, { pads: [1, 1, 1, 1], bias: true }));
  b.output(y, [1, 3, 5, 5]);
  return b.build();
}

/** Round-trips a tensor through the ONNX wire format, as a model file would carry it. */
function viaWire(t: TensorProto): TensorProto {
  return onnx.TensorProto.decode(onnx.TensorProto.encode(t).finish());
}

const le = (write: (b: Buffer, v: number, o: number) => void, width: number, vals: number[]) => {
  const b = Buffer.alloc(vals.length * width);
  vals.forEach((v, i) => write(b, v, i * width));
  return new Uint8Array(b);
};

describe('decodeModel / encodeModel', () => {
  it('round-trips a model byte for byte', () => {
    const bytes = smallModel();
    const m = decodeModel(bytes, 'small');
    assert.equal(m.graph!.node!.length, 2);
    assert.equal(toNum(m.opsetImport![0].version), 13);
    assert.deepEqual(encodeModel(m), bytes);
  });

  it('keeps edits made to the decoded model', () => {
    const m = decodeModel(smallModel());
    m.graph!.node!.push({ opType: 'Neg', input: [m.graph!.output![0].name!], output: ['neg'] });
    m.graph!.output!.push({ name: 'neg', type: { tensorType: { elemType: DataType.FLOAT } } });
    const again = decodeModel(encodeModel(m));
    assert.deepEqual(again.graph!.node!.map((n) => n.opType), ['Conv', 'Relu', 'Neg']);
    assert.deepEqual(again.graph!.output!.map((o) => o.name), ['Relu_0_output_0', 'neg']);
  });

  it('rejects garbage, truncated bytes and models without nodes or opset, naming the model', () => {
    const bytes = smallModel();
    for (const bad of [new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff]), bytes.subarray(0, bytes.length >> 1), new Uint8Array(0)]) {
      assert.throws(() => decodeModel(bad, 'm.onnx'), (e: Error) => e instanceof ModelDecodeError && e instanceof ModelError && /^m\.onnx: not a valid ONNX model/.test(e.message));
    }
    const noOpset = decodeModel(bytes);
    noOpset.opsetImport = [];
    assert.throws(() => decodeModel(encodeModel(noOpset), 'x'), (e: Error) => e instanceof ModelDecodeError && /no opset_import/.test(e.message) && (e as ModelDecodeError).model === 'x');
    const noNodes = decodeModel(bytes);
    noNodes.graph!.node = [];
    assert.throws(() => decodeModel(encodeModel(noNodes)), /no graph or no nodes/);
  });

  it('sha256 is the hex digest of the bytes', () => {
    const bytes = smallModel();
    assert.equal(sha256(bytes), createHash('sha256').update(bytes).digest('hex'));
    assert.match(sha256(new Uint8Array()), /^e3b0c442/);
  });
});

describe('tensorValues', () => {
  const raw = (dataType: number, rawData: Uint8Array, dims = [rawData.length]) => viaWire({ name: 't', dataType, dims, rawData });
  const cases: [string, number, Uint8Array, number[]][] = [
    ['float', DataType.FLOAT, le((b, v, o) => b.writeFloatLE(v, o), 4, [1.5, -2, 0]), [1.5, -2, 0]],
    ['double', DataType.DOUBLE, le((b, v, o) => b.writeDoubleLE(v, o), 8, [0.1, -1e300]), [0.1, -1e300]],
    ['int64', DataType.INT64, le((b, v, o) => b.writeBigInt64LE(BigInt(v), o), 8, [-(2 ** 40), 7]), [-(2 ** 40), 7]],
    ['int32', DataType.INT32, le((b, v, o) => b.writeInt32LE(v, o), 4, [-(2 ** 31), 2 ** 31 - 1]), [-(2 ** 31), 2 ** 31 - 1]],
    ['int8', DataType.INT8, Uint8Array.from([0x80, 0x7f, 0xff]), [-128, 127, -1]],
    ['uint8', DataType.UINT8, Uint8Array.from([0, 255]), [0, 255]],
    ['bool', DataType.BOOL, Uint8Array.from([1, 0]), [1, 0]],
    ['float16', DataType.FLOAT16, le((b, v, o) => b.writeUInt16LE(v, o), 2, [0x3c00, 0xc000, 0x7c00]), [1, -2, Infinity]],
    ['bfloat16', DataType.BFLOAT16, le((b, v, o) => b.writeUInt16LE(v, o), 2, [0x3f80, 0xc040]), [1, -3]],
  ];
  for (const [name, dt, bytes, want] of cases) {
    it(`reads raw ${name} data`, () => assert.deepEqual(tensorValues(raw(dt, bytes)), want));
  }

  it('reads raw data at an unaligned offset inside a larger buffer', () => {
    const buf = new Uint8Array(9);
    Buffer.from(buf.buffer).writeFloatLE(3.25, 1);
    assert.deepEqual(tensorValues({ name: 't', dataType: DataType.FLOAT, rawData: buf.subarray(1, 5) }), [3.25]);
  });

  it('reads the typed fields, including int64 decoded as Long and float16 bits in int32_data', () => {
    assert.deepEqual(tensorValues(viaWire({ dataType: DataType.FLOAT, dims: [2], floatData: [0.5, -1] })), [0.5, -1]);
    assert.deepEqual(tensorValues(viaWire({ dataType: DataType.DOUBLE, dims: [1], doubleData: [1e-300] })), [1e-300]);
    const i64 = viaWire({ dataType: DataType.INT64, dims: [3], int64Data: [-(2 ** 40), 0, 2 ** 50] });
    assert.equal(typeof i64.int64Data![0], 'object', 'protobufjs hands int64 back as Long');
    assert.deepEqual(tensorValues(i64), [-(2 ** 40), 0, 2 ** 50]);
    assert.deepEqual(tensorValues(viaWire({ dataType: DataType.INT32, dims: [2], int32Data: [-5, 9] })), [-5, 9]);
    assert.deepEqual(tensorValues(viaWire({ dataType: DataType.FLOAT16, dims: [2], int32Data: [0x3c00, 0x3800] })), [1, 0.5]);
    assert.deepEqual(tensorValues(viaWire({ dataType: DataType.BFLOAT16, dims: [1], int32Data: [0x4000] })), [2]);
    assert.deepEqual(tensorValues({ dataType: DataType.FLOAT, dims: [0] }), []);
  });

  it('names the tensor of an unsupported raw type', () => {
    assert.throws(() => tensorValues({ name: 'w16', dataType: DataType.INT16, rawData: new Uint8Array(2) }), /unsupported tensor data type 5 for w16/);
  });
});

describe('scalarTensor, lowestOf, sizes', () => {
  it('scalarTensor encodes each element type so that tensorValues reads it back', () => {
    const types: [number, number][] = [
      [DataType.FLOAT, -1.25], [DataType.DOUBLE, 0.1], [DataType.FLOAT16, -0.5], [DataType.BFLOAT16, 2],
      [DataType.INT8, -128], [DataType.UINT8, 255], [DataType.BOOL, 1], [DataType.INT32, -7], [DataType.INT64, -(2 ** 40)],
    ];
    for (const [dt, v] of types) {
      const t = viaWire(scalarTensor('s', dt, v));
      assert.deepEqual(tensorDims(t), []);
      assert.deepEqual(tensorValues(t), [v], `data type ${dt}`);
      assert.equal(tensorByteSize(t), t.rawData!.length);
    }
    assert.equal(scalarTensor('s', DataType.INT16, -2).rawData!.length, 2);
    assert.equal(scalarTensor('s', DataType.UINT64, 1).rawData!.length, 8);
    assert.deepEqual(scalarTensor('s', DataType.FLOAT, 1, [1]).dims, [1]);
  });

  it('lowestOf is each type\'s minimum (-inf for floats)', () => {
    assert.equal(lowestOf(DataType.INT8), -128);
    assert.equal(lowestOf(DataType.UINT8), 0);
    assert.equal(lowestOf(DataType.BOOL), 0);
    assert.equal(lowestOf(DataType.INT16), -32768);
    assert.equal(lowestOf(DataType.INT32), -(2 ** 31));
    assert.equal(lowestOf(DataType.INT64), Number.MIN_SAFE_INTEGER);
    assert.equal(lowestOf(DataType.FLOAT), -Infinity);
    assert.equal(lowestOf(DataType.FLOAT16), -Infinity);
  });

  it('tensorByteSize counts typed fields by element width', () => {
    assert.equal(tensorByteSize({ dataType: DataType.FLOAT, dims: [2, 3], floatData: [] }), 24);
    assert.equal(tensorByteSize({ dataType: DataType.INT64, dims: [4] }), 32);
    assert.equal(tensorByteSize({ dataType: DataType.UINT8, dims: [5] }), 5);
    assert.equal(tensorByteSize({ dataType: DataType.FLOAT16, dims: [5] }), 10);
    assert.equal(tensorByteSize({ dataType: DataType.FLOAT, dims: [] }), 4, 'a scalar has one element');
  });

  it('toNum normalizes numbers, bigints and Long-like objects', () => {
    assert.equal(toNum(5), 5);
    assert.equal(toNum(-3n), -3);
    assert.equal(toNum({ toNumber: () => 42 }), 42);
    assert.equal(toNum({ low: -1, high: 0 }), 4294967295);
    assert.equal(toNum({ low: 0, high: 1 }), 4294967296);
    assert.equal(toNum('12'), 12);
  });

  it('exports ONNX enums', () => {
    assert.equal(DataType.FLOAT, 1);
    assert.equal(DataType.INT64, 7);
    assert.equal(AttrType.INTS, 7);
  });
});
