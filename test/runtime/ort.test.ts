import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InferenceError, asFloat32, createSession, type Tensor } from '../../src/runtime/ort.ts';
import { DataType, encodeModel, onnx, type AttributeProto } from '../../src/onnx/model-io.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { DTYPES, dtypeOf, makeTensor, type DType } from '../../src/tensor/dtype.ts';
import { sample } from '../helpers/dtypes.ts';

const ONNX_TYPE: Record<DType, number> = {
  float32: DataType.FLOAT, float16: DataType.FLOAT16, bfloat16: DataType.BFLOAT16, int8: DataType.INT8,
  uint8: DataType.UINT8, int32: DataType.INT32, int64: DataType.INT64, bool: DataType.BOOL,
};

/** One node `op` from x (of `inType`) to y (of `outType`), shape [2, 3]. */
function oneOp(op: string, inType: DType, outType: DType, attribute: AttributeProto[] = []): Uint8Array {
  const vi = (name: string, t: DType) => ({ name, type: { tensorType: { elemType: ONNX_TYPE[t], shape: { dim: [{ dimValue: 2 }, { dimValue: 3 }] } } } });
  return encodeModel({
    irVersion: 8, opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'g', node: [{ opType: op, input: ['x'], output: ['y'], attribute }], input: [vi('x', inType)], output: [vi('y', outType)] },
  });
}

async function runOnce(bytes: Uint8Array, feeds: Record<string, Tensor>, label = 'm') {
  const s = await createSession(bytes, label, { threads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

describe('createSession', () => {
  it('reports input and output names', async () => {
    const s = await createSession(oneOp('Identity', 'float32', 'float32'), 'm', { threads: 1, memArena: false });
    assert.deepEqual([...s.inputNames], ['x']);
    assert.deepEqual([...s.outputNames], ['y']);
    await s.release();
  });

  it('rejects bytes that are not a model with an InferenceError naming the label', async () => {
    await assert.rejects(createSession(Uint8Array.from([1, 2, 3]), 'stage 4'), (e: Error) => e instanceof InferenceError && /^stage 4: cannot load model: /.test(e.message) && (e as InferenceError).model === 'stage 4' && e.cause !== undefined);
  });
});

describe('typed feeds and outputs', () => {
  for (const dtype of DTYPES.filter((d) => d !== 'bfloat16')) {
    it(`${dtype} passes through Identity bit for bit, with its array type`, async () => {
      const data = sample(dtype, 6, 3);
      const out = (await runOnce(oneOp('Identity', dtype, dtype), { x: makeTensor(dtype, [2, 3], data) })).y;
      assert.equal(dtypeOf(out), dtype);
      assert.deepEqual(out.dims, [2, 3]);
      assert.equal(out.data.constructor, data.constructor);
      if (dtype === 'float32') assert.deepEqual(new Uint32Array(out.data.buffer, out.data.byteOffset, 6), new Uint32Array(data.buffer, data.byteOffset, 6));
      else assert.deepEqual(Array.from(out.data as ArrayLike<number | bigint>), Array.from(data as ArrayLike<number | bigint>));
    });
  }

  it('float32 tensors may leave out their dtype; int64 ones too', async () => {
    const f = (await runOnce(oneOp('Relu', 'float32', 'float32'), { x: { dims: [2, 3], data: Float32Array.from([-1, 2, -3, 4, -5, 6]) } })).y;
    assert.deepEqual(Array.from(asFloat32(f, 'y').data), [0, 2, 0, 4, 0, 6]);
    const i = (await runOnce(oneOp('Neg', 'int64', 'int64'), { x: { dims: [2, 3], data: BigInt64Array.from([1n, -2n, 3n, 2n ** 40n, 0n, -7n]) } })).y;
    assert.ok(i.data instanceof BigInt64Array);
    assert.deepEqual(Array.from(i.data), [-1n, 2n, -3n, -(2n ** 40n), 0n, 7n]);
  });

  it('float16 outputs are the half-precision bits (Cast float32 -> float16)', async () => {
    const cast = oneOp('Cast', 'float32', 'float16', [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DataType.FLOAT16 }]);
    const out = (await runOnce(cast, { x: { dims: [2, 3], data: Float32Array.from([1, -2, 0.5, 65504, Infinity, -0]) } })).y;
    assert.equal(out.dtype, 'float16');
    assert.ok(out.data instanceof Uint16Array);
    assert.deepEqual(Array.from(out.data), [0x3c00, 0xc000, 0x3800, 0x7bff, 0x7c00, 0x8000]);
  });
});

describe('errors', () => {
  const model = () => {
    const b = new GraphBuilder({ name: 'e', opset: 13 });
    b.output(b.relu(b.input('x', [1, 2])), [1, 2]);
    return b.build();
  };

  it('a wrong shape, a wrong dtype or a missing input is an InferenceError naming the model', async () => {
    const bytes = model();
    const s = await createSession(bytes, 'tile 3', { threads: 1 });
    try {
      const bad: Record<string, Tensor>[] = [
        { x: { dims: [1, 3], data: new Float32Array(3) } },
        { x: { dims: [1, 2], data: new BigInt64Array(2) } },
        { other: { dims: [1, 2], data: new Float32Array(2) } },
        {},
      ];
      for (const feeds of bad) {
        await assert.rejects(s.run(feeds), (e: Error) => e instanceof InferenceError && /^tile 3: inference failed: /.test(e.message), JSON.stringify(Object.keys(feeds)));
      }
      // The session still works after a failed run.
      const ok = await s.run({ x: { dims: [1, 2], data: Float32Array.from([-1, 1]) } });
      assert.deepEqual(Array.from(asFloat32(ok[s.outputNames[0]], 'out').data), [0, 1]);
    } finally {
      await s.release();
    }
  });

  it('bfloat16 feeds are refused before ORT sees them, naming the input', async () => {
    await assert.rejects(runOnce(model(), { x: makeTensor('bfloat16', [1, 2], new Uint16Array(2)) }, 'mb'), (e: Error) => e instanceof InferenceError && e.message === 'mb: input x is bfloat16, which onnxruntime-node cannot feed');
  });

  it('asFloat32 names what is not float32', () => {
    const t = makeTensor('int32', [1], new Int32Array(1));
    assert.throws(() => asFloat32(t, 'output y'), (e: Error) => e instanceof InferenceError && e.message === 'output y: is int32, expected float32');
    const f = { dims: [1], data: new Float32Array(1) };
    assert.equal(asFloat32(f, 'f').data, f.data);
  });
});
