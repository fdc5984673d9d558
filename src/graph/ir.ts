import { AttrType, toNum, tensorDims, type ModelProto, type NodeProto, type TensorProto } from '../onnx/model-io.ts';
import { ModelDecodeError, UnsupportedModelError } from '../onnx/errors.ts';
import { expandInstanceNorm } from './expand.ts';

export type AttrValue = number | number[] | string | string[] | TensorProto;

export interface IrNode {
  /** Position in the model's `graph.node` list: the stable identifier (node names may be empty or repeated). */
  index: number;
  /** Human-readable label for messages: the node name, or `<op>#<index>` when unnamed. */
  label: string;
  op: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  proto: NodeProto;
}

export interface GraphInput {
  name: string;
  /** Declared dims: numbers, symbolic names, or null when unknown. */
  dims: (number | string | null)[];
  elemType: number;
}

export interface IrGraph {
  label: string;
  model: ModelProto;
  opset: number;
  /** Non-Constant nodes in topological order. */
  nodes: IrNode[];
  /** Initializers plus folded Constant nodes. */
  constants: Map<string, TensorProto>;
  /** Real graph inputs (initializers listed as inputs are excluded). */
  inputs: GraphInput[];
  outputs: string[];
  producer: Map<string, IrNode>;
  consumers: Map<string, IrNode[]>;
  /**
   * Nodes computed from constants alone (a QDQ model's DequantizeLinear of its int8 weights),
   * by output name: not stage members, but copied into every sub-model that reads them, so ORT
   * sees the same DQ -> Conv -> Q pattern (and fuses it the same way) as in the whole model.
   */
  derived?: Map<string, IrNode>;
}

/** A constant, or the output of a node computed from constants alone. */
export const isConstant = (g: IrGraph, t: string) => g.constants.has(t) || !!g.derived?.has(t);

function readAttr(a: NonNullable<NodeProto['attribute']>[number]): AttrValue | undefined {
  switch (a.type) {
    case AttrType.INT: return toNum(a.i);
    case AttrType.INTS: return (a.ints ?? []).map(toNum);
    case AttrType.FLOAT: return a.f ?? 0;
    case AttrType.FLOATS: return Array.from(a.floats ?? []);
    case AttrType.STRING: return Buffer.from(a.s ?? new Uint8Array()).toString('utf8');
    case AttrType.STRINGS: return (a.strings ?? []).map((s) => Buffer.from(s).toString('utf8'));
    case AttrType.TENSOR: return a.t ?? undefined;
    default: return undefined;
  }
}

/** A Constant node's value as a tensor proto (value, value_float(s), value_int(s)). */
function constantTensor(node: NodeProto, name: string): TensorProto | undefined {
  for (const a of node.attribute ?? []) {
    if (a.name === 'value' && a.t) return { ...a.t, name };
    if (a.name === 'value_float') return { name, dataType: 1, dims: [], floatData: [a.f ?? 0] };
    if (a.name === 'value_floats') return { name, dataType: 1, dims: [a.floats?.length ?? 0], floatData: Array.from(a.floats ?? []) };
    if (a.name === 'value_int') return { name, dataType: 7, dims: [], int64Data: [a.i ?? 0] };
    if (a.name === 'value_ints') return { name, dataType: 7, dims: [a.ints?.length ?? 0], int64Data: a.ints ?? [] };
  }
  return undefined;
}

