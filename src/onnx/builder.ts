/**
 * Deterministic ONNX graph builder.
 *
 * The same sequence of calls with the same arguments produces byte-identical
 * model bytes on every machine:
 *  - random weights come from a per-tensor seeded integer PRNG (mulberry32,
 *    seeded from a hash of the builder seed and the tensor name), mapped to
 *    floats using only IEEE-exact operations (+, -, *, /, Math.sqrt, fround);
 *    no transcendental Math functions are used;
 *  - tensor data is stored little-endian in `rawData`;
 *  - no timestamps, hostnames or other environment-dependent metadata.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type onnxNs = typeof onnxProto.onnx;
type IAttributeProto = onnxProto.onnx.IAttributeProto;
type INodeProto = onnxProto.onnx.INodeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IValueInfoProto = onnxProto.onnx.IValueInfoProto;

export type AttrValue =
  | number
  | number[]
  | string
  | { floats: number[] }
  /** Force a scalar FLOAT attribute even for integer values (e.g. Clip min=0). */
  | { float: number }
  | { tensor: { dims: number[]; data: Float32Array | BigInt64Array } };

export interface ConvOpts {
  stride?: number | [number, number];
  pads?: number[];
  dilation?: number | [number, number];
  group?: number;
  bias?: boolean;
  autoPad?: string;
  /** Node name; weights are named `${name}.weight` / `${name}.bias`. */
  name?: string;
}

export interface NodeOpts {
  name?: string;
  outputs?: number;
  outputNames?: string[];
}

export const PRODUCER_NAME = 'fc-tiled-cnn';
export const IR_VERSION = 8;

const FLOAT = 1; // onnx.TensorProto.DataType.FLOAT
const INT64 = 7; // onnx.TensorProto.DataType.INT64

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------
// Seeded PRNG (integer-only core, IEEE-exact float mapping)
// ---------------------------------------------------------------------------

