/**
 * Random small CNNs for property tests: every spatial op with random kernels, strides,
 * dilations, asymmetric pads, auto_pad, ceil mode, branches and joins. Optionally (off by
 * default, so existing callers get the same models) SE blocks and other global H,W reductions
 * in the middle, and a reduction head at the end.
 */
import { GraphBuilder, mulberry32 } from '../../src/onnx/builder.ts';
import { windowOutSize, samePads } from '../../src/tiling/geometry.ts';
import { floatToHalf } from '../../src/tensor/dtype.ts';

export interface RandomCase { bytes: Uint8Array; shape: number[]; desc: string[]; out: [number, number] }

type Rand = () => number;
const pick = <T>(r: Rand, xs: T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

interface State { x: string; c: number; h: number; w: number }

function randomWindow(r: Rand, s: State, kMax: number) {
  const k: [number, number] = [int(r, 1, kMax), int(r, 1, kMax)];
  const st: [number, number] = [int(r, 1, 3), int(r, 1, 3)];
  const d: [number, number] = [r() < 0.25 ? 2 : 1, r() < 0.25 ? 2 : 1];
  return { k, st, d };
}

/** Adds one random op; returns false if it would shrink the map below `min` x `min` (2x2 by default). */
function addOp(b: GraphBuilder, r: Rand, s: State, desc: string[], opset: number, min = 2): boolean {
  let kind = pick(r, ['conv', 'conv', 'dwconv', 'maxpool', 'avgpool', 'pad', 'resize', 'convT', 'concat', 'residual', 'act']);
  // ORT's Pad+pool fusion adds the Pad's amounts to the pool's pads and then rejects pads >=
  // kernel: a monolithic-ORT bug, not ours, so the generator avoids that pair.
  if (desc[desc.length - 1]?.startsWith('Pad') && kind.endsWith('pool')) kind = 'act';
  const ext = (k: number, d: number) => (k - 1) * d + 1;
  switch (kind) {
    case 'conv': case 'dwconv': {
      const { k, st, d } = randomWindow(r, s, 5);
      const autoPad = pick(r, ['NOTSET', 'NOTSET', 'NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID']);
      const pads = [int(r, 0, k[0] - 1), int(r, 0, k[1] - 1), int(r, 0, k[0] - 1), int(r, 0, k[1] - 1)];
      let oh: number; let ow: number;
      // ORT rejects dilation together with SAME auto_pad.
      if (autoPad.startsWith('SAME')) { d[0] = 1; d[1] = 1; }
      if (autoPad.startsWith('SAME')) { oh = Math.ceil(s.h / st[0]); ow = Math.ceil(s.w / st[1]); void samePads; }
      else {
        const p = autoPad === 'VALID' ? [0, 0, 0, 0] : pads;
        oh = windowOutSize(s.h, { k: k[0], s: st[0], d: d[0], p0: p[0], p1: p[2] });
        ow = windowOutSize(s.w, { k: k[1], s: st[1], d: d[1], p0: p[1], p1: p[3] });
      }
      if (oh < min || ow < min) return false;
      const group = kind === 'dwconv' ? s.c : s.c % 2 === 0 && r() < 0.3 ? 2 : 1;
      const cout = kind === 'dwconv' ? s.c : int(r, 2, 6) * (group === 2 ? 2 : 1);
      s.x = b.conv(s.x, s.c, cout, k, { stride: st, dilation: d, group, bias: r() < 0.5, ...(autoPad === 'NOTSET' ? { pads } : { autoPad }) });
      desc.push(`Conv k${k} s${st} d${d} g${group} ${autoPad === 'NOTSET' ? `pads ${pads}` : autoPad} -> ${cout}x${oh}x${ow}`);
      Object.assign(s, { c: cout, h: oh, w: ow });
      return true;
    }
    case 'maxpool': case 'avgpool': {
      const { k, st } = randomWindow(r, s, 4);
      const d: [number, number] = kind === 'maxpool' || opset >= 19 ? [r() < 0.2 ? 2 : 1, 1] : [1, 1];
      const pk = (kk: number) => int(r, 0, Math.min(Math.floor(kk / 2), kk - 1)); // ORT: pool pads < kernel
      const pads = [pk(k[0]), pk(k[1]), pk(k[0]), pk(k[1])];
      const ceil = r() < 0.4 ? 1 : 0;
      const oh = windowOutSize(s.h, { k: k[0], s: st[0], d: d[0], p0: pads[0], p1: pads[2] }, !!ceil);
      const ow = windowOutSize(s.w, { k: k[1], s: st[1], d: d[1], p0: pads[1], p1: pads[3] }, !!ceil);
      if (oh < min || ow < min || ext(k[0], d[0]) > s.h + pads[0] + pads[2] || k[1] > s.w + pads[1] + pads[3]) return false;
      const attrs: Record<string, number | number[]> = { kernel_shape: k, strides: st, pads, ceil_mode: ceil };
      if (d[0] > 1 || d[1] > 1) attrs.dilations = d;
      let cip = 0;
      if (kind === 'avgpool') { cip = r() < 0.5 ? 1 : 0; attrs.count_include_pad = cip; }
      [s.x] = b.node(kind === 'maxpool' ? 'MaxPool' : 'AveragePool', [s.x], attrs);
      desc.push(`${kind} k${k} s${st} d${d} pads ${pads} ceil ${ceil}${kind === 'avgpool' ? ` cip ${cip}` : ''} -> ${oh}x${ow}`);
      Object.assign(s, { h: oh, w: ow });
      return true;
    }
    case 'pad': {
      const p = [0, 0, int(r, 0, 3), int(r, 0, 3), 0, 0, int(r, 0, 3), int(r, 0, 3)];
      const value = pick(r, [0, 0.5, -1]);
      const pads = b.initializer(`pads_${desc.length}`, [8], BigInt64Array.from(p.map(BigInt)));
      const v = b.constant(`padv_${desc.length}`, [], [value]);
      [s.x] = b.node('Pad', [s.x, pads, v], { mode: 'constant' });
      desc.push(`Pad ${p} value ${value}`);
      Object.assign(s, { h: s.h + p[2] + p[6], w: s.w + p[3] + p[7] });
      return true;
    }
    case 'resize': {
      if (s.h * s.w > 900) return false;
      const sc = [int(r, 1, 3), int(r, 1, 3)];
      const mode = pick(r, ['nearest', 'linear']);
      const ctm = pick(r, ['half_pixel', 'asymmetric', 'pytorch_half_pixel']);
      const scales = b.constant(`scales_${desc.length}`, [4], new Float32Array([1, 1, sc[0], sc[1]]));
      const roi = b.constant(`roi_${desc.length}`, [0], new Float32Array(0));
      [s.x] = b.node('Resize', [s.x, roi, scales], { mode, coordinate_transformation_mode: ctm });
      desc.push(`Resize ${mode} ${ctm} x${sc}`);
      Object.assign(s, { h: s.h * sc[0], w: s.w * sc[1] });
      return true;
    }
    case 'convT': {
      if (s.h * s.w > 900) return false;
      const k = [int(r, 2, 4), int(r, 2, 4)];
      const st = [int(r, 1, 2), int(r, 1, 2)];
      const p = [int(r, 0, k[0] - 1), int(r, 0, k[1] - 1), int(r, 0, k[0] - 1), int(r, 0, k[1] - 1)];
      const op = [st[0] > 1 && r() < 0.5 ? 1 : 0, st[1] > 1 && r() < 0.5 ? 1 : 0];
      const oh = st[0] * (s.h - 1) + op[0] + k[0] - p[0] - p[2];
      const ow = st[1] * (s.w - 1) + op[1] + k[1] - p[1] - p[3];
      if (oh < min || ow < min) return false;
      const cout = int(r, 2, 4);
      const wt = b.randn(`ct_w_${desc.length}`, [s.c, cout, k[0], k[1]], 0.3);
      [s.x] = b.node('ConvTranspose', [s.x, wt], { kernel_shape: k, strides: st, pads: p, output_padding: op });
      desc.push(`ConvTranspose k${k} s${st} pads ${p} op ${op} -> ${oh}x${ow}`);
      Object.assign(s, { c: cout, h: oh, w: ow });
      return true;
    }
    case 'concat': {
      const a = b.conv(s.x, s.c, 2, 3, { pads: [1, 1, 1, 1] });
      const c2 = b.conv(s.x, s.c, 3, [1, 3], { pads: [0, 0, 0, 2], autoPad: undefined });
      // [1,3] kernel with pads (0,0,0,2): width w+2-2 = w, height h.
      [s.x] = b.node('Concat', [a, c2, s.x], { axis: 1 });
      desc.push(`Concat(conv3x3, conv1x3, identity) -> ${2 + 3 + s.c}`);
      s.c = 2 + 3 + s.c;
      return true;
    }
    case 'residual': {
      const y = b.relu(b.conv(s.x, s.c, s.c, 3, { pads: [1, 1, 1, 1] }));
      const z = b.conv(y, s.c, s.c, 3, { dilation: 2, pads: [2, 2, 2, 2] });
      const scale = b.constant(`se_${desc.length}`, [1, s.c, 1, 1], Array.from({ length: s.c }, (_, i) => 0.5 + i / s.c));
      [s.x] = b.node('Add', [s.x, b.node('Mul', [z, scale])[0]]);
      desc.push('Residual(x + scale * conv(relu(conv(x))))');
      return true;
    }
    default: {
      const act = pick(r, ['Relu', 'Sigmoid', 'LeakyRelu', opset >= 14 ? 'HardSwish' : 'HardSigmoid', 'Clip']);
      if (act === 'Clip') {
        const lo = b.constant(`clo_${desc.length}`, [], [0]);
        const hi = b.constant(`chi_${desc.length}`, [], [6]);
        [s.x] = b.node('Clip', [s.x, lo, hi]);
      } else [s.x] = b.node(act, [s.x]);
      desc.push(act);
      return true;
    }
  }
}

export interface RandomCaseOptions {
  maxOps?: number;
  opset?: number;
  /** Input shape instead of a random one (the seed still picks everything else). */
  shape?: number[];
  /** Smallest side a spatial op may leave (default 2). */
  minSide?: number;
  /** Chance of an SE block after each op (default 0). */
  se?: number;
  /**
   * Chance of another global reduction after each op (default 0): GlobalMaxPool, a CBAM-style
   * average+max gate, ReduceSum/ReduceMax/ReduceMean with keepdims 1 (used as is) or 0 (Unsqueezed back).
   */
  reductions?: number;
  /**
   * Chance that an op is wrapped in a gate computed from reductions of its input (and maybe its
   * output too): the reduced map is older than the one it gates, as around a strided block.
   */
  late?: number;
  /** Chance that an SE gate is also a model output (default 0). */
  gateOutput?: number;
  /** Chance that the map after an op is also a model output (default 0). */
  midOutput?: number;
  /** At least this many SE blocks or reductions in the middle (added after the last op if the dice gave fewer). */
  minReductions?: number;
  /** Chance of a reduction head at the end (GAP-Flatten-Gemm, a bare Reduce*, or the map and a classifier). */
  head?: number;
  /**
   * Chance of an exported pattern after each op (default 0): fractional and shape-driven
   * Resize, map-sized constants, float16 segments, QDQ, QLinearConv/ConvInteger,
   * DepthToSpace/SpaceToDepth, reflect/edge Pad, bool masks, DynamicQuantizeLinear.
   */
  patterns?: number;
  /** At least this many patterns (added after the last op if the dice gave fewer). */
  minPatterns?: number;
  /** Only these pattern kinds (default: all). */
  patternKinds?: PatternKind[];
}

export const PATTERN_KINDS = ['resizeFrac', 'shapeSizes', 'spatialConst', 'fp16', 'qdq', 'qdqconv', 'qlinearconv', 'convinteger', 'd2s', 's2d', 'padMode', 'bool', 'dynq'] as const;
export type PatternKind = typeof PATTERN_KINDS[number];

const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 } as const;

