import type { FloatTensor } from '../runtime/ort.ts';
import type { ResponseOutput } from './oip.ts';

/**
 * The `mask` output of a segmentation model: per pixel, the index of the largest class score
 * of its [N,K,H,W] output (ties: the lower class), INT32 [N,H,W].
 */
export function segmentationMask(out: FloatTensor): ResponseOutput {
  const [n, k, h, w] = out.dims;
  const plane = h * w;
  const mask = new Int32Array(n * plane);
  for (let b = 0; b < n; b++) {
    const base = b * k * plane;
    for (let i = 0; i < plane; i++) {
      let best = 0;
      let max = out.data[base + i];
      for (let c = 1; c < k; c++) {
        const v = out.data[base + c * plane + i];
        if (v > max) { max = v; best = c; }
      }
      mask[b * plane + i] = best;
    }
  }
  return { name: 'mask', shape: [n, h, w], datatype: 'INT32', data: mask };
}
