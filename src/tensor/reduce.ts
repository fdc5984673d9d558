import { dtypeOf, isFloatDtype, toFloat32, type Tensor } from './dtype.ts';

/**
 * Per (n, c) sum or max over a whole NCHW tensor: the partial of one worker's cell. Partials
 * are float32 whatever the map's float dtype (float16 and bfloat16 values are exact in float32),
 * so summing cells in worker order loses no more than ORT's own float accumulation.
 */
export function partialOf(t: Tensor, op: 'sum' | 'mean' | 'max'): Float32Array {
  const dtype = dtypeOf(t);
  if (!isFloatDtype(dtype)) throw new TypeError(`distributed reductions take float maps, not ${dtype}`);
  const [n, c, h, w] = t.dims;
  const hw = h * w;
  const data = toFloat32(t);
  const out = new Float32Array(n * c);
  for (let p = 0; p < n * c; p++) {
    const plane = data.subarray(p * hw, (p + 1) * hw);
    if (op === 'max') {
      let m = -Infinity;
      for (let i = 0; i < hw; i++) if (plane[i] > m || Number.isNaN(plane[i])) m = plane[i];
      out[p] = m;
    } else {
      let s = 0;
      for (let i = 0; i < hw; i++) s += plane[i];
      out[p] = s;
    }
  }
  return out;
}

/** Combines partials (in worker order, so every worker gets the same bits) into the reduction. */
export function combinePartials(parts: Float32Array[], op: 'sum' | 'mean' | 'max', count: number): Float32Array {
  const out = new Float32Array(parts[0].length);
  for (let i = 0; i < out.length; i++) {
    let v = op === 'max' ? -Infinity : 0;
    for (const p of parts) v = op === 'max' ? (p[i] > v || Number.isNaN(p[i]) ? p[i] : v) : v + p[i];
    out[i] = op === 'mean' ? v / count : v;
  }
  return out;
}
