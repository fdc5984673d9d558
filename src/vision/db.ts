import ClipperLib from 'clipper-lib';
import { z } from 'zod';
import { openCv, type Mat, type OpenCv } from './opencv.ts';

/**
 * DB (Differentiable Binarization) post-processing as PaddleOCR's DBPostProcess does it, with
 * its PP-OCRv4 defaults: binarize the probability map, take each connected region's contour,
 * its minimum-area rectangle, the mean probability inside it (box score), grow the rectangle
 * by area * unclipRatio / perimeter (Clipper's round offset, as pyclipper does), and take the
 * grown polygon's rectangle again, scaled to the original image.
 */
export const dbOptionsSchema = z.object({
  /** Probability above which a pixel is text. */
  thresh: z.number().min(0).max(1).default(0.3),
  /** Mean probability a box needs to be kept. */
  boxThresh: z.number().min(0).max(1).default(0.6),
  unclipRatio: z.number().positive().max(10).default(1.5),
  maxCandidates: z.number().int().positive().default(1000),
  /** Shorter rectangle side below which a region is noise (map pixels). */
  minSize: z.number().nonnegative().default(3),
}).strict();
export type DbOptions = z.infer<typeof dbOptionsSchema>;

/** Four corners, clockwise from the top left, in original-image pixels; score in [0, 1]. */
export interface TextBox { points: [number, number][]; score: number }

type Pt = { x: number; y: number };

/** numpy's round: halves go to the even neighbour. */
const roundHalfEven = (v: number) => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** PaddleOCR's get_mini_boxes: the rectangle's corners ordered tl, tr, br, bl, and its shorter side. */
function miniBox(cv: OpenCv, contour: Mat): { box: Pt[]; side: number } {
  const rect = cv.minAreaRect(contour);
  const p = cv.RotatedRect.points(rect).map((q) => ({ x: q.x, y: q.y })).sort((a, b) => a.x - b.x);
  const [i1, i4] = p[1].y > p[0].y ? [0, 1] : [1, 0];
  const [i2, i3] = p[3].y > p[2].y ? [2, 3] : [3, 2];
  return { box: [p[i1], p[i2], p[i3], p[i4]], side: Math.min(rect.size.width, rect.size.height) };
}

/** PaddleOCR's box_score_fast: mean probability over the box polygon, rasterised in its bounding box. */
function boxScore(cv: OpenCv, prob: Float32Array, h: number, w: number, box: Pt[]): number {
  const clamp = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  const xmin = clamp(Math.floor(Math.min(...box.map((p) => p.x))), w - 1);
  const xmax = clamp(Math.ceil(Math.max(...box.map((p) => p.x))), w - 1);
  const ymin = clamp(Math.floor(Math.min(...box.map((p) => p.y))), h - 1);
  const ymax = clamp(Math.ceil(Math.max(...box.map((p) => p.y))), h - 1);
  const mh = ymax - ymin + 1;
  const mw = xmax - xmin + 1;
  const mask = new cv.Mat(mh, mw, cv.CV_8UC1);
  mask.data.fill(0);
  // fillPoly takes int32 points, truncated like numpy's astype("int32").
  const poly = cv.matFromArray(4, 1, cv.CV_32SC2, box.flatMap((p) => [Math.trunc(p.x - xmin), Math.trunc(p.y - ymin)]));
  const polys = new cv.MatVector();
  polys.push_back(poly);
  try {
    cv.fillPoly(mask, polys, new cv.Scalar(1));
    let sum = 0;
    let n = 0;
    for (let y = 0; y < mh; y++) {
      for (let x = 0; x < mw; x++) {
        if (mask.data[y * mw + x]) { sum += prob[(ymin + y) * w + xmin + x]; n++; }
      }
    }
    return n ? sum / n : 0;
  } finally {
    polys.delete();
    poly.delete();
    mask.delete();
  }
}

