import { AttrType, DataType, encodeModel, lowestOf, scalarTensor, type ValueInfoProto, type NodeProto, type TensorProto } from '../onnx/model-io.ts';
import type { IrGraph, IrNode } from '../graph/ir.ts';
import type { ShapeInfo } from '../graph/shapes.ts';
import type { RuntimePad } from '../plan/schema.ts';
import { attrFloat } from '../graph/ir.ts';
import { ortFloat16 } from '../graph/types.ts';

/** Runtime Pad needs opset 11 (pads as an input); older models are lifted to it. */
const MIN_SUB_OPSET = 11;

type AttrIn = NonNullable<NodeProto['attribute']>[number];

const intsAttr = (name: string, ints: number[]): AttrIn => ({ name, type: AttrType.INTS, ints });
const strAttr = (name: string, v: string): AttrIn => ({ name, type: AttrType.STRING, s: Buffer.from(v) });
const floatTensor = (name: string, dims: number[], values: number[]): TensorProto => ({
  name, dims, dataType: DataType.FLOAT, rawData: new Uint8Array(new Float32Array(values).buffer),
});
const int64Tensor = (name: string, dims: number[], values: number[]): TensorProto => ({
  name, dims, dataType: DataType.INT64, rawData: new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer),
});

function valueInfo(name: string, dims: (number | string)[], elemType: number = DataType.FLOAT): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/** Collects nodes and the constants they reference into a standalone model. */
class SubGraph {
  nodes: NodeProto[] = [];
  initializers = new Map<string, TensorProto>();
  private counter = 0;
  constructor(private g: IrGraph) {}
  fresh(base: string) { return `${base}__${this.counter++}`; }
  private derivedDone = new Set<IrNode>();
  useConstants(inputs: string[]) {
    for (const x of inputs) {
      const t = this.g.constants.get(x);
      if (t && !this.initializers.has(x)) this.initializers.set(x, { ...t, name: x });
      // Nodes computed from constants alone go into every sub-model that reads them, verbatim.
      const d = this.g.derived?.get(x);
      if (d && !this.derivedDone.has(d)) {
        this.derivedDone.add(d);
        this.add(d.proto);
      }
    }
  }
  add(node: NodeProto) { this.useConstants(node.input ?? []); this.nodes.push(node); }
  /**
   * A float16 tensor the whole model holds in float32 (graph/types.ts `float16Boundaries`)
   * arrives as float32 `t`; its readers get `t__h`, behind the Cast and the two Negs that let
   * ORT remove the same Cast pairs here as in the whole model.
   */
  widenInput(t: string): string {
    this.nodes.push({ opType: 'Cast', input: [t], output: [`${t}__w16`], attribute: [{ name: 'to', type: AttrType.INT, i: DataType.FLOAT16 }] });
    this.nodes.push({ opType: 'Neg', input: [`${t}__w16`], output: [`${t}__wneg`] });
    this.nodes.push({ opType: 'Neg', input: [`${t}__wneg`], output: [`${t}__h`] });
    return `${t}__h`;
  }
  /** The producing side of widenInput: `t__h` leaves as float32 `t`, unrounded. */
  widenOutput(t: string) {
    this.nodes.push({ opType: 'Neg', input: [`${t}__h`], output: [`${t}__wneg`] });
    this.nodes.push({ opType: 'Neg', input: [`${t}__wneg`], output: [`${t}__w16`] });
    this.nodes.push({ opType: 'Cast', input: [`${t}__w16`], output: [t], attribute: [{ name: 'to', type: AttrType.INT, i: DataType.FLOAT }] });
  }
  constant(t: TensorProto) { this.initializers.set(t.name!, t); return t.name!; }
  build(opset: number, inputs: ValueInfoProto[], outputs: ValueInfoProto[], name: string): Uint8Array {
    const extraDomains = (this.g.model.opsetImport ?? []).filter((o) => o.domain && o.domain !== 'ai.onnx');
    return encodeModel({
      irVersion: 7,
      producerName: 'fc-tiled-cnn',
      opsetImport: [{ domain: '', version: opset }, ...extraDomains],
      graph: {
        name,
        node: this.nodes,
        input: inputs,
        output: outputs,
        // Sorted for byte-determinism: the plan stores the sub-model's hash.
        initializer: [...this.initializers.values()].sort((a, b) => (a.name! < b.name! ? -1 : a.name! > b.name! ? 1 : 0)),
      },
    });
  }
}

