import type { Region } from '../plan/schema.ts';

/** Half-open interval [start, end) along one spatial axis. */
export interface Interval { start: number; end: number }


export const len = (i: Interval) => i.end - i.start;
export const hull = (a: Interval, b: Interval): Interval => ({ start: Math.min(a.start, b.start), end: Math.max(a.end, b.end) });
export const clip = (i: Interval, size: number): Interval => ({ start: Math.max(0, i.start), end: Math.min(size, i.end) });
export const sameInterval = (a: Interval, b: Interval) => a.start === b.start && a.end === b.end;

export const regionOf = (y: Interval, x: Interval): Region => ({ y0: y.start, y1: y.end, x0: x.start, x1: x.end });
export const rowsOf = (r: Region): Interval => ({ start: r.y0, end: r.y1 });
export const colsOf = (r: Region): Interval => ({ start: r.x0, end: r.x1 });
export const regionArea = (r: Region) => (r.y1 - r.y0) * (r.x1 - r.x0);

/** Cell i of n near-equal parts of [0, size): sizes differ by at most one. */
export function splitAxis(size: number, parts: number, i: number): Interval {
  return { start: Math.floor((i * size) / parts), end: Math.floor(((i + 1) * size) / parts) };
}

/**
 * One axis of a sliding-window op (Conv, pools): kernel k, stride s, dilation d,
 * begin/end pads p0/p1 as resolved from pads/auto_pad (never pad = k/2 by assumption).
 */
export interface AxisWindow { k: number; s: number; d: number; p0: number; p1: number }

export const windowExtent = (w: AxisWindow) => (w.k - 1) * w.d + 1;

/**
 * Output length along an axis. With ceil_mode the last window may overhang the end pad, but
 * (as in PyTorch and ONNX Runtime) it must start inside the input or the begin pad.
 */
export function windowOutSize(inSize: number, w: AxisWindow, ceilMode = false): number {
  const span = inSize + w.p0 + w.p1 - windowExtent(w);
  if (span < 0) return 0;
  if (!ceilMode) return Math.floor(span / w.s) + 1;
  let out = Math.ceil(span / w.s) + 1;
  if ((out - 1) * w.s >= inSize + w.p0) out -= 1;
  return out;
}

/** Input positions read by outputs [o.start, o.end): unclipped, so what lies outside [0, inSize) is padding. */
export function windowBackward(o: Interval, w: AxisWindow): Interval {
  return { start: o.start * w.s - w.p0, end: (o.end - 1) * w.s - w.p0 + windowExtent(w) };
}

/** Explicit begin/end pads for auto_pad SAME_UPPER / SAME_LOWER, resolved from the full input size. */
export function samePads(inSize: number, k: number, s: number, d: number, upper: boolean): [number, number] {
  const out = Math.ceil(inSize / s);
  const total = Math.max(0, (out - 1) * s + (k - 1) * d + 1 - inSize);
  const small = Math.floor(total / 2);
  return upper ? [small, total - small] : [total - small, small];
}
