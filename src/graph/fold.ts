import { DataType, type TensorProto } from '../onnx/model-io.ts';
import { linkNodes, type IrGraph, type IrNode } from './ir.ts';
import { inferShapes, type ShapeInfo } from './shapes.ts';

/** Inputs of these ops that only steer the op (sizes, scales), never carry data. */
const STEERING: Record<string, number[]> = { Resize: [1, 2, 3], Upsample: [1] };

/**
 * Shape inference for one input shape, then constant folding of the integer shape arithmetic
 * that feeds Resize's sizes (PyTorch's `F.interpolate(x, size=skip.shape[2:])` exports
 * Shape -> Slice/Gather -> Concat -> Resize). Left in the graph, those nodes are not spatially
 * local: they would form master stages and carry int64 tensors across stage boundaries. The plan
 * is made for one input shape, so their values are fixed for it.
 *
 * Only chains whose every consumer is another folded node or a steering input are folded: a
 * Reshape reading Shape(x)[0] (the batch) must keep computing it, since plans are batch-agnostic.
 * (A Resize left on the master then reads sizes with the plan's batch: plan for the batch you run.)
 *
 * Nodes computed from constants alone (a QDQ model's DequantizeLinear of its weights) leave the
 * node list too, into `derived`: sub-models copy them next to their readers (planner/submodel.ts).
 */
export function analyzeGraph(g: IrGraph, inputShapes: Record<string, number[]>): { graph: IrGraph; info: ShapeInfo } {
  const info = inferShapes(g, inputShapes);
  const outputs = new Set(g.outputs);
  const intType = (t: string) => { const ty = info.types.get(t); return ty === DataType.INT64 || ty === DataType.INT32; };
  const known = (n: IrNode) => n.outputs.every((o) => o && info.values.has(o) && intType(o) && !outputs.has(o) && info.shapes.get(o)?.length === 1);
  const fold = new Set(g.nodes.filter(known));
  // Drop candidates with a consumer that reads the value as data, until nothing changes.
  for (let changed = true; changed;) {
    changed = false;
    for (const n of [...fold]) {
      const ok = n.outputs.every((o) => (g.consumers.get(o) ?? []).every((c) => fold.has(c)
        || c.inputs.every((x, i) => x !== o || (STEERING[c.op] ?? []).includes(i))));
      if (!ok) { fold.delete(n); changed = true; }
    }
  }
  const derivable = new Set(['DequantizeLinear', 'Cast', 'Identity', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze']);
  const derived = new Map<string, IrNode>();
  for (const n of g.nodes) {
    if (fold.has(n) || !derivable.has(n.op) || n.domain) continue;
    const ins = n.inputs.filter((x) => x);
    if (!ins.length || !ins.every((x) => g.constants.has(x) || derived.has(x) || [...fold].some((f) => f.outputs.includes(x)))) continue;
    if (n.outputs.some((o) => outputs.has(o))) continue;
    for (const o of n.outputs) if (o) derived.set(o, n);
  }
  if (!fold.size && !derived.size) return { graph: g, info };
  const constants = new Map(g.constants);
  for (const n of fold) {
    for (const o of n.outputs) {
      const v = info.values.get(o)!;
      const t: TensorProto = { name: o, dims: [v.length], dataType: info.types.get(o), int64Data: info.types.get(o) === DataType.INT64 ? v : undefined, int32Data: info.types.get(o) === DataType.INT32 ? v : undefined };
      constants.set(o, t);
    }
  }
  const derivedNodes = new Set(derived.values());
  const nodes = g.nodes.filter((n) => !fold.has(n) && !derivedNodes.has(n));
  return { graph: { ...g, nodes, constants, ...linkNodes(nodes), derived }, info };
}