export function buildGraph(model: ModelProto, label = 'model'): IrGraph {
  const g = model.graph!;
  const opset = toNum((model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0);
  if (!opset) throw new ModelDecodeError('model has no default-domain opset import', { model: label });
  if (opset < 7 || opset > 23) throw new UnsupportedModelError(`opset ${opset} is outside the supported range 7..23`, { model: label });

  const constants = new Map<string, TensorProto>();
  for (const t of g.initializer ?? []) constants.set(t.name ?? '', t);

  const raw: IrNode[] = [];
  (g.node ?? []).forEach((proto, index) => {
    const op = proto.opType ?? '';
    const outputs = (proto.output ?? []).slice();
    if (op === 'Constant' && (!proto.domain || proto.domain === 'ai.onnx')) {
      const t = constantTensor(proto, outputs[0]);
      if (!t) throw new UnsupportedModelError('Constant node without a supported value attribute', { model: label, node: proto.name || `Constant#${index}`, op });
      constants.set(outputs[0], t);
      return;
    }
    const attrs: Record<string, AttrValue> = {};
    for (const a of proto.attribute ?? []) {
      const v = readAttr(a);
      if (v !== undefined && a.name) attrs[a.name] = v;
    }
    raw.push({ index, label: proto.name || `${op}#${index}`, op, domain: proto.domain ?? '', inputs: (proto.input ?? []).slice(), outputs, attrs, proto });
  });
  // Ops spelled out in ops the planner distributes (graph/expand.ts).
  let next = (g.node ?? []).length;
  for (let i = 0; i < raw.length; i++) {
    const e = expandInstanceNorm(raw[i], constants, opset, () => next++);
    if (!e) continue;
    for (const t of e.constants) constants.set(t.name!, t);
    raw.splice(i, 1, ...e.nodes);
    i += e.nodes.length - 1;
  }

  const inputs: GraphInput[] = [];
  for (const vi of g.input ?? []) {
    if (!vi.name || constants.has(vi.name)) continue;
    const tt = vi.type?.tensorType;
    const dims = (tt?.shape?.dim ?? []).map((d) => (d.dimValue != null && toNum(d.dimValue) > 0 ? toNum(d.dimValue) : d.dimParam ? d.dimParam : null));
    inputs.push({ name: vi.name, dims, elemType: tt?.elemType ?? 0 });
  }
  const outputs = (g.output ?? []).map((o) => o.name ?? '');

  // Kahn's algorithm, stable in file order: exporters usually emit sorted graphs, but the spec doesn't promise it.
  const available = new Set<string>([...constants.keys(), ...inputs.map((i) => i.name), '']);
  const pending = raw.slice();
  const nodes: IrNode[] = [];
  while (pending.length) {
    const i = pending.findIndex((n) => n.inputs.every((x) => available.has(x)));
    if (i < 0) {
      const n = pending[0];
      const missing = n.inputs.filter((x) => !available.has(x));
      throw new ModelDecodeError(`graph is not a DAG or references undefined tensors (${n.label} needs ${missing.join(', ')})`, { model: label });
    }
    const [n] = pending.splice(i, 1);
    nodes.push(n);
    for (const o of n.outputs) available.add(o);
  }

  return { label, model, opset, nodes, constants, inputs, outputs, ...linkNodes(nodes) };
}

/** Each tensor's producing node, and the nodes that read it (each once, in order). */
export function linkNodes(nodes: IrNode[]): { producer: Map<string, IrNode>; consumers: Map<string, IrNode[]> } {
  const producer = new Map<string, IrNode>();
  const consumers = new Map<string, IrNode[]>();
  for (const n of nodes) {
    for (const o of n.outputs) if (o) producer.set(o, n);
    for (const x of n.inputs) {
      if (!x) continue;
      const list = consumers.get(x) ?? [];
      if (!list.includes(n)) list.push(n);
      consumers.set(x, list);
    }
  }
  return { producer, consumers };
}

export function attrInt(n: IrNode, name: string, dflt: number): number {
  const v = n.attrs[name];
  return typeof v === 'number' ? v : dflt;
}
export function attrFloat(n: IrNode, name: string, dflt: number): number {
  const v = n.attrs[name];
  return typeof v === 'number' ? v : dflt;
}
export function attrInts(n: IrNode, name: string): number[] | undefined {
  const v = n.attrs[name];
  return Array.isArray(v) ? (v as number[]) : undefined;
}
export function attrStr(n: IrNode, name: string, dflt: string): string {
  const v = n.attrs[name];
  return typeof v === 'string' ? v : dflt;
}

export function constDims(g: IrGraph, name: string): number[] | undefined {
  const t = g.constants.get(name);
  return t ? tensorDims(t) : undefined;
}