function rawOf(dataType: number, values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * (dataType === DT.FLOAT16 ? 2 : dataType === DT.INT32 || dataType === DT.FLOAT ? 4 : dataType === DT.INT64 ? 8 : 1));
  values.forEach((v, i) => {
    switch (dataType) {
      case DT.FLOAT16: b.writeUInt16LE(floatToHalf(v), i * 2); break;
      case DT.FLOAT: b.writeFloatLE(v, i * 4); break;
      case DT.INT32: b.writeInt32LE(v, i * 4); break;
      case DT.INT64: b.writeBigInt64LE(BigInt(v), i * 8); break;
      case DT.INT8: b.writeInt8(v, i); break;
      default: b.writeUInt8(v, i);
    }
  });
  return new Uint8Array(b);
}

/**
 * One exported pattern on the map `s` (float32 in, float32 out); false when it does not fit.
 * `hist` holds earlier maps (skip connections for shape-driven resizes).
 */
function addPattern(b: GraphBuilder, q: Rand, s: State, desc: string[], opset: number, batch: number, hist: State[], kinds: readonly PatternKind[], tag: string, min = 2): boolean {
  const kind = pick(q, kinds.slice());
  const typed = (name: string, dt: number, dims: number[], values: number[]) => b.rawInitializer(`${name}_${tag}`, dt, dims, rawOf(dt, values));
  const i64 = (name: string, values: number[]) => b.initializer(`${name}_${tag}`, [values.length], BigInt64Array.from(values.map(BigInt)));
  // The quantizing patterns start with a QuantizeLinear of the map, which turns the last-ulp
  // differences of float sums (ORT's own, with the tensor's size, or where it fuses a Pad into
  // a conv) into a whole quantization step: a property of quantizing float results, not of the
  // tiling. So they do not follow a float conv directly.
  const last = desc[desc.length - 1] ?? '';
  const afterFloatConv = /Conv/.test(last) && !/^QDQ Conv|QLinearConv -> DequantizeLinear/.test(last);
  if (afterFloatConv && ['qdq', 'qdqconv', 'qlinearconv', 'convinteger'].includes(kind)) return false;
  switch (kind) {
    case 'resizeFrac': {
      if (s.h * s.w > 900) return false;
      const mode = pick(q, ['nearest', 'linear', 'cubic']);
      const ctms = ['half_pixel', 'asymmetric', 'pytorch_half_pixel', 'align_corners', ...(mode === 'nearest' ? ['tf_half_pixel_for_nn'] : []), ...(opset >= 19 ? ['half_pixel_symmetric'] : [])];
      const ctm = pick(q, ctms);
      const nearest = pick(q, ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil']);
      const attrs = { mode, coordinate_transformation_mode: ctm, ...(mode === 'nearest' ? { nearest_mode: nearest } : {}) };
      if (q() < 0.5) {
        const sc = [pick(q, [1.5, 2.1, 0.5, 1.7, 2, 3, 0.75, 1.25]), pick(q, [1.5, 2.1, 0.5, 1.7, 2, 3, 0.75, 1.25])];
        const oh = Math.floor(Math.fround(s.h * Math.fround(sc[0])));
        const ow = Math.floor(Math.fround(s.w * Math.fround(sc[1])));
        if (oh < min || ow < min) return false;
        const scales = b.constant(`rscales_${tag}`, [4], new Float32Array([1, 1, sc[0], sc[1]]));
        const roi = b.constant(`rroi_${tag}`, [0], new Float32Array(0));
        [s.x] = b.node('Resize', [s.x, roi, scales], attrs);
        desc.push(`Resize ${mode} ${ctm}${mode === 'nearest' ? ` ${nearest}` : ''} scales ${sc} -> ${oh}x${ow}`);
        Object.assign(s, { h: oh, w: ow });
      } else {
        const oh = Math.max(min, int(q, Math.ceil(s.h / 2), s.h * 2 + 1));
        const ow = Math.max(min, int(q, Math.ceil(s.w / 2), s.w * 2 + 1));
        const roi = b.constant(`rroi_${tag}`, [0], new Float32Array(0));
        const scales = b.constant(`rscales_${tag}`, [0], new Float32Array(0));
        [s.x] = b.node('Resize', [s.x, roi, scales, i64('rsizes', [batch, s.c, oh, ow])], attrs);
        desc.push(`Resize ${mode} ${ctm}${mode === 'nearest' ? ` ${nearest}` : ''} sizes ${oh}x${ow}`);
        Object.assign(s, { h: oh, w: ow });
      }
      return true;
    }
    case 'shapeSizes': {
      // F.interpolate(x, size=skip.shape[2:]) as PyTorch exports it, or x2 from x's own shape.
      if (s.h * s.w > 900) return false;
      const skip = hist.filter((h) => h.x !== s.x && (h.h !== s.h || h.w !== s.w) && h.h * h.w <= 1600);
      const mode = pick(q, ['nearest', 'linear']);
      const shapeX = b.node('Shape', [s.x])[0];
      const nc = b.node('Slice', [shapeX, i64('s0', [0]), i64('s2', [2]), i64('sax', [0])])[0];
      let hw: string; let oh: number; let ow: number; let other: State | undefined;
      if (skip.length && q() < 0.8) {
        other = pick(q, skip);
        const shapeS = b.node('Shape', [other.x])[0];
        hw = b.node('Slice', [shapeS, i64('t2', [2]), i64('t4', [4]), i64('tax', [0])])[0];
        oh = other.h; ow = other.w;
      } else {
        const own = b.node('Slice', [shapeX, i64('u2', [2]), i64('u4', [4]), i64('uax', [0])])[0];
        hw = b.node('Mul', [own, i64('two', [2, 2])])[0];
        oh = s.h * 2; ow = s.w * 2;
      }
      const sizes = b.node('Concat', [nc, hw], { axis: 0 })[0];
      const [y] = b.node('Resize', [s.x, '', '', sizes], { mode, coordinate_transformation_mode: pick(q, ['half_pixel', 'asymmetric', 'pytorch_half_pixel', 'align_corners']), nearest_mode: 'floor' });
      if (other) {
        [s.x] = b.node('Concat', [y, other.x], { axis: 1 });
        desc.push(`Resize ${mode} sizes=Concat(Shape(x)[:2], Shape(skip)[2:]) -> Concat with skip ${other.c}x${oh}x${ow}`);
        Object.assign(s, { c: s.c + other.c, h: oh, w: ow });
      } else {
        s.x = y;
        desc.push(`Resize ${mode} sizes=Shape(x)*[1,1,2,2] -> ${oh}x${ow}`);
        Object.assign(s, { h: oh, w: ow });
      }
      return true;
    }
    case 'spatialConst': {
      const mul = q() < 0.5;
      const k = mul ? b.uniform(`pos_${tag}`, [1, s.c, s.h, s.w], 0.5, 1.5) : b.randn(`pos_${tag}`, [1, s.c, s.h, s.w], 0.5);
      [s.x] = b.node(mul ? 'Mul' : 'Add', q() < 0.5 ? [s.x, k] : [k, s.x]);
      desc.push(`${mul ? 'Mul' : 'Add'} constant [1,${s.c},${s.h},${s.w}]`);
      return true;
    }
    case 'fp16': {
      const half = b.node('Cast', [s.x], { to: DT.FLOAT16 })[0];
      const cout = int(q, 2, 4);
      const k = pick(q, [1, 3]);
      const wv = Array.from({ length: cout * s.c * k * k }, () => (q() - 0.5) * 0.5);
      const w = typed('hw', DT.FLOAT16, [cout, s.c, k, k], wv);
      const bias = typed('hb', DT.FLOAT16, [cout], Array.from({ length: cout }, () => q() - 0.5));
      let y = b.node('Conv', [half, w, bias], { kernel_shape: [k, k], pads: [k >> 1, k >> 1, k >> 1, k >> 1] })[0];
      y = b.node('Relu', [y])[0];
      let oh = s.h; let ow = s.w;
      const pool = q() < 0.5 && s.h >= 4 && s.w >= 4;
      if (pool) {
        y = b.node('MaxPool', [y], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 })[0];
        oh = Math.ceil(s.h / 2); ow = Math.ceil(s.w / 2);
      }
      [s.x] = b.node('Cast', [y], { to: DT.FLOAT });
      desc.push(`Cast float16 -> Conv k${k} -> Relu${pool ? ' -> MaxPool ceil' : ''} -> Cast float32 -> ${cout}x${oh}x${ow}`);
      Object.assign(s, { c: cout, h: oh, w: ow });
      return true;
    }
    case 'qdqconv': {
      // A statically quantized conv as quantization tools write it: DQ(x), DQ(w) -> Conv -> Q,
      // which ORT fuses into QLinearConv (and DQ -> MaxPool -> Q into an integer MaxPool).
      const k = pick(q, [1, 3]);
      const st = int(q, 1, 2);
      const p = k >> 1;
      const oh = windowOutSize(s.h, { k, s: st, d: 1, p0: p, p1: p });
      const ow = windowOutSize(s.w, { k, s: st, d: 1, p0: p, p1: p });
      if (oh < min || ow < min) return false;
      const cout = int(q, 2, 4);
      const xs = b.constant(`cxs_${tag}`, [], [0.02]);
      const xz = typed('cxz', DT.UINT8, [], [int(q, 110, 140)]);
      const xd = b.node('DequantizeLinear', [b.node('QuantizeLinear', [s.x, xs, xz])[0], xs, xz])[0];
      const perChannel = opset >= 13 && q() < 0.5;
      const wsv = Array.from({ length: perChannel ? cout : 1 }, () => 0.005 + 0.01 * q());
      const ws = b.constant(`cws_${tag}`, perChannel ? [cout] : [], wsv);
      const wz = typed('cwz', DT.INT8, perChannel ? [cout] : [], Array(perChannel ? cout : 1).fill(0));
      const wq = typed('cw', DT.INT8, [cout, s.c, k, k], Array.from({ length: cout * s.c * k * k }, () => int(q, -100, 100)));
      const wd = b.node('DequantizeLinear', [wq, ws, wz], perChannel ? { axis: 0 } : {})[0];
      const bsc = b.constant(`cbs_${tag}`, perChannel ? [cout] : [], wsv.map((v) => v * 0.02));
      const bq = typed('cb', DT.INT32, [cout], Array.from({ length: cout }, () => int(q, -300, 300)));
      const bd = b.node('DequantizeLinear', [bq, bsc, typed('cbz', DT.INT32, perChannel ? [cout] : [], Array(perChannel ? cout : 1).fill(0))], perChannel ? { axis: 0 } : {})[0];
      let y = b.node('Conv', [xd, wd, bd], { kernel_shape: [k, k], strides: [st, st], pads: [p, p, p, p] })[0];
      const ys = b.constant(`cys_${tag}`, [], [0.04]);
      const yz = typed('cyz', DT.UINT8, [], [128]);
      y = b.node('DequantizeLinear', [b.node('QuantizeLinear', [y, ys, yz])[0], ys, yz])[0];
      let ph = oh; let pw = ow;
      const pool = q() < 0.4 && oh >= 4 && ow >= 4;
      if (pool) {
        y = b.node('MaxPool', [y], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })[0];
        ph = windowOutSize(oh, { k: 3, s: 2, d: 1, p0: 1, p1: 1 });
        pw = windowOutSize(ow, { k: 3, s: 2, d: 1, p0: 1, p1: 1 });
        y = b.node('DequantizeLinear', [b.node('QuantizeLinear', [y, ys, yz])[0], ys, yz])[0];
      }
      s.x = y;
      desc.push(`QDQ Conv k${k} s${st}${perChannel ? ' per-channel weights' : ''}${pool ? ' -> QDQ MaxPool' : ''} -> ${cout}x${ph}x${pw}`);
      Object.assign(s, { c: cout, h: ph, w: pw });
      return true;
    }
    case 'qdq': {
      const perChannel = opset >= 13 && q() < 0.5;
      const signed = q() < 0.5;
      const n = perChannel ? s.c : 1;
      const dims = perChannel ? [s.c] : [];
      const scale = b.constant(`qs_${tag}`, dims, Array.from({ length: n }, () => 0.01 + 0.03 * q()));
      const zp = typed('qz', signed ? DT.INT8 : DT.UINT8, dims, Array.from({ length: n }, () => (signed ? int(q, -10, 10) : int(q, 118, 138))));
      const qx = b.node('QuantizeLinear', [s.x, scale, zp], perChannel ? { axis: 1 } : {})[0];
      [s.x] = b.node('DequantizeLinear', [qx, scale, zp], perChannel ? { axis: 1 } : {});
      desc.push(`QuantizeLinear/DequantizeLinear ${perChannel ? 'per channel' : 'per tensor'} ${signed ? 'int8' : 'uint8'}`);
      return true;
    }
    case 'qlinearconv': case 'convinteger': {
      const k = pick(q, [1, 2, 3]);
      const st = int(q, 1, 2);
      const pads = [int(q, 0, k - 1), int(q, 0, k - 1), int(q, 0, k - 1), int(q, 0, k - 1)];
      const oh = windowOutSize(s.h, { k, s: st, d: 1, p0: pads[0], p1: pads[2] });
      const ow = windowOutSize(s.w, { k, s: st, d: 1, p0: pads[1], p1: pads[3] });
      if (oh < min || ow < min) return false;
      const cout = int(q, 2, 4);
      const xs = b.constant(`xs_${tag}`, [], [0.02]);
      const xz = typed('xz', DT.UINT8, [], [int(q, 100, 150)]);
      const xq = b.node('QuantizeLinear', [s.x, xs, xz])[0];
      const attrs = { kernel_shape: [k, k], strides: [st, st], pads };
      if (kind === 'qlinearconv') {
        const w = typed('qw', DT.INT8, [cout, s.c, k, k], Array.from({ length: cout * s.c * k * k }, () => int(q, -60, 60)));
        const ws = b.constant(`ws_${tag}`, [], [0.01]);
        const wz = typed('wz', DT.INT8, [], [0]);
        const ys = b.constant(`ys_${tag}`, [], [0.05]);
        const yz = typed('yz', DT.UINT8, [], [128]);
        const bias = typed('qb', DT.INT32, [cout], Array.from({ length: cout }, () => int(q, -500, 500)));
        const y = b.node('QLinearConv', [xq, xs, xz, w, ws, wz, ys, yz, bias], attrs)[0];
        [s.x] = b.node('DequantizeLinear', [y, ys, yz]);
      } else {
        const w = typed('iw', DT.UINT8, [cout, s.c, k, k], Array.from({ length: cout * s.c * k * k }, () => int(q, 100, 156)));
        const wz = typed('iwz', DT.UINT8, [], [128]);
        const y = b.node('ConvInteger', [xq, w, xz, wz], attrs)[0];
        const f = b.node('Cast', [y], { to: DT.FLOAT })[0];
        [s.x] = b.node('Mul', [f, b.constant(`is_${tag}`, [], [0.0002])]);
      }
      desc.push(`QuantizeLinear -> ${kind === 'qlinearconv' ? 'QLinearConv -> DequantizeLinear' : 'ConvInteger -> Cast -> Mul'} k${k} s${st} pads ${pads} -> ${cout}x${oh}x${ow}`);
      Object.assign(s, { c: cout, h: oh, w: ow });
      return true;
    }
    case 'd2s': {
      if (s.h * s.w > 600) return false;
      const bs = 2;
      const c2 = int(q, 1, 3);
      const y = b.conv(s.x, s.c, c2 * bs * bs, 1, { name: `d2s_conv_${tag}` });
      const mode = pick(q, ['DCR', 'CRD']);
      [s.x] = b.node('DepthToSpace', [y], { blocksize: bs, mode });
      desc.push(`Conv 1x1 -> DepthToSpace ${mode} 2 -> ${c2}x${s.h * 2}x${s.w * 2}`);
      Object.assign(s, { c: c2, h: s.h * 2, w: s.w * 2 });
      return true;
    }
    case 's2d': {
      if (s.h % 2 || s.w % 2 || s.h / 2 < min || s.w / 2 < min) return false;
      [s.x] = b.node('SpaceToDepth', [s.x], { blocksize: 2 });
      desc.push(`SpaceToDepth 2 -> ${s.c * 4}x${s.h / 2}x${s.w / 2}`);
      Object.assign(s, { c: s.c * 4, h: s.h / 2, w: s.w / 2 });
      return true;
    }
    case 'padMode': {
      const mode = pick(q, ['reflect', 'edge']);
      const lim = (d: number) => Math.min(3, mode === 'reflect' ? d - 1 : 3);
      const p = [0, 0, int(q, 0, lim(s.h)), int(q, 0, lim(s.w)), 0, 0, int(q, 0, lim(s.h)), int(q, 0, lim(s.w))];
      [s.x] = b.node('Pad', [s.x, i64('ppads', p)], { mode });
      desc.push(`Pad ${mode} ${p}`);
      Object.assign(s, { h: s.h + p[2] + p[6], w: s.w + p[3] + p[7] });
      return true;
    }
    case 'bool': {
      const m = b.node('Greater', [s.x, b.constant(`bz_${tag}`, [], [0])])[0];
      [s.x] = b.node('Where', [m, s.x, b.node('Mul', [s.x, b.constant(`bk_${tag}`, [], [0.1])])[0]]);
      desc.push('Where(x > 0, x, 0.1 x)');
      return true;
    }
    default: {
      const [y, sc, zp] = b.node('DynamicQuantizeLinear', [s.x], {}, { outputs: 3 });
      [s.x] = b.node('DequantizeLinear', [y, sc, zp]);
      desc.push('DynamicQuantizeLinear -> DequantizeLinear');
      return true;
    }
  }
}

