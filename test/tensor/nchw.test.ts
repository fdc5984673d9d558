import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyRegion, cropRegion, pasteRegion, zerosOf } from '../../src/tensor/nchw.ts';
import { DTYPES, dtypeOf, makeTensor, type Tensor } from '../../src/tensor/dtype.ts';
import { sample } from '../helpers/dtypes.ts';

/** Element (n, c, y, x) of an NCHW tensor as comparable bits. */
const at = (t: Tensor, n: number, c: number, y: number, x: number) => {
  const [, C, H, W] = t.dims;
  return String(t.data[((n * C + c) * H + y) * W + x]);
};

describe('regions of NCHW maps of every dtype move bit for bit', () => {
  for (const d of DTYPES) {
    it(`${d}: crop, paste and copy`, () => {
      const [N, C, H, W] = [2, 3, 7, 5];
      const t = makeTensor(d, [N, C, H, W], sample(d, N * C * H * W, 21));
      const r = { y0: 2, y1: 6, x0: 1, x1: 4 };
      const c = cropRegion(t, r);
      assert.equal(dtypeOf(c), d);
      assert.deepEqual(c.dims, [N, C, 4, 3]);
      for (let n = 0; n < N; n++) for (let k = 0; k < C; k++) for (let y = 0; y < 4; y++) for (let x = 0; x < 3; x++) {
        assert.equal(at(c, n, k, y, x), at(t, n, k, y + 2, x + 1));
      }
      const back = zerosOf(d, [N, C, H, W]);
      pasteRegion(back, c, r);
      const whole = zerosOf(d, [N, C, H, W]);
      for (const q of [{ y0: 0, y1: 3, x0: 0, x1: 5 }, { y0: 3, y1: 7, x0: 0, x1: 2 }, { y0: 3, y1: 7, x0: 2, x1: 5 }]) {
        copyRegion(whole, { y0: 0, y1: H, x0: 0, x1: W }, t, { y0: 0, y1: H, x0: 0, x1: W }, q);
      }
      for (let n = 0; n < N; n++) for (let k = 0; k < C; k++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
        const inside = y >= 2 && y < 6 && x >= 1 && x < 4;
        assert.equal(at(back, n, k, y, x), inside ? at(t, n, k, y, x) : String(zerosOf(d, [1]).data[0]));
        assert.equal(at(whole, n, k, y, x), at(t, n, k, y, x));
      }
      // A whole-map crop shares the data and keeps the dtype.
      const same = cropRegion(t, { y0: 0, y1: H, x0: 0, x1: W });
      assert.equal(same.data, t.data);
      assert.equal(dtypeOf(same), d);
    });
  }

  it('refuses to paste a tile of another dtype', () => {
    const dst = zerosOf('float16', [1, 1, 2, 2]);
    assert.throws(() => pasteRegion(dst, zerosOf('float32', [1, 1, 1, 1]), { y0: 0, y1: 1, x0: 0, x1: 1 }), /float32 tile into a float16 map/);
    assert.throws(() => copyRegion(dst, { y0: 0, y1: 2, x0: 0, x1: 2 }, zerosOf('bool', [1, 1, 2, 2]), { y0: 0, y1: 2, x0: 0, x1: 2 }, { y0: 0, y1: 1, x0: 0, x1: 1 }), /bool tile into a float16 map/);
  });
});
