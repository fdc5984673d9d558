import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { samePads, splitAxis, windowBackward, windowOutSize, type AxisWindow } from '../../src/tiling/geometry.ts';

// Hand-computed receptive fields (output interval -> input interval it reads, unclipped).
const w = (k: number, s: number, d: number, p0: number, p1: number): AxisWindow => ({ k, s, d, p0, p1 });

describe('windowBackward: hand-computed fixtures', () => {
  const cases: [string, AxisWindow, [number, number], [number, number]][] = [
    ['3x3 s1 p1, first row', w(3, 1, 1, 1, 1), [0, 1], [-1, 2]],
    ['3x3 s1 p1, rows 4..8', w(3, 1, 1, 1, 1), [4, 8], [3, 9]],
    ['7x7 s2 p3 stem, outputs 0..56 of 112', w(7, 2, 1, 3, 3), [0, 56], [-3, 114]],
    ['7x7 s2 p3 stem, outputs 56..112', w(7, 2, 1, 3, 3), [56, 112], [109, 226]],
    ['1x1 s2 projection', w(1, 2, 1, 0, 0), [3, 7], [6, 13]],
    ['3x3 dilation 2 (extent 5)', w(3, 1, 2, 2, 2), [10, 12], [8, 14]],
    ['3x3 s2 maxpool p1', w(3, 2, 1, 1, 1), [28, 56], [55, 112]],
    ['asymmetric pads 0/2, k4 s3', w(4, 3, 1, 0, 2), [1, 3], [3, 10]],
    ['k2 s2 no pad', w(2, 2, 1, 0, 0), [5, 6], [10, 12]],
  ];
  for (const [name, win, [o0, o1], [i0, i1]] of cases) {
    it(name, () => assert.deepEqual(windowBackward({ start: o0, end: o1 }, win), { start: i0, end: i1 }));
  }
});

describe('windowOutSize', () => {
  it('floor mode', () => {
    assert.equal(windowOutSize(224, w(7, 2, 1, 3, 3)), 112);
    assert.equal(windowOutSize(112, w(3, 2, 1, 1, 1)), 56);
    assert.equal(windowOutSize(7, w(3, 2, 1, 0, 0)), 3);
    assert.equal(windowOutSize(10, w(3, 1, 3, 0, 0)), 4); // extent 7
  });
  it('ceil mode adds the overhanging window', () => {
    assert.equal(windowOutSize(8, w(3, 2, 1, 0, 0), true), 4); // floor gives 3
    assert.equal(windowOutSize(112, w(3, 2, 1, 0, 0), true), 56);
  });
  it('ceil mode never starts a window in the end padding', () => {
    // in=5, k=2, s=2, p=1/1: ceil((5+2-2)/2)+1 = 4, but window 3 would start at 6-1=5 >= in+p0... kept? (3*2=6 >= 5+1) -> dropped
    assert.equal(windowOutSize(5, w(2, 2, 1, 1, 1), true), 3);
  });
});

describe('samePads', () => {
  it('SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the start', () => {
    assert.deepEqual(samePads(224, 7, 2, 1, true), [2, 3]);
    assert.deepEqual(samePads(224, 7, 2, 1, false), [3, 2]);
    assert.deepEqual(samePads(5, 3, 1, 1, true), [1, 1]);
    assert.deepEqual(samePads(6, 1, 2, 1, true), [0, 0]);
    assert.deepEqual(samePads(7, 3, 1, 2, true), [2, 2]);
  });
});

describe('splitAxis', () => {
  it('splits unevenly with sizes differing by at most one and covering the axis', () => {
    const parts = [0, 1, 2].map((i) => splitAxis(7, 3, i));
    assert.deepEqual(parts, [{ start: 0, end: 2 }, { start: 2, end: 4 }, { start: 4, end: 7 }]);
  });
});
