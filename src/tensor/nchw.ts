import type { FloatTensor } from '../runtime/ort.ts';
import type { TileRegion } from '../tiling/geometry.ts';

/** Copies region r (rows y0..y1, cols x0..x1) of every N,C plane of an NCHW tensor. */
export function cropRegion(t: FloatTensor, r: TileRegion): FloatTensor {
  const [n, c, h, w] = t.dims;
  const rh = r.y1 - r.y0;
  const rw = r.x1 - r.x0;
  if (r.y0 < 0 || r.x0 < 0 || r.y1 > h || r.x1 > w || rh <= 0 || rw <= 0) {
    throw new RangeError(`region [${r.y0},${r.y1})x[${r.x0},${r.x1}) is outside the ${h}x${w} map`);
  }
  if (rh === h && rw === w) return { dims: t.dims.slice(), data: t.data };
  const out = new Float32Array(n * c * rh * rw);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < rh; y++) {
      const src = p * h * w + (r.y0 + y) * w + r.x0;
      out.set(t.data.subarray(src, src + rw), (p * rh + y) * rw);
    }
  }
  return { dims: [n, c, rh, rw], data: out };
}

/** Writes `src` (covering exactly region r) into `dst`. */
export function pasteRegion(dst: FloatTensor, src: FloatTensor, r: TileRegion): void {
  const [n, c, h, w] = dst.dims;
  const rh = r.y1 - r.y0;
  const rw = r.x1 - r.x0;
  if (src.dims[0] !== n || src.dims[1] !== c || src.dims[2] !== rh || src.dims[3] !== rw) {
    throw new RangeError(`tile of shape [${src.dims.join(',')}] does not fit region [${r.y0},${r.y1})x[${r.x0},${r.x1}) of [${dst.dims.join(',')}]`);
  }
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < rh; y++) {
      const d = p * h * w + (r.y0 + y) * w + r.x0;
      dst.data.set(src.data.subarray((p * rh + y) * rw, (p * rh + y + 1) * rw), d);
    }
  }
}

export function zeros(dims: number[]): FloatTensor {
  return { dims, data: new Float32Array(dims.reduce((a, b) => a * b, 1)) };
}

/**
 * Copies region `r` (global coordinates) from `src`, which covers `srcAt`, into `dst`, which
 * covers `dstAt`: one pass, no intermediate crop (a worker's own cell can be most of a map).
 */
export function copyRegion(dst: FloatTensor, dstAt: TileRegion, src: FloatTensor, srcAt: TileRegion, r: TileRegion): void {
  const [n, c, sh, sw] = src.dims;
  const [, , dh, dw] = dst.dims;
  const rh = r.y1 - r.y0;
  const rw = r.x1 - r.x0;
  if (r.y0 < srcAt.y0 || r.x0 < srcAt.x0 || r.y1 > srcAt.y0 + sh || r.x1 > srcAt.x0 + sw || r.y0 < dstAt.y0 || r.x0 < dstAt.x0 || r.y1 > dstAt.y0 + dh || r.x1 > dstAt.x0 + dw) {
    throw new RangeError(`region [${r.y0},${r.y1})x[${r.x0},${r.x1}) is not inside both tensors`);
  }
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < rh; y++) {
      const s = p * sh * sw + (r.y0 - srcAt.y0 + y) * sw + (r.x0 - srcAt.x0);
      dst.data.set(src.data.subarray(s, s + rw), p * dh * dw + (r.y0 - dstAt.y0 + y) * dw + (r.x0 - dstAt.x0));
    }
  }
}
