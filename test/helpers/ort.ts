/** Test-only helper: run an ONNX model with onnxruntime-node (CPU). */
import * as ort from 'onnxruntime-node';

export interface F32Tensor {
  dims: number[];
  data: Float32Array;
}

export async function runOrt(
  modelBytes: Uint8Array,
  feeds: Record<string, F32Tensor>,
): Promise<Record<string, F32Tensor>> {
  const session = await ort.InferenceSession.create(
    Buffer.from(modelBytes.buffer, modelBytes.byteOffset, modelBytes.byteLength),
  );
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', t.data, t.dims);
    const results = await session.run(ortFeeds);
    const out: Record<string, F32Tensor> = {};
    for (const [name, t] of Object.entries(results)) {
      if (t.type !== 'float32') throw new Error(`output ${name} has type ${t.type}, expected float32`);
      out[name] = { dims: t.dims.slice(), data: new Float32Array(t.data as Float32Array) };
    }
    return out;
  } finally {
    await session.release();
  }
}