function withAttrs(node: NodeProto, drop: string[], add: AttrIn[]): NodeProto {
  const attribute = (node.attribute ?? []).filter((a) => !drop.includes(a.name ?? '') && !add.some((b) => b.name === a.name));
  return { ...node, attribute: [...attribute, ...add] };
}

/**
 * Rewrites a node for a sub-model whose opset may be higher than the model's: the handful of
 * tileable ops whose signature changed between opsets 7 and 11.
 */
function liftNode(sub: SubGraph, node: IrNode, p: NodeProto, modelOpset: number): NodeProto {
  if (modelOpset >= MIN_SUB_OPSET) return p;
  switch (node.op) {
    case 'Clip': {
      const lo = sub.constant(floatTensor(sub.fresh('clip_min'), [], [attrFloat(node, 'min', -3.4028234663852886e38)]));
      const hi = sub.constant(floatTensor(sub.fresh('clip_max'), [], [attrFloat(node, 'max', 3.4028234663852886e38)]));
      return { ...withAttrs(p, ['min', 'max'], []), input: [p.input![0], lo, hi] };
    }
    case 'BatchNormalization':
      return withAttrs(p, ['spatial', 'is_test', 'consumed_inputs'], []);
    case 'Dropout':
      return { ...withAttrs(p, ['ratio', 'is_test'], []), opType: 'Identity', output: [p.output![0]] };
    default:
      return p;
  }
}

export interface GroupSubModelSpec {
  id: number;
  nodes: IrNode[];
  inputs: { name: string; shape: number[]; spatial: boolean }[];
  outputs: { name: string; shape: number[] }[];
  runtimePads: RuntimePad[];
  /** float16 tensors that cross as float32 (Classified.widen). */
  widen?: ReadonlySet<string>;
}

/**
 * One standalone model per group, shared by all of its tiles: the weights are stored once.
 * Tiles differ only in the int64 `[8]` pads fed to runtime Pad nodes (image-border padding
 * and halo crops), so one ORT session per group serves every tile.
 */
