/**
 * Random small CNNs for property tests: every spatial op with random kernels, strides,
 * dilations, asymmetric pads, auto_pad, ceil mode, branches and joins. Optionally (off by
 * default, so existing callers get the same models) SE blocks and other global H,W reductions
 * in the middle, and a reduction head at the end.
 */
import { GraphBuilder, mulberry32 } from '../../src/onnx/builder.ts';
import { windowOutSize, samePads } from '../../src/tiling/geometry.ts';

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
  for (let tries = 0; added < n && tries < 20; tries++) {
    const before = { ...s };
    if (addOp(b, r, s, desc, opset, opts.minSide)) {
      added++;
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
  if (wantReductions && q() < (opts.head ?? 0)) addHead(b, q, s, desc, opset, outputs);
  else if (!outputs.has(s.x)) b.output(s.x);
  return { bytes: b.build(), shape, desc, out: [s.h, s.w] };
}