/** ReduceMean/Sum/Max over H and W (axes spelled several ways), as an attribute or an input by opset. */
function reduceNode(b: GraphBuilder, q: Rand, op: 'ReduceMean' | 'ReduceSum' | 'ReduceMax', x: string, keepdims: number, opset: number, tag: string): string {
  const axes = pick(q, [[2, 3], [-2, -1], [3, 2]]);
  // ReduceSum takes axes as an input from opset 13, the others from opset 18.
  if (op === 'ReduceSum' ? opset >= 13 : opset >= 18) {
    const ax = b.initializer(`axes_${tag}`, [2], BigInt64Array.from(axes.map(BigInt)));
    return b.node(op, [x, ax], { keepdims })[0];
  }
  return b.node(op, [x], { axes, keepdims })[0];
}

function unsqueeze23(b: GraphBuilder, x: string, opset: number, tag: string): string {
  if (opset >= 13) return b.node('Unsqueeze', [x, b.initializer(`uaxes_${tag}`, [2], BigInt64Array.from([2n, 3n]))])[0];
  return b.node('Unsqueeze', [x], { axes: [2, 3] })[0];
}

const gateOf = (b: GraphBuilder, q: Rand, x: string) => b.node(pick(q, ['Sigmoid', 'HardSigmoid']), [x])[0];
const mulMap = (b: GraphBuilder, q: Rand, map: string, v: string) => b.node('Mul', q() < 0.5 ? [map, v] : [v, map])[0];

