/** Test helper: seeded tensor data of every boundary dtype. */
import { mulberry32 } from '../../src/onnx/builder.ts';
import { floatToBfloat16, floatToHalf, type DType, type TensorData } from '../../src/tensor/dtype.ts';

/** Seeded data of every dtype, with each type's edge values (bits for float16/bfloat16). */
export function sample(dtype: DType, n: number, seed: number): TensorData {
  const r = mulberry32(seed);
  const pick = <T>(edges: T[], f: () => T) => Array.from({ length: n }, (_, i) => (i < edges.length ? edges[i] : f()));
  switch (dtype) {
    case 'float32': return Float32Array.from(pick([0, -0, Infinity, -Infinity, NaN, 3.4028234663852886e38, 1.4e-45], () => (r() * 2 - 1) * 100));
    case 'float16': return Uint16Array.from(pick([0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7bff, 0x0001], () => floatToHalf((r() * 2 - 1) * 100)));
    case 'bfloat16': return Uint16Array.from(pick([0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x7f7f, 0x0001], () => floatToBfloat16((r() * 2 - 1) * 1e6)));
    case 'int8': return Int8Array.from(pick([-128, 127, 0, -1], () => Math.floor(r() * 256) - 128));
    case 'uint8': return Uint8Array.from(pick([0, 255, 1], () => Math.floor(r() * 256)));
    case 'int32': return Int32Array.from(pick([-(2 ** 31), 2 ** 31 - 1, 0, -1], () => Math.floor(r() * 2 ** 32) - 2 ** 31));
    case 'int64': return BigInt64Array.from(pick([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n], () => BigInt(Math.floor(r() * 2 ** 52)) * (r() < 0.5 ? -4097n : 4099n)));
    case 'bool': return Uint8Array.from(pick([0, 1], () => (r() < 0.5 ? 1 : 0)));
  }
}

