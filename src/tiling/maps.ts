import { attrInt, attrStr, type IrGraph, type IrNode } from '../graph/ir.ts';
import type { ShapeInfo } from '../graph/shapes.ts';
import type { Interval } from './geometry.ts';

/** What a backward map returns: the input read (see LocalOp) and the output computed from it. */
export interface AxisMap { need: Interval; produced: Interval }

/**
 * A model Pad along one axis, `begin` rows before an input of `size` rows. The need is
 * unclipped: what lies outside [0, size) is the border a runtime Pad adds. Reflect and edge
 * borders copy rows of the tile's own input, so the need is widened until it holds them
 * (reflect reads rows 1..p past the edge, edge reads the edge row); the op then computes more
 * than was asked, which the consumers crop.
 */
export function padBackward(o: Interval, begin: number, size: number, mode: string): AxisMap {
  let s = o.start - begin;
  let e = o.end - begin;
  if (mode === 'reflect' || mode === 'edge') {
    for (let i = 0; i < 2; i++) {
      if (s < 0) e = Math.max(e, mode === 'reflect' ? 1 - s : 1);
      // Position q >= size reflects to 2(size-1)-q; the farthest (e-1) reads 2*size-1-e.
      if (e > size) s = Math.min(s, mode === 'reflect' ? 2 * size - 1 - e : size - 1);
    }
  }
  return { need: { start: s, end: e }, produced: { start: s + begin, end: e + begin } };
}

/** DepthToSpace (DCR or CRD: they differ only in channel order): output row y reads input row floor(y/b). */
export function depthToSpaceBackward(o: Interval, b: number): AxisMap {
  const need = { start: Math.floor(o.start / b), end: Math.ceil(o.end / b) };
  return { need, produced: { start: need.start * b, end: need.end * b } };
}

/** SpaceToDepth: output row y reads input rows [y*b, y*b+b). */
export function spaceToDepthBackward(o: Interval, b: number): AxisMap {
  return { need: { start: o.start * b, end: o.end * b }, produced: o };
}

/**
 * A Resize tiled with integer factor r: the local resize of inputs [i0, i1) yields outputs
 * [r*i0, r*i1) with the same source taps as the whole map's (the coordinate transforms
 * accepted by `resizePlan` commute with shifting the input by i0 and the output by r*i0). The
 * need covers every tap of the requested outputs, clamped to the map as ORT clamps them, so the
 * local resize never clamps where the whole one does not.
 */
export function resizeBackward(o: Interval, r: number, size: number, taps: (xo: number) => [number, number]): AxisMap {
  const need = {
    start: Math.min(taps(o.start)[0], Math.floor(o.start / r)),
    end: Math.min(size, Math.max(taps(o.end - 1)[1] + 1, Math.ceil(o.end / r))),
  };
  return { need, produced: { start: need.start * r, end: need.end * r } };
}

/** Coordinate transforms that commute with integer shifts at an integer factor (see resizeBackward). */
const SHIFTABLE = new Set(['half_pixel', 'asymmetric', 'pytorch_half_pixel', 'half_pixel_symmetric', 'tf_half_pixel_for_nn']);

/**
 * Decides whether a Resize can be tiled exactly, from the scale ORT really uses: the `scales`
 * input as float32 (2.1 on a 5x5 map gives 10x10 but samples at 1/2.1 steps), or out/in when
 * `sizes` is given. Only integer factors with an output of exactly in*r, in a shift-commuting
 * coordinate mode, qualify; anything else (fractional or downscaling factors, align_corners,
 * tf_crop_and_resize, antialias, axes, aspect-ratio policies) runs on the master, where ORT
 * computes it whole. Returns the reason as a string when it cannot.
 */
export function resizePlan(g: IrGraph, node: IrNode, x: number[], out: number[], info: ShapeInfo):
  { r: [number, number]; taps: (axis: 0 | 1, xo: number) => [number, number] } | string {
  const mode = attrStr(node, 'mode', 'nearest');
  // Resize-10 had no such attributes: it was Upsample's asymmetric mapping with floor.
  const legacy = g.opset < 11;
  const ctm = legacy ? 'asymmetric' : attrStr(node, 'coordinate_transformation_mode', 'half_pixel');
  const nearestMode = legacy ? 'floor' : attrStr(node, 'nearest_mode', 'round_prefer_floor');
  if (mode !== 'nearest' && mode !== 'linear' && mode !== 'cubic') return `resize mode ${mode}`;
  if (!SHIFTABLE.has(ctm)) return `coordinate_transformation_mode ${ctm} does not commute with tiling`;
  if (attrInt(node, 'antialias', 0)) return 'antialias';
  if (node.attrs.axes !== undefined) return 'axes attribute';
  if (out[0] !== x[0] || out[1] !== x[1]) return 'resizes batch or channel axes';
  const scalesName = node.inputs[legacy ? 1 : 2];
  const sizesName = legacy ? undefined : node.inputs[3];
  const scales = scalesName ? info.values.get(scalesName) : undefined;
  let s: number[];
  if (scalesName && (!scales || scales.length)) {
    if (!scales || scales.length !== 4) return 'scales are not a constant of length 4';
    // ORT reads scales as float32; the values map holds them exactly as stored.
    s = [Math.fround(scales[2]), Math.fround(scales[3])];
    if (scales[0] !== 1 || scales[1] !== 1) return 'scales batch or channel axes';
  } else if (sizesName) {
    if (!info.values.get(sizesName)) return 'sizes are not constant';
    if (attrStr(node, 'keep_aspect_ratio_policy', 'stretch') !== 'stretch') return 'keep_aspect_ratio_policy';
    s = [out[2] / x[2], out[3] / x[3]];
  } else return 'neither scales nor sizes';
  const r: [number, number] = [s[0], s[1]];
  for (let a = 0; a < 2; a++) {
    if (!Number.isInteger(r[a]) || r[a] < 1) return `scale ${s[a]} is not an integer upsampling factor`;
    if (out[2 + a] !== x[2 + a] * r[a]) return `output ${out[2 + a]} is not ${r[a]} x ${x[2 + a]}`;
  }
  const inSize = [x[2], x[3]];
  // Source taps of output index xo, in the model's coordinate mode; clamped like ORT does.
  const taps = (axis: 0 | 1, xo: number): [number, number] => {
    const ra = r[axis];
    let orig: number;
    switch (ctm) {
      case 'asymmetric': orig = xo / ra; break;
      case 'tf_half_pixel_for_nn': orig = (xo + 0.5) / ra; break;
      // half_pixel_symmetric equals half_pixel when out = r * in exactly; pytorch_half_pixel
      // too, since out > 1 here.
      default: orig = (xo + 0.5) / ra - 0.5;
    }
    const last = inSize[axis] - 1;
    const clampI = (v: number) => Math.min(Math.max(v, 0), last);
    if (mode === 'linear') {
      const lo = Math.floor(Math.max(orig, 0));
      return [clampI(lo), clampI(lo + 1)];
    }
    if (mode === 'cubic') {
      const f = Math.floor(orig);
      return [clampI(f - 1), clampI(f + 2)];
    }
    let i: number;
    switch (nearestMode) {
      case 'floor': i = Math.floor(orig); break;
      case 'ceil': i = Math.ceil(orig); break;
      case 'round_prefer_ceil': i = Math.round(orig); break;
      default: i = orig - Math.floor(orig) === 0.5 ? Math.floor(orig) : Math.round(orig);
    }
    return [clampI(i), clampI(i)];
  };
  return { r, taps };
}
