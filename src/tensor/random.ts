import { mulberry32 } from '../onnx/builder.ts';
import { toFloat32, type FloatTensor, type Tensor } from './dtype.ts';

/** Seeded uniform [-1, 1) tensor: the same input on every machine for verification runs. */
export function randomTensor(dims: number[], seed: number): FloatTensor {
  const rand = mulberry32(seed);
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rand() * 2 - 1;
  return { dims, data };
}

/** Compares values of any dtypes (as float32: float16 and int8 outputs are exact in it). */
export function compareTensors(ref: Tensor, got: Tensor): { maxAbsDiff: number; maxRef: number } {
  if (ref.dims.join() !== got.dims.join()) throw new Error(`shape mismatch: reference [${ref.dims}] vs partitioned [${got.dims}]`);
  const a = toFloat32(ref);
  const b = toFloat32(got);
  let maxAbsDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= maxAbsDiff)) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
    maxRef = Math.max(maxRef, Math.abs(a[i]));
  }
  return { maxAbsDiff, maxRef };
}
