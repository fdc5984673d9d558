import { mulberry32 } from '../onnx/builder.ts';
import type { FloatTensor } from '../runtime/ort.ts';

/** Seeded uniform [-1, 1) tensor: the same input on every machine for verification runs. */
export function randomTensor(dims: number[], seed: number): FloatTensor {
  const rand = mulberry32(seed);
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rand() * 2 - 1;
  return { dims, data };
}

export function compareTensors(ref: FloatTensor, got: FloatTensor): { maxAbsDiff: number; maxRef: number } {
  if (ref.dims.join() !== got.dims.join()) throw new Error(`shape mismatch: reference [${ref.dims}] vs partitioned [${got.dims}]`);
  let maxAbsDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.data.length; i++) {
    const d = Math.abs(ref.data[i] - got.data[i]);
    if (!(d <= maxAbsDiff)) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
    maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
  }
  return { maxAbsDiff, maxRef };
}