/** An SE block, or another global reduction whose result the map is combined with: same shape out. */
function addReduction(b: GraphBuilder, q: Rand, s: State, desc: string[], opset: number, kind: 'se' | 'other', tag: string, gateOutput = 0) {
  if (kind === 'se') {
    const mean = q() < 0.5;
    const pooled = mean ? b.globalAvgPool(s.x) : reduceNode(b, q, 'ReduceMean', s.x, 1, opset, tag);
    const mid = int(q, 1, Math.max(1, s.c));
    const h = b.relu(b.conv(pooled, s.c, mid, 1, { bias: true, name: `se${tag}_fc1` }));
    const g = gateOf(b, q, b.conv(h, mid, s.c, 1, { bias: true, name: `se${tag}_fc2` }));
    s.x = mulMap(b, q, s.x, g);
    const out = q() < gateOutput;
    if (out) b.output(g);
    desc.push(`SE(${mean ? 'GlobalAveragePool' : 'ReduceMean keepdims 1'} -> 1x1 ${s.c}->${mid}->${s.c} -> gate${out ? ' (an output too)' : ''} -> Mul)`);
    return;
  }
  const v = pick(q, ['gmp', 'cbam', 'keep', 'flat']);
  switch (v) {
    case 'gmp': {
      const g = gateOf(b, q, b.node('GlobalMaxPool', [s.x])[0]);
      s.x = q() < 0.5 ? mulMap(b, q, s.x, g) : b.add(s.x, g);
      desc.push('GlobalMaxPool -> gate -> Mul/Add with the map');
      return;
    }
    case 'cbam': {
      // Two reductions of one map in one master stage, their branches joined.
      const a = b.conv(b.globalAvgPool(s.x), s.c, s.c, 1, { name: `ca${tag}_avg` });
      const m = b.conv(b.node('GlobalMaxPool', [s.x])[0], s.c, s.c, 1, { name: `ca${tag}_max` });
      s.x = mulMap(b, q, s.x, b.node('Sigmoid', [b.add(a, m)])[0]);
      desc.push('ChannelAttention(sigmoid(conv(GAP) + conv(GMP)) * map)');
      return;
    }
    case 'keep': {
      // keepdims 1, read by the next group as is: no branch after the reduction.
      const op = pick(q, ['ReduceMax', 'ReduceSum', 'ReduceMean'] as const);
      // Sums of |map|: a sum that cancels to near 0 differs from ORT's float32 one by its rounding.
      const red = reduceNode(b, q, op, op === 'ReduceSum' ? b.node('Abs', [s.x])[0] : s.x, 1, opset, tag);
      [s.x] = b.node(op === 'ReduceSum' ? 'Div' : 'Sub', [s.x, op === 'ReduceSum' ? b.node('Add', [red, b.constant(`eps_${tag}`, [], [1])])[0] : red]);
      desc.push(`${op} keepdims 1 -> ${op === 'ReduceSum' ? 'map / (sum |map| + 1)' : 'map - it'}`);
      return;
    }
    default: {
      // keepdims 0: [N, C], Unsqueezed back to [N, C, 1, 1] in the branch.
      const op = pick(q, ['ReduceMax', 'ReduceSum', 'ReduceMean'] as const);
      let red = reduceNode(b, q, op, s.x, 0, opset, tag);
      if (op === 'ReduceSum') red = b.node('Mul', [red, b.constant(`inv_${tag}`, [], [1 / (s.h * s.w)])])[0];
      s.x = mulMap(b, q, s.x, gateOf(b, q, unsqueeze23(b, red, opset, tag)));
      desc.push(`${op} keepdims 0 -> Unsqueeze -> gate -> Mul`);
    }
  }
}

