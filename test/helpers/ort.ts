/** Test helper: run a whole model once through the project's ORT wrapper (src/runtime/ort.ts). */
import { asFloat32, createSession, type FloatTensor, type Tensor } from '../../src/runtime/ort.ts';

export type F32Tensor = FloatTensor;

/** Outputs of any dtype (float16 as bits, bool as bytes). */
export async function runOrtTyped(modelBytes: Uint8Array, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await createSession(modelBytes, 'test model');
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Float32 outputs (an output of another dtype is an error naming it). */
export async function runOrt(modelBytes: Uint8Array, feeds: Record<string, Tensor>): Promise<Record<string, F32Tensor>> {
  const out = await runOrtTyped(modelBytes, feeds);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, asFloat32(v, `output ${k}`)]));
}