export function buildGroupModel(g: IrGraph, info: ShapeInfo, spec: GroupSubModelSpec): Uint8Array {
  const sub = new SubGraph(g);
  const opset = Math.max(MIN_SUB_OPSET, g.opset);
  const padsByEdge = new Map<string, RuntimePad>();
  const masks = new Map<number, { a: string; b: string }>();
  const outCrop = new Map<string, string>();
  const selfCrop = new Map<number, string>();
  for (const rp of spec.runtimePads) {
    if (rp.use === 'input') padsByEdge.set(`${rp.node}:${rp.input}`, rp);
    else if (rp.use === 'output') outCrop.set(rp.tensor, rp.name);
    else if (rp.use === 'crop') selfCrop.set(rp.node, rp.name);
    else {
      const m = masks.get(rp.node) ?? { a: '', b: '' };
      if (rp.use === 'mask1') m.a = rp.name; else m.b = rp.name;
      masks.set(rp.node, m);
    }
  }
  // Output crops: the producer writes `<t>__full`, the sub-model output `<t>` is its crop.
  // A widened input or output is `<t>__h` inside (SubGraph.widenInput).
  const widened = new Set([...spec.inputs, ...spec.outputs].map((x) => x.name).filter((t) => spec.widen?.has(t)));
  const rename = (t: string) => (outCrop.has(t) ? `${t}__full` : widened.has(t) ? `${t}__h` : t);
  const typeOf = (t: string) => info.types.get(t) ?? DataType.FLOAT;
  const boundaryType = (t: string) => (widened.has(t) ? DataType.FLOAT : typeOf(t));
  for (const i of spec.inputs) if (widened.has(i.name)) sub.widenInput(i.name);
  const fillConst = new Map<string, string>();
  // The fill has the padded tensor's element type (Pad requires it): a float16 map's border
  // is a float16 zero, a QLinearConv's its uint8 zero point, an integer MaxPool's its lowest value.
  const fillOf = (v: number | '-inf', type: number) => {
    const key = `${type}:${v}`;
    if (!fillConst.has(key)) {
      const value = v === '-inf' ? lowestOf(type) : v;
      fillConst.set(key, sub.constant(scalarTensor(`__fill_${fillConst.size}`, type, value)));
    }
    return fillConst.get(key)!;
  };
  const pad = (x: string, padsInput: string, fill: number | '-inf', type: number, out?: string, mode?: 'reflect' | 'edge') => {
    const y = out ?? sub.fresh(x);
    const inputs = mode ? [x, padsInput] : [x, padsInput, fillOf(fill, type)];
    sub.add({ opType: 'Pad', input: inputs, output: [y], attribute: [{ name: 'mode', type: AttrType.STRING, s: Buffer.from(mode ?? 'constant') }] });
    return y;
  };

  // A runtime Pad between DequantizeLinear and its op would hide the DQ -> op -> Q pattern that
  // ORT fuses into integer kernels (QLinearConv, ...) in the whole model, and the tiles would
  // compute in float what the whole model computes in integers. So the pad moves before the DQ,
  // on the quantized tensor, with the fill quantized: DQ(pad(q, zp)) = pad(DQ(q), 0) exactly,
  // and the lowest quantized value serves a MaxPool's -inf.
  const inGroup = new Set(spec.nodes);
  const beforeDq = new Map<number, { rp: RuntimePad & { use: 'input' }; fill: number }>();
  const movedEdges = new Set<string>();
  for (const rp of spec.runtimePads) {
    if (rp.use !== 'input' || masks.has(rp.node)) continue;
    const dq = g.producer.get(rp.tensor);
    if (!dq || dq.op !== 'DequantizeLinear' || !inGroup.has(dq) || beforeDq.has(dq.index)) continue;
    if ((g.consumers.get(rp.tensor) ?? []).length !== 1 || g.outputs.includes(rp.tensor)) continue;
    const zp = dq.inputs[2] ? info.values.get(dq.inputs[2]) : [0];
    if (!zp || zp.length !== 1) continue;
    let fill: number;
    if (rp.mode) fill = 0;
    else if (rp.fill === '-inf') fill = lowestOf(typeOf(dq.inputs[0]));
    else if (rp.fill === 0) fill = zp[0];
    else continue;
    beforeDq.set(dq.index, { rp, fill });
    movedEdges.add(`${rp.node}:${rp.input}`);
  }

  // A runtime Pad (no float16 kernel) between two ops changes what ORT decides for a float16
  // one beside it (graph/types.ts `ortFloat16`): a float16-kernel op whose reader or first
  // input's producer was a float16-kernel op would look isolated and run in float32. A Clip
  // without bounds (a float16 kernel, an exact identity) on that side keeps the decision.
  const ort = ortFloat16(g, info.types);
  const inGroupNode = (t: string) => { const q = g.producer.get(t); return q && inGroup.has(q) ? q : undefined; };
  const keepHalf = (x: string) => {
    const y = sub.fresh(`${x}__keep`);
    sub.nodes.push({ opType: 'Clip', input: [x], output: [y] });
    return y;
  };
  const halfKernelBefore = (t: string) => { const q = inGroupNode(t); return !!q && ort.isHalf(t) && ort.halfKernel(q) && q.op !== 'Cast'; };
  for (const node of spec.nodes) {
    let p: NodeProto = { ...node.proto, input: node.proto.input!.map(rename), output: node.proto.output!.map(rename) };
    p = liftNode(sub, node, p, g.opset);
    const original = p.input!.slice();
    const inputs = p.input!.slice();
    for (let i = 0; i < inputs.length; i++) {
      const rp = padsByEdge.get(`${node.index}:${i}`);
      if (rp && rp.use === 'input' && !movedEdges.has(`${node.index}:${i}`)) {
        const t = node.inputs[i];
        const halfReader = ort.isHalf(t) && ort.halfKernel(node);
        const before = halfReader && halfKernelBefore(t) ? keepHalf(inputs[i]) : inputs[i];
        inputs[i] = pad(before, rp.name, rp.fill, typeOf(t), undefined, rp.mode);
        const q = g.producer.get(t);
        if (halfReader && ort.firstHalfInput(node) === t && !(q && ort.needsCast(q))) inputs[i] = keepHalf(inputs[i]);
      }
    }
    const moved = beforeDq.get(node.index);
    if (moved) inputs[0] = pad(inputs[0], moved.rp.name, moved.fill, typeOf(node.inputs[0]), undefined, moved.rp.mode);
    p = { ...p, input: inputs };
    switch (node.op) {
      case 'Conv': case 'ConvInteger': case 'QLinearConv': case 'MaxPool': case 'AveragePool': case 'LpPool':
        // Every pad now comes from the runtime Pad: the op itself runs unpadded, floor mode.
        p = withAttrs(p, ['auto_pad', 'pads', 'ceil_mode'], [intsAttr('pads', [0, 0, 0, 0])]);
        if (node.op === 'AveragePool') p = withAttrs(p, ['count_include_pad'], []);
        break;
      case 'ConvTranspose':
        p = withAttrs(p, ['auto_pad', 'pads'], [intsAttr('pads', [0, 0, 0, 0])]);
        break;
      case 'Pad':
        // The model's Pad is exactly its runtime edge pad (or nothing, if no tile pads).
        p = { opType: 'Identity', input: [inputs[0]], output: [p.output![0]], name: p.name };
        break;
      case 'Resize': {
        const x = info.shapes.get(node.inputs[0])!;
        const y = info.shapes.get(node.outputs[0])!;
        const scales = sub.constant(floatTensor(sub.fresh('scales'), [4], [1, 1, y[2] / x[2], y[3] / x[3]]));
        const roi = sub.constant(floatTensor(sub.fresh('roi'), [0], []));
        p = { ...p, input: [inputs[0], roi, scales] };
        // Lifted from opset 10: spell out Resize-10's mapping, which opset 11's defaults changed.
        if (g.opset < 11) p = withAttrs(p, [], [strAttr('coordinate_transformation_mode', 'asymmetric'), strAttr('nearest_mode', 'floor')]);
        break;
      }
    }
    const mask = masks.get(node.index);
    if (mask) {
      // AveragePool divisor per position: sum / count, with count pooled from a ones-mask that is
      // 1 where the model counts a position and 0 elsewhere.
      const x = original[0];
      const y = p.output![0];
      const m = sub.fresh('maskshape');
      const hw = sub.constant(int64Tensor(sub.fresh('k'), [4], [0, 0, 1, 1]));
      const rp = padsByEdge.get(`${node.index}:0`);
      if (rp && inputs[0] !== x) {
        // The unpadded size from the padded map's: a Shape reading the map itself would make a
        // float16 map's producer look not isolated to ORT (graph/types.ts `float16Boundaries`),
        // and it would round where the whole model does not.
        const shape = sub.fresh('shape');
        sub.add({ opType: 'Shape', input: [inputs[0]], output: [shape] });
        const slice = (from: number) => {
          const out = sub.fresh('pads');
          const i64 = (v: number) => sub.constant(int64Tensor(sub.fresh('k'), [1], [v]));
          sub.add({ opType: 'Slice', input: [rp.name, i64(from), i64(from + 4), i64(0)], output: [out] });
          return out;
        };
        const both = sub.fresh('pads');
        sub.add({ opType: 'Add', input: [slice(0), slice(4)], output: [both] });
        const unpadded = sub.fresh('shape');
        sub.add({ opType: 'Sub', input: [shape, both], output: [unpadded] });
        sub.add({ opType: 'Mul', input: [unpadded, hw], output: [m] });
      } else {
        const shape = sub.fresh('shape');
        sub.add({ opType: 'Shape', input: [x], output: [shape] });
        sub.add({ opType: 'Mul', input: [shape, hw], output: [m] });
      }
      const m2 = sub.fresh('maskshape');
      sub.add({ opType: 'Add', input: [m, sub.constant(int64Tensor(sub.fresh('k'), [4], [1, 1, 0, 0]))], output: [m2] });
      const ones = sub.fresh('ones');
      const xt = typeOf(node.inputs[0]);
      sub.add({ opType: 'ConstantOfShape', input: [m2], output: [ones], attribute: [{ name: 'value', type: AttrType.TENSOR, t: scalarTensor('v', xt, 1, [1]) }] });
      const counted = pad(pad(ones, mask.a, 1, xt), mask.b, 0, xt);
      const sum = sub.fresh('avgsum');
      const cnt = sub.fresh('avgcnt');
      sub.add({ ...p, output: [sum], name: p.name ? `${p.name}__sum` : '' });
      sub.add({ ...p, input: [counted], output: [cnt], name: p.name ? `${p.name}__count` : '' });
      sub.add({ opType: 'Div', input: [sum, cnt], output: [y] });
      continue;
    }
    const crop = selfCrop.get(node.index);
    if (crop) {
      const y = p.output![0];
      const raw = sub.fresh(y);
      sub.add({ ...p, output: [raw, ...p.output!.slice(1)] });
      pad(ort.isHalf(node.outputs[0]) && ort.halfKernel(node) && node.op !== 'Cast' ? keepHalf(raw) : raw, crop, 0, typeOf(node.outputs[0]), y);
      continue;
    }
    sub.add(p);
  }
  for (const [t, name] of outCrop) pad(halfKernelBefore(t) && !widened.has(t) ? keepHalf(`${t}__full`) : `${t}__full`, name, 0, typeOf(t), widened.has(t) ? `${t}__h` : t);
  for (const o of spec.outputs) if (widened.has(o.name)) sub.widenOutput(o.name);
  const inputs = [
    ...spec.inputs.map((i) => valueInfo(i.name, i.spatial ? ['N', i.shape[1], `h_${i.name}`, `w_${i.name}`] : i.shape, boundaryType(i.name))),
    ...spec.runtimePads.map((rp) => valueInfo(rp.name, [8], DataType.INT64)),
  ];
  const outputs = spec.outputs.map((o) => valueInfo(o.name, ['N', o.shape[1], `h_${o.name}`, `w_${o.name}`], boundaryType(o.name)));
  return sub.build(opset, inputs, outputs, `group_${spec.id}`);
}