/** Gates the map `s` (just computed from `before`) with reductions of `before`, and maybe of itself. */
function addLateGate(b: GraphBuilder, q: Rand, s: State, before: State, desc: string[], opset: number, tag: string) {
  const old = q() < 0.5 ? b.globalAvgPool(before.x) : reduceNode(b, q, 'ReduceMean', before.x, 1, opset, `late${tag}`);
  let pre = b.conv(old, before.c, s.c, 1, { bias: true, name: `late${tag}_old` });
  const both = q() < 0.5;
  if (both) pre = b.add(pre, b.conv(b.node('GlobalMaxPool', [s.x])[0], s.c, s.c, 1, { name: `late${tag}_new` }));
  s.x = mulMap(b, q, s.x, gateOf(b, q, pre));
  desc.push(`LateGate(map * gate(conv(reduce(input of the last op))${both ? ' + conv(GlobalMaxPool(map))' : ''}))`);
}

/** The model's outputs after the last op: the map, or a reduction head (and maybe the map too). */
function addHead(b: GraphBuilder, q: Rand, s: State, desc: string[], opset: number, outputs: Set<string>): void {
  const v = pick(q, ['gemm', 'reduce', 'both']);
  if (v === 'reduce') {
    const op = pick(q, ['ReduceMax', 'ReduceSum', 'ReduceMean'] as const);
    const keep = q() < 0.5 ? 1 : 0;
    b.output(reduceNode(b, q, op, op === 'ReduceSum' ? b.node('Abs', [s.x])[0] : s.x, keep, opset, 'head'));
    desc.push(`head ${op}${op === 'ReduceSum' ? ' of |map|' : ''} keepdims ${keep}`);
    return;
  }
  const pooled = q() < 0.5 ? b.flatten(b.globalAvgPool(s.x)) : reduceNode(b, q, 'ReduceMax', s.x, 0, opset, 'head');
  if (v === 'both' && !outputs.has(s.x)) b.output(s.x);
  b.output(b.gemm(pooled, s.c, int(q, 2, 5), { name: 'head_fc' }));
  desc.push(`head ${v === 'both' ? 'map and ' : ''}classifier`);
}