/** 32-bit string hash (FNV-1a over UTF-16 code units, then avalanche). */
function hashString(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // murmur3 fmix32
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** mulberry32; returns uniform floats in [0, 1) with 32-bit resolution. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Approximately standard-normal samples via Irwin-Hall: the sum of 4 uniforms
 * has mean 2 and variance 1/3, so (sum - 2) * sqrt(3) has unit variance.
 * Only +, -, * and the correctly rounded Math.sqrt are used, so the results
 * are bit-identical on every IEEE-754 platform.
 */
const SQRT3 = Math.sqrt(3);
function fillNormal(out: Float32Array, rand: () => number, std: number): void {
  const scale = SQRT3 * std;
  for (let i = 0; i < out.length; i++) {
    const s = rand() + rand() + rand() + rand();
    out[i] = (s - 2) * scale;
  }
}

function fillUniform(out: Float32Array, rand: () => number, lo: number, hi: number): void {
  const span = hi - lo;
  for (let i = 0; i < out.length; i++) out[i] = lo + span * rand();
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function numel(dims: number[]): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid dim ${d} in [${dims.join(',')}]`);
    n *= d;
  }
  return n;
}

function toRawBytes(data: Float32Array | BigInt64Array): Uint8Array {
  if (LITTLE_ENDIAN) {
    // Copy so later mutation of the caller's array cannot change the model.
    return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  }
  const out = new Uint8Array(data.byteLength);
  const dv = new DataView(out.buffer);
  if (data instanceof Float32Array) data.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  else data.forEach((v, i) => dv.setBigInt64(i * 8, v, true));
  return out;
}

function tensorProto(name: string, dims: number[], data: Float32Array | BigInt64Array): ITensorProto {
  if (numel(dims) !== data.length) {
    throw new Error(`tensor ${name || '<attr>'}: dims [${dims.join(',')}] need ${numel(dims)} elements, got ${data.length}`);
  }
  return {
    name: name || undefined,
    dims,
    dataType: data instanceof Float32Array ? FLOAT : INT64,
    rawData: toRawBytes(data),
  };
}

function pair(v: number | [number, number] | undefined, dflt: number): [number, number] {
  if (v === undefined) return [dflt, dflt];
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

function valueInfo(name: string, shape: (number | string)[] | undefined): IValueInfoProto {
  const tensorType: onnxProto.onnx.TypeProto.ITensor = { elemType: FLOAT };
  if (shape) {
    tensorType.shape = {
      dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
    };
  }
  return { name, type: { tensorType } };
}

function encodeAttr(name: string, v: AttrValue): IAttributeProto {
  const T = (onnx as onnxNs).AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return { name, type: T.INT, i: v };
    return { name, type: T.FLOAT, f: v };
  }
  if (typeof v === 'string') {
    return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  }
  if (Array.isArray(v)) {
    if (v.every((x) => Number.isInteger(x))) return { name, type: T.INTS, ints: v.slice() };
    return { name, type: T.FLOATS, floats: v.slice() };
  }
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats.slice() };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  if ('tensor' in v) return { name, type: T.TENSOR, t: tensorProto('', v.tensor.dims, v.tensor.data) };
  throw new Error(`unsupported attribute value for ${name}`);
}

// ---------------------------------------------------------------------------
// GraphBuilder
// ---------------------------------------------------------------------------

export class GraphBuilder {
  readonly name: string;
  readonly opset: number;
  readonly seed: number;

  private readonly inputs: IValueInfoProto[] = [];
  private readonly outputs: IValueInfoProto[] = [];
  private readonly initializers: ITensorProto[] = [];
  private readonly nodes: INodeProto[] = [];
  /** Every value name defined so far (inputs, initializers, node outputs). */
  private readonly values = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private readonly opCounters = new Map<string, number>();
  private paramCount = 0;

  constructor(opts: { name: string; opset: number; seed?: number }) {
    this.name = opts.name;
    this.opset = opts.opset;
    this.seed = (opts.seed ?? 0) >>> 0;
    if (!Number.isInteger(opts.opset) || opts.opset < 7) throw new Error(`unsupported opset ${opts.opset}`);
  }

  /** Total number of elements in all initializers so far. */
  get numParams(): number {
    return this.paramCount;
  }

  private define(name: string): void {
    if (!name) throw new Error('empty value name');
    if (this.values.has(name)) throw new Error(`value name already defined: ${name}`);
    this.values.add(name);
  }

  private rng(name: string): () => number {
    return mulberry32(hashString(name, this.seed));
  }

  input(name: string, shape: (number | string)[]): string {
    this.define(name);
    this.inputs.push(valueInfo(name, shape));
    return name;
  }

  output(name: string, shape?: (number | string)[]): void {
    if (this.outputs.some((o) => o.name === name)) throw new Error(`duplicate graph output ${name}`);
    this.outputs.push(valueInfo(name, shape));
  }

  initializer(name: string, dims: number[], data: Float32Array | BigInt64Array): string {
    const t = tensorProto(name, dims, data);
    this.define(name);
    this.initializers.push(t);
    this.paramCount += data.length;
    return name;
  }

  /**
   * Initializer of any element type from its little-endian bytes (float16 weights, uint8 zero
   * points, int32 biases of quantized models).
   */
  rawInitializer(name: string, dataType: number, dims: number[], raw: Uint8Array): string {
    this.define(name);
    this.initializers.push({ name, dims, dataType, rawData: raw.slice() });
    this.paramCount += numel(dims);
    return name;
  }

  /** Seeded normal-ish (Irwin-Hall) float32 initializer with the given std. */
  randn(name: string, dims: number[], std: number): string {
    const data = new Float32Array(numel(dims));
    fillNormal(data, this.rng(name), std);
    return this.initializer(name, dims, data);
  }

  /** Seeded uniform float32 initializer in [lo, hi). */
  uniform(name: string, dims: number[], lo: number, hi: number): string {
    const data = new Float32Array(numel(dims));
    fillUniform(data, this.rng(name), lo, hi);
    return this.initializer(name, dims, data);
  }

  /** Float32 constant initializer (scalar when dims is []). */
  constant(name: string, dims: number[], values: number[] | Float32Array): string {
    return this.initializer(name, dims, Float32Array.from(values));
  }

  private uniqueNodeName(opType: string): string {
    let n = this.opCounters.get(opType) ?? 0;
    let name: string;
    do {
      name = `${opType}_${n++}`;
    } while (this.nodeNames.has(name));
    this.opCounters.set(opType, n);
    return name;
  }

  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: NodeOpts = {}): string[] {
    for (const i of inputs) {
      if (i !== '' && !this.values.has(i)) throw new Error(`${opType}: unknown input value ${i}`);
    }
    let name = opts.name;
    if (name === undefined) name = this.uniqueNodeName(opType);
    else if (this.nodeNames.has(name)) throw new Error(`duplicate node name ${name}`);
    this.nodeNames.add(name);

    const nOut = opts.outputNames?.length ?? opts.outputs ?? 1;
    const outNames =
      opts.outputNames?.slice() ?? Array.from({ length: nOut }, (_, i) => `${name}_output_${i}`);
    for (const o of outNames) this.define(o);

    const attribute = Object.keys(attrs)
      .filter((k) => attrs[k] !== undefined)
      .map((k) => encodeAttr(k, attrs[k]));
    this.nodes.push({ name, opType, input: inputs.slice(), output: outNames, attribute });
    return outNames;
  }

  // ----- convenience helpers ----------------------------------------------

  conv(x: string, cin: number, cout: number, k: number | [number, number], o: ConvOpts = {}): string {
    const [kh, kw] = pair(k, 1);
    const strides = pair(o.stride, 1);
    const dilations = pair(o.dilation, 1);
    const group = o.group ?? 1;
    if (cin % group !== 0 || cout % group !== 0) throw new Error(`conv: group ${group} must divide cin ${cin} and cout ${cout}`);
    const name = o.name ?? this.uniqueNodeName('Conv');
    const fanIn = (cin / group) * kh * kw;
    const w = this.randn(`${name}.weight`, [cout, cin / group, kh, kw], Math.sqrt(2 / fanIn));
    const inputs = [x, w];
    if (o.bias) {
      const bound = 1 / Math.sqrt(fanIn);
      inputs.push(this.uniform(`${name}.bias`, [cout], -bound, bound));
    }
    const attrs: Record<string, AttrValue> = {
      dilations,
      group,
      kernel_shape: [kh, kw],
    };
    if (o.autoPad !== undefined && o.autoPad !== 'NOTSET') attrs.auto_pad = o.autoPad;
    else attrs.pads = o.pads ? o.pads.slice() : [0, 0, 0, 0];
    attrs.strides = strides;
    return this.node('Conv', inputs, attrs, { name })[0];
  }

  /**
   * BatchNormalization (inference) with near-identity seeded statistics:
   * gamma ~ U(0.8, 1.2) (override with `gamma`), beta/mean ~ U(-0.1, 0.1),
   * var ~ U(0.5, 1.5).
   */
  bn(x: string, c: number, o: { name?: string; gamma?: [number, number] } = {}): string {
    const name = o.name ?? this.uniqueNodeName('BatchNormalization');
    const [glo, ghi] = o.gamma ?? [0.8, 1.2];
    const scale = this.uniform(`${name}.weight`, [c], glo, ghi);
    const bias = this.uniform(`${name}.bias`, [c], -0.1, 0.1);
    const mean = this.uniform(`${name}.running_mean`, [c], -0.1, 0.1);
    const variance = this.uniform(`${name}.running_var`, [c], 0.5, 1.5);
    const attrs: Record<string, AttrValue> = { epsilon: { float: 1e-5 } };
    if (this.opset < 9) attrs.spatial = 1;
    return this.node('BatchNormalization', [x, scale, bias, mean, variance], attrs, { name })[0];
  }

  relu(x: string, o: { name?: string } = {}): string {
    return this.node('Relu', [x], {}, { name: o.name })[0];
  }

  /** ReLU6 as Clip(0, 6): scalar inputs for opset >= 11, attributes before. */
  relu6(x: string, o: { name?: string } = {}): string {
    if (this.opset >= 11) {
      const lo = 'relu6.min';
      const hi = 'relu6.max';
      if (!this.values.has(lo)) this.constant(lo, [], [0]);
      if (!this.values.has(hi)) this.constant(hi, [], [6]);
      return this.node('Clip', [x, lo, hi], {}, { name: o.name })[0];
    }
    return this.node('Clip', [x], { max: { float: 6 }, min: { float: 0 } }, { name: o.name })[0];
  }

  /**
   * Fully connected layer as Gemm(transB=1), weight [out, in].
   * Weight std defaults to He (sqrt(2/in)); bias ~ U(-1/sqrt(in), 1/sqrt(in)).
   */
  gemm(x: string, fin: number, fout: number, o: { name?: string; std?: number; outputName?: string } = {}): string {
    const name = o.name ?? this.uniqueNodeName('Gemm');
    const w = this.randn(`${name}.weight`, [fout, fin], o.std ?? Math.sqrt(2 / fin));
    const bound = 1 / Math.sqrt(fin);
    const b = this.uniform(`${name}.bias`, [fout], -bound, bound);
    const attrs: Record<string, AttrValue> = { alpha: { float: 1 }, beta: { float: 1 }, transB: 1 };
    return this.node('Gemm', [x, w, b], attrs, {
      name,
      outputNames: o.outputName ? [o.outputName] : undefined,
    })[0];
  }

  maxPool(x: string, k: number, stride: number, pad: number, o: { name?: string } = {}): string {
    return this.node(
      'MaxPool',
      [x],
      { kernel_shape: [k, k], pads: [pad, pad, pad, pad], strides: [stride, stride] },
      { name: o.name },
    )[0];
  }

  globalAvgPool(x: string, o: { name?: string } = {}): string {
    return this.node('GlobalAveragePool', [x], {}, { name: o.name })[0];
  }

  flatten(x: string, o: { name?: string } = {}): string {
    return this.node('Flatten', [x], { axis: 1 }, { name: o.name })[0];
  }

  add(a: string, b: string, o: { name?: string } = {}): string {
    return this.node('Add', [a, b], {}, { name: o.name })[0];
  }

  /** Returns a deterministic, encoded onnx.ModelProto. */
  build(): Uint8Array {
    for (const o of this.outputs) {
      if (!this.values.has(o.name!)) throw new Error(`graph output ${o.name} is never produced`);
    }
    if (this.outputs.length === 0) throw new Error('graph has no outputs');
    const O = onnx as onnxNs;
    const model = O.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: this.opset }],
      producerName: PRODUCER_NAME,
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return O.ModelProto.encode(model).finish();
  }
}