/** pyclipper's offset of the box by area * ratio / perimeter, on integer (truncated) points. */
function unclip(box: Pt[], ratio: number): Pt[][] {
  let area = 0;
  let length = 0;
  for (let i = 0; i < box.length; i++) {
    const a = box[i];
    const b = box[(i + 1) % box.length];
    area += a.x * b.y - b.x * a.y;
    length += Math.hypot(b.x - a.x, b.y - a.y);
  }
  const distance = (Math.abs(area) / 2) * ratio / length;
  const offset = new ClipperLib.ClipperOffset(2, 0.25);
  offset.AddPath(box.map((p) => ({ X: Math.trunc(p.x), Y: Math.trunc(p.y) })), ClipperLib.JoinType.jtRound, ClipperLib.EndType.etClosedPolygon);
  const out: ClipperLib.Paths = [];
  offset.Execute(out, distance);
  return out.map((path) => path.map((p) => ({ x: p.X, y: p.Y })));
}

/**
 * Boxes of the text in a probability map `prob` (h x w, the model's output for one image),
 * in the pixels of the original `image` (width x height), sorted top to bottom, then left to right.
 */
export async function textBoxes(prob: Float32Array, h: number, w: number, image: { width: number; height: number }, options: Partial<DbOptions> = {}): Promise<TextBox[]> {
  if (prob.length !== h * w) throw new RangeError(`probability map has ${prob.length} values, not ${h}x${w}`);
  const o = dbOptionsSchema.parse(options);
  const { cv } = await openCv();
  const bitmap = new cv.Mat(h, w, cv.CV_8UC1);
  for (let i = 0; i < prob.length; i++) bitmap.data[i] = prob[i] > o.thresh ? 255 : 0;
  const contours = new cv.MatVector();
  const hierarchy = new cv.Mat();
  const boxes: TextBox[] = [];
  try {
    cv.findContours(bitmap, contours, hierarchy, cv.RETR_LIST, cv.CHAIN_APPROX_SIMPLE);
    for (let i = 0; i < Math.min(contours.size(), o.maxCandidates); i++) {
      const contour = contours.get(i);
      let grown: Pt[][];
      let score: number;
      try {
        const { box, side } = miniBox(cv, contour);
        if (side < o.minSize) continue;
        score = boxScore(cv, prob, h, w, box);
        if (score < o.boxThresh) continue;
        grown = unclip(box, o.unclipRatio);
      } finally {
        contour.delete();
      }
      if (grown.length !== 1) continue;
      const pts = cv.matFromArray(grown[0].length, 1, cv.CV_32SC2, grown[0].flatMap((p) => [p.x, p.y]));
      let mini: { box: Pt[]; side: number };
      try { mini = miniBox(cv, pts); } finally { pts.delete(); }
      if (mini.side < o.minSize + 2) continue;
      const points = mini.box.map((p): [number, number] => [
        Math.min(Math.max(roundHalfEven((p.x / w) * image.width), 0), image.width),
        Math.min(Math.max(roundHalfEven((p.y / h) * image.height), 0), image.height),
      ]);
      boxes.push({ points: keepable(points, image), score });
    }
  } finally {
    hierarchy.delete();
    contours.delete();
    bitmap.delete();
  }
  // PaddleOCR's filter_tag_det_res: inside the image, and more than 3 pixels each way.
  const kept = boxes.filter((b) => Math.trunc(dist(b.points[0], b.points[1])) > 3 && Math.trunc(dist(b.points[0], b.points[3])) > 3);
  return kept.sort((a, b) => (a.points[0][1] - b.points[0][1]) || (a.points[0][0] - b.points[0][0]));
}

const dist = (a: [number, number], b: [number, number]) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** Corners clockwise from the top left (order_points_clockwise), clipped to the image. */
function keepable(points: [number, number][], image: { width: number; height: number }): [number, number][] {
  const byX = [...points].sort((a, b) => a[0] - b[0]);
  const [tl, bl] = byX.slice(0, 2).sort((a, b) => a[1] - b[1]);
  const [tr, br] = byX.slice(2).sort((a, b) => a[1] - b[1]);
  return [tl, tr, br, bl].map(([x, y]) => [Math.min(Math.max(x, 0), image.width - 1), Math.min(Math.max(y, 0), image.height - 1)]);
}
