import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { monolithic } from '../../src/exec/verify.ts';
import { textBoxes } from '../../src/vision/db.ts';
import { detInput, detInputSize, ppocrDetModelPath } from '../../src/vision/ppocr.ts';
import { renderTextPage, type PageLine } from '../../src/bench/pages.ts';

const modelPath = ppocrDetModelPath();

/** Whether a point lies inside a convex quadrilateral (corners in order). */
function inside(p: [number, number], q: [number, number][]): boolean {
  let sign = 0;
  for (let i = 0; i < 4; i++) {
    const [ax, ay] = q[i];
    const [bx, by] = q[(i + 1) % 4];
    const c = Math.sign((bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax));
    if (c !== 0) { if (sign !== 0 && c !== sign) return false; sign = c; }
  }
  return true;
}

describe('PP-OCR text detection input sizes', () => {
  it('keeps full resolution up to the side limit, in multiples of 32 (rounded half to even, as Python does)', () => {
    assert.deepEqual(detInputSize(1200, 1600, { maxSide: 4096, multipleOf: 32 }), { height: 1216, width: 1600 });
    assert.deepEqual(detInputSize(2400, 3200, { maxSide: 4096, multipleOf: 32 }), { height: 2400, width: 3200 });
    assert.deepEqual(detInputSize(8000, 4000, { maxSide: 4096, multipleOf: 32 }), { height: 4096, width: 2048 });
    // 48/32 = 1.5 rounds to 2 (even), 80/32 = 2.5 rounds to 2.
    assert.deepEqual(detInputSize(48, 80, { maxSide: 4096, multipleOf: 32 }), { height: 64, width: 64 });
    assert.deepEqual(detInputSize(5, 5, { maxSide: 4096, multipleOf: 32 }), { height: 32, width: 32 });
  });
});

describe('DB post-processing on PP-OCRv4 det', () => {
  it('finds a box over every line of a rendered page, in original-image pixels', async () => {
    const { png, lines } = await renderTextPage(800, 600, 3);
    const { tensor, image } = await detInput(png);
    assert.deepEqual(image, { width: 800, height: 600 });
    assert.deepEqual(tensor.dims, [1, 3, 608, 800]);
    const out = await monolithic(await readFile(modelPath), tensor, 'x');
    const map = Object.values(out)[0];
    const [, , h, w] = map.dims;
    const boxes = await textBoxes(map.data as Float32Array, h, w, image);
    assert.ok(boxes.length >= lines.length, `${boxes.length} boxes for ${lines.length} lines`);
    for (const l of lines) {
      const covered = (x: number) => boxes.some((b) => inside([x, l.y + l.height / 2], b.points));
      // Both ends and the middle of each line are inside a box.
      for (const x of [l.x + l.height * 0.5, l.x + l.width / 2, l.x + l.width - l.height * 0.5]) {
        assert.ok(covered(x), `line "${l.text}" at y=${l.y.toFixed(0)}: x=${x.toFixed(0)} not covered by ${JSON.stringify(boxes.map((b) => b.points))}`);
      }
    }
    for (const b of boxes) {
      assert.ok(b.score >= 0.6 && b.score <= 1);
      // Every box sits on a line: its centre is within a line's band.
      const cy = b.points.reduce((a, p) => a + p[1], 0) / 4;
      assert.ok(lines.some((l: PageLine) => Math.abs(cy - (l.y + l.height / 2)) < l.height), `box ${JSON.stringify(b.points)} is on no line`);
    }
  });

  it('finds nothing on a blank map, and rejects a map of the wrong size', async () => {
    assert.deepEqual(await textBoxes(new Float32Array(64 * 64), 64, 64, { width: 64, height: 64 }), []);
    await assert.rejects(textBoxes(new Float32Array(10), 64, 64, { width: 64, height: 64 }), /10 values, not 64x64/);
  });
});
