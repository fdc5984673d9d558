import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { combinePartials, partialOf } from '../../src/tensor/reduce.ts';
import { cropRegion } from '../../src/tensor/nchw.ts';
import { randomTensor } from '../../src/tensor/random.ts';
import type { FloatTensor } from '../../src/runtime/ort.ts';

const t = (dims: number[], values: number[]): FloatTensor => ({ dims, data: Float32Array.from(values) });
const arr = (a: Float32Array) => Array.from(a);

describe('partialOf: one worker cell, per (n, c)', () => {
  // 1x2x2x3: channel 0 is 1..6, channel 1 is -1..-6.
  const x = t([1, 2, 2, 3], [1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6]);

  it('sum and mean give the plane sums (mean divides only when combined)', () => {
    assert.deepEqual(arr(partialOf(x, 'sum')), [21, -21]);
    assert.deepEqual(arr(partialOf(x, 'mean')), [21, -21]);
  });

  it('max gives the plane maxima, negative planes included', () => {
    assert.deepEqual(arr(partialOf(x, 'max')), [6, -1]);
  });

  it('batch 2: partials are laid out n-major, one per image and channel', () => {
    // 2x1x2x2: image 0 is 1,2,3,4; image 1 is 0.5,-0.5,8,-8.
    const b = t([2, 1, 2, 2], [1, 2, 3, 4, 0.5, -0.5, 8, -8]);
    assert.deepEqual(arr(partialOf(b, 'sum')), [10, 0]);
    assert.deepEqual(arr(partialOf(b, 'max')), [4, 8]);
    const b2 = t([2, 2, 1, 1], [3, -4, 5, -6]);
    assert.deepEqual(arr(partialOf(b2, 'sum')), [3, -4, 5, -6]);
  });

  it('a NaN makes the max NaN', () => {
    assert.ok(Number.isNaN(partialOf(t([1, 1, 1, 3], [1, NaN, 2]), 'max')[0]));
    assert.ok(Number.isNaN(combinePartials([Float32Array.from([1]), Float32Array.from([NaN]), Float32Array.from([2])], 'max', 3)[0]));
  });
});

