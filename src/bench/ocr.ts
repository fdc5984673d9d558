import type { PageLine } from './pages.ts';

/**
 * The lines of a rendered page that no detected box covers: a line counts as found when boxes
 * through its middle row cover at least `share` of its drawn width (several boxes may share a
 * line when words are far apart). `boxes` is [N,4,2] (x, y corners), flattened.
 */
export function uncoveredLines(lines: PageLine[], boxes: ArrayLike<number>, n: number, share = 0.9): PageLine[] {
  const rects = Array.from({ length: n }, (_, i) => {
    const xs = [0, 2, 4, 6].map((k) => boxes[i * 8 + k]);
    const ys = [1, 3, 5, 7].map((k) => boxes[i * 8 + k]);
    return { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys) };
  });
  return lines.filter((l) => {
    const cy = l.y + l.height / 2;
    const on = rects.filter((r) => r.y0 <= cy && cy <= r.y1 && r.x1 > l.x && r.x0 < l.x + l.width);
    let covered = 0;
    for (let x = l.x; x < l.x + l.width; x++) if (on.some((r) => r.x0 <= x + 0.5 && x + 0.5 <= r.x1)) covered++;
    return covered < share * l.width;
  });
}
