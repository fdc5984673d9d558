/** Test helper: run a whole model once through the project's ORT wrapper (src/runtime/ort.ts). */
import { createSession, type FloatTensor } from '../../src/runtime/ort.ts';

export type F32Tensor = FloatTensor;

export async function runOrt(modelBytes: Uint8Array, feeds: Record<string, F32Tensor>): Promise<Record<string, F32Tensor>> {
  const session = await createSession(modelBytes, 'test model');
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}