describe('combinePartials: the reduction from the cells in worker order', () => {
  it('sums, maxes, and divides the mean by the whole map area', () => {
    const parts = [Float32Array.from([1, -2]), Float32Array.from([4, 3]), Float32Array.from([-0.5, 7])];
    assert.deepEqual(arr(combinePartials(parts, 'sum', 99)), [4.5, 8]);
    assert.deepEqual(arr(combinePartials(parts, 'mean', 10)), [0.45, 0.8].map(Math.fround));
    assert.deepEqual(arr(combinePartials(parts, 'max', 99)), [4, 7]);
    // All-negative partials: the max is not clamped at 0.
    assert.deepEqual(arr(combinePartials([Float32Array.from([-3]), Float32Array.from([-2])], 'max', 2)), [-2]);
  });

  it('one partial is the reduction itself', () => {
    const x = t([1, 1, 2, 2], [1, 2, 3, 6]);
    assert.deepEqual(arr(combinePartials([partialOf(x, 'mean')], 'mean', 4)), [3]);
  });

  // A 3x5 map cut unevenly into 2x3, 2x2, 1x3 and 1x2 cells (a 2x2 grid on odd sides).
  //   channel 0: i = 0..14            (sum 105, max 14)
  //   channel 1: (-1)^i * i           (sum 56 - 49 = 7, max 14)
  // Image 1 is image 0 negated.
  const values = (sign: number) => [...Array.from({ length: 15 }, (_, i) => sign * i + 0), ...Array.from({ length: 15 }, (_, i) => sign * (i % 2 ? -i : i) + 0)];
  const map = t([2, 2, 3, 5], [...values(1), ...values(-1)]);
  const cells = [
    { y0: 0, y1: 2, x0: 0, x1: 3 }, // indices 0 1 2 / 5 6 7
    { y0: 0, y1: 2, x0: 3, x1: 5 }, // 3 4 / 8 9
    { y0: 2, y1: 3, x0: 0, x1: 3 }, // 10 11 12
    { y0: 2, y1: 3, x0: 3, x1: 5 }, // 13 14
  ];

  it('partials of the uneven cells, by hand', () => {
    const sums = cells.map((r) => arr(partialOf(cropRegion(map, r), 'sum')));
    assert.deepEqual(sums, [
      [21, -5, -21, 5], // 0+1+2+5+6+7; 0-1+2-5+6-7
      [24, 0, -24, 0], // 3+4+8+9; -3+4+8-9
      [33, 11, -33, -11], // 10+11+12; 10-11+12
      [27, 1, -27, -1], // 13+14; -13+14
    ]);
    const maxes = cells.map((r) => arr(partialOf(cropRegion(map, r), 'max')));
    assert.deepEqual(maxes, [[7, 6, 0, 7], [9, 8, -3, 9], [12, 12, -10, 11], [14, 14, -13, 13]]);
  });

  it('combined, they equal the whole-map reduction (sum, mean, max; batch 2)', () => {
    for (const op of ['sum', 'mean', 'max'] as const) {
      const parts = cells.map((r) => partialOf(cropRegion(map, r), op));
      const got = arr(combinePartials(parts, op, 15));
      const whole = arr(combinePartials([partialOf(map, op)], op, 15));
      assert.deepEqual(got, whole, op);
    }
    assert.deepEqual(arr(combinePartials(cells.map((r) => partialOf(cropRegion(map, r), 'sum')), 'sum', 15)), [105, 7, -105, -7]);
    assert.deepEqual(arr(combinePartials(cells.map((r) => partialOf(cropRegion(map, r), 'mean')), 'mean', 15)), [7, 7 / 15, -7, -7 / 15].map(Math.fround));
    assert.deepEqual(arr(combinePartials(cells.map((r) => partialOf(cropRegion(map, r), 'max')), 'max', 15)), [14, 14, 0, 13]);
  });

  it('on random data an uneven 3x2 split matches the whole map to float rounding, the max exactly', () => {
    const x = randomTensor([2, 3, 13, 17], 5);
    const rows = [0, 5, 9, 13];
    const cols = [0, 9, 17];
    const split: { y0: number; y1: number; x0: number; x1: number }[] = [];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) split.push({ y0: rows[i], y1: rows[i + 1], x0: cols[j], x1: cols[j + 1] });
    for (const op of ['sum', 'mean', 'max'] as const) {
      const got = combinePartials(split.map((r) => partialOf(cropRegion(x, r), op)), op, 13 * 17);
      const want = combinePartials([partialOf(x, op)], op, 13 * 17);
      for (let i = 0; i < want.length; i++) {
        if (op === 'max') assert.equal(got[i], want[i]);
        else assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i])), `${op}[${i}]: ${got[i]} vs ${want[i]}`);
      }
    }
  });
});

describe('partials of float16 and bfloat16 maps', () => {
  it('are float32 sums and maxima of the exact values', async () => {
    const { floatToHalf, floatToBfloat16, halfToFloat } = await import('../../src/tensor/dtype.ts');
    const v = [0.1, -2.5, 3.3, 65504, -0.001, 7];
    const h = { dtype: 'float16' as const, dims: [1, 2, 1, 3], data: Uint16Array.from(v.map(floatToHalf)) };
    const exact = v.map((x) => halfToFloat(floatToHalf(x)));
    assert.deepEqual(arr(partialOf(h, 'sum')), [Math.fround(exact[0] + exact[1] + exact[2]), Math.fround(exact[3] + exact[4] + exact[5])]);
    assert.deepEqual(arr(partialOf(h, 'max')), [exact[2], exact[3]]);
    const b = { dtype: 'bfloat16' as const, dims: [1, 1, 1, 2], data: Uint16Array.from([1.5, 2.25].map(floatToBfloat16)) };
    assert.deepEqual(arr(partialOf(b, 'sum')), [3.75]);
  });

  it('integer maps are refused', () => {
    assert.throws(() => partialOf({ dtype: 'int8', dims: [1, 1, 1, 1], data: Int8Array.from([1]) }, 'sum'), /distributed reductions take float maps, not int8/);
  });
});