export function randomCase(seed: number, opts: RandomCaseOptions = {}): RandomCase {
  const r = mulberry32(seed * 7919 + 17);
  const opset = opts.opset ?? pick(r, [13, 17, 19]);
  const b = new GraphBuilder({ name: `case${seed}`, opset, seed });
  const randomShape = [r() < 0.2 ? 2 : 1, int(r, 1, 4), int(r, 5, 37), int(r, 5, 37)];
  const shape = opts.shape ?? randomShape;
  const s: State = { x: b.input('input', shape), c: shape[1], h: shape[2], w: shape[3] };
  const desc = [`opset ${opset} input ${shape.join('x')}`];
  const n = int(r, 1, opts.maxOps ?? 4);
  // Reductions draw from their own generator, and only when asked for: the base ops of a seed
  // stay the same with or without them, and existing callers get byte-identical models.
  const q = mulberry32(seed * 104729 + 3);
  const wantReductions = !!(opts.se || opts.reductions || opts.minReductions || opts.head || opts.late);
  let mids = 0;
  const mid = () => {
    const kind = q() * ((opts.se ?? 0) + (opts.reductions ?? 0)) < (opts.se ?? 0) ? 'se' : 'other';
    addReduction(b, q, s, desc, opset, opts.se || opts.reductions ? kind : 'se', `${mids++}`, opts.gateOutput);
  };
  let added = 0;
  const outputs = new Set<string>();
  // Patterns draw from their own generator too.
  const pq = mulberry32(seed * 15485863 + 11);
  const kinds = opts.patternKinds ?? PATTERN_KINDS;
  const hist: State[] = [];
  let patterns = 0;
  const pattern = () => {
    for (let t = 0; t < 6; t++) {
      hist.push({ ...s });
      if (addPattern(b, pq, s, desc, opset, shape[0], hist, kinds, `${patterns}`, opts.minSide)) { patterns++; return; }
    }
  };
  for (let tries = 0; added < n && tries < 20; tries++) {
    const before = { ...s };
    if (opts.patterns && pq() < opts.patterns) pattern();
    if (addOp(b, r, s, desc, opset, opts.minSide)) {
      added++;
      if (opts.patterns) hist.push({ ...s });
      // Not of the model input: a reduction of it has no group to run in.
      if (wantReductions && opts.late && added > 1 && q() < opts.late) addLateGate(b, q, s, before, desc, opset, `${mids++}`);
      if (opts.midOutput && q() < opts.midOutput && !outputs.has(s.x)) { outputs.add(s.x); b.output(s.x); desc.push('(an output too)'); }
      if (wantReductions && q() < (opts.se ?? 0) + (opts.reductions ?? 0)) mid();
    }
  }
  if (wantReductions) {
    // A reduction of the model input itself has no group to run in: keep one op before any.
    if (added === 0) { [s.x] = b.node('Relu', [s.x]); desc.push('Relu'); }
    while (mids < (opts.minReductions ?? 0)) mid();
  }
  for (let t = 0; patterns < (opts.minPatterns ?? 0) && t < 10; t++) pattern();
  if (wantReductions && q() < (opts.head ?? 0)) addHead(b, q, s, desc, opset, outputs);
  else if (!outputs.has(s.x)) b.output(s.x);
  return { bytes: b.build(), shape, desc, out: [s.h, s.w] };
}
