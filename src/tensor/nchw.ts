import type { Region } from '../plan/schema.ts';
import { dtypeOf, zerosOf, type FloatTensor, type Tensor, type TensorData } from './dtype.ts';

/**
 * Regions of NCHW maps of any dtype. Rows are copied with the typed arrays' own subarray/set,
 * so every element size moves bit for bit (float16 as its bits, bool as bytes).
 */
interface Rows { subarray(a: number, b: number): Rows; set(src: Rows, offset: number): void }
const rows = (d: TensorData) => d as unknown as Rows;

function sameDtype(a: Tensor, b: Tensor, what: string): void {
  if (dtypeOf(a) !== dtypeOf(b)) throw new TypeError(`${what}: ${dtypeOf(b)} tile into a ${dtypeOf(a)} map`);
}

/** Copies region r (rows y0..y1, cols x0..x1) of every N,C plane of an NCHW tensor. */
export function cropRegion<T extends Tensor>(t: T, r: Region): T {
  const [n, c, h, w] = t.dims;
  const rh = r.y1 - r.y0;
  const rw = r.x1 - r.x0;
  if (r.y0 < 0 || r.x0 < 0 || r.y1 > h || r.x1 > w || rh <= 0 || rw <= 0) {
    throw new RangeError(`region [${r.y0},${r.y1})x[${r.x0},${r.x1}) is outside the ${h}x${w} map`);
  }
  if (rh === h && rw === w) return { ...t, dims: t.dims.slice() };
  const out = zerosOf(dtypeOf(t), [n, c, rh, rw]);
  const src = rows(t.data);
  const dst = rows(out.data);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < rh; y++) {
      const s = p * h * w + (r.y0 + y) * w + r.x0;
      dst.set(src.subarray(s, s + rw), (p * rh + y) * rw);
    }
  }
  return out as T;
}

/** Writes `src` (covering exactly region r) into `dst`. */
export function pasteRegion(dst: Tensor, src: Tensor, r: Region): void {
  const [n, c, h, w] = dst.dims;
  const rh = r.y1 - r.y0;
  const rw = r.x1 - r.x0;
  if (src.dims[0] !== n || src.dims[1] !== c || src.dims[2] !== rh || src.dims[3] !== rw) {
    throw new RangeError(`tile of shape [${src.dims.join(',')}] does not fit region [${r.y0},${r.y1})x[${r.x0},${r.x1}) of [${dst.dims.join(',')}]`);
  }
  sameDtype(dst, src, 'pasteRegion');
  const s = rows(src.data);
  const d = rows(dst.data);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < rh; y++) {
      d.set(s.subarray((p * rh + y) * rw, (p * rh + y + 1) * rw), p * h * w + (r.y0 + y) * w + r.x0);
    }
  }
}

/** A zero float32 map (the float32 case of `zerosOf`). */
export function zeros(dims: number[]): FloatTensor {
  return { dims, data: new Float32Array(dims.reduce((a, b) => a * b, 1)) };
}
export { zerosOf };

/**
 * Copies region `r` (global coordinates) from `src`, which covers `srcAt`, into `dst`, which
 * covers `dstAt`: one pass, no intermediate crop (a worker's own cell can be most of a map).
 */
export function copyRegion(dst: Tensor, dstAt: Region, src: Tensor, srcAt: Region, r: Region): void {
  const [n, c, sh, sw] = src.dims;
  const [, , dh, dw] = dst.dims;
  const rh = r.y1 - r.y0;
  const rw = r.x1 - r.x0;
  if (r.y0 < srcAt.y0 || r.x0 < srcAt.x0 || r.y1 > srcAt.y0 + sh || r.x1 > srcAt.x0 + sw || r.y0 < dstAt.y0 || r.x0 < dstAt.x0 || r.y1 > dstAt.y0 + dh || r.x1 > dstAt.x0 + dw) {
    throw new RangeError(`region [${r.y0},${r.y1})x[${r.x0},${r.x1}) is not inside both tensors`);
  }
  sameDtype(dst, src, 'copyRegion');
  const sd = rows(src.data);
  const dd = rows(dst.data);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < rh; y++) {
      const s = p * sh * sw + (r.y0 - srcAt.y0 + y) * sw + (r.x0 - srcAt.x0);
      dd.set(sd.subarray(s, s + rw), p * dh * dw + (r.y0 - dstAt.y0 + y) * dw + (r.x0 - dstAt.x0));
    }
  }
}
