import type { FloatTensor } from '../runtime/ort.ts';

/** Per (n, c) sum or max over a whole NCHW tensor: the partial of one worker's cell. */
export function partialOf(t: FloatTensor, op: 'sum' | 'mean' | 'max'): Float32Array {
  const [n, c, h, w] = t.dims;
  const hw = h * w;
  const out = new Float32Array(n * c);
  for (let p = 0; p < n * c; p++) {
    const plane = t.data.subarray(p * hw, (p + 1) * hw);
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