/** A master segment: the model's own nodes, verbatim, as a standalone model. */
export function buildMasterModel(g: IrGraph, info: ShapeInfo, id: number, nodes: IrNode[], inputs: string[], outputs: string[], widen: ReadonlySet<string> = new Set()): Uint8Array {
  const sub = new SubGraph(g);
  // Widened inputs and outputs are `<t>__h` inside, as in buildGroupModel.
  const widened = new Set([...inputs, ...outputs].filter((t) => widen.has(t)));
  const rename = (t: string) => (widened.has(t) ? `${t}__h` : t);
  for (const t of inputs) if (widened.has(t)) sub.widenInput(t);
  for (const n of nodes) sub.add(widened.size ? { ...n.proto, input: n.proto.input!.map(rename), output: n.proto.output!.map(rename) } : n.proto);
  for (const t of outputs) if (widened.has(t)) sub.widenOutput(t);
  const elemType = (t: string) => (widened.has(t) ? DataType.FLOAT : info.types.get(t) ?? DataType.FLOAT);
  const vi = (t: string) => {
    const s = info.shapes.get(t);
    // Batch stays symbolic so one plan serves any batch size.
    return s ? valueInfo(t, s.map((d, i) => (i === 0 ? 'N' : d)), elemType(t)) : { name: t, type: { tensorType: { elemType: elemType(t) } } };
  };
  return sub.build(g.opset, inputs.map(vi), outputs.map(vi), `master_${id}`);
}

