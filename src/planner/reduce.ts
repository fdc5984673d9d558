import { attrInt, isConstant, type IrGraph, type IrNode } from '../graph/ir.ts';
import { axesOf, normAxes, type ShapeInfo } from '../graph/shapes.ts';
import type { Reduction } from '../plan/schema.ts';

const isMap = (s: number[] | undefined) => !!s && s.length === 4 && s[2] * s[3] > 1;

/** A global H,W reduction the workers can compute from the cells they own, or undefined. */
export function reductionOf(node: IrNode, info: ShapeInfo): Reduction | undefined {
  const x = info.shapes.get(node.inputs[0]);
  if (!isMap(x)) return undefined;
  const base = { node: node.index, input: node.inputs[0], output: node.outputs[0] };
  switch (node.op) {
    case 'GlobalAveragePool': return { ...base, op: 'mean', keepdims: true };
    case 'GlobalMaxPool': return { ...base, op: 'max', keepdims: true };
    case 'ReduceMean': case 'ReduceMax': case 'ReduceSum': {
      const axes = axesOf(node, info.values, 1);
      if (!axes || attrInt(node, 'noop_with_empty_axes', 0)) return undefined;
      const ax = [...new Set(normAxes(axes, 4))].sort();
      if (ax.length !== 2 || ax[0] !== 2 || ax[1] !== 3) return undefined;
      const op = node.op === 'ReduceMean' ? 'mean' : node.op === 'ReduceMax' ? 'max' : 'sum';
      return { ...base, op, keepdims: attrInt(node, 'keepdims', 1) === 1 };
    }
    default: return undefined;
  }
}

export interface ReduceSplit { reductions: Reduction[]; branch: IrNode[]; branchInputs: string[]; branchOutputs: string[] }

/**
 * Splits a master segment into global reductions of its feature-map inputs and a branch that
 * reads only their (C-sized) results and other small tensors, e.g. an SE block's
 * GlobalAveragePool, then two 1x1 convs and a gate. Undefined when some op reads a map
 * another way (a Flatten of a 7x7 map, say): that segment needs the whole map on the master.
 */
export function splitReductions(g: IrGraph, info: ShapeInfo, nodes: IrNode[], inputs: string[], outputs: string[]): ReduceSplit | undefined {
  const reductions: Reduction[] = [];
  const branch: IrNode[] = [];
  const stageInputs = new Set(inputs);
  for (const n of nodes) {
    const r = stageInputs.has(n.inputs[0]) ? reductionOf(n, info) : undefined;
    if (r) reductions.push(r);
    else branch.push(n);
  }
  if (!reductions.length) return undefined;
  // Every map the stage reads goes through reductions only.
  for (const x of inputs) if (isMap(info.shapes.get(x)) && branch.some((n) => n.inputs.includes(x))) return undefined;
  for (const n of branch) for (const x of n.inputs) if (x && !isConstant(g, x) && stageInputs.has(x) && isMap(info.shapes.get(x))) return undefined;
  const inBranch = new Set(branch.flatMap((n) => n.outputs));
  const branchInputs: string[] = [];
  for (const n of branch) {
    for (const x of n.inputs) if (x && !isConstant(g, x) && !inBranch.has(x) && !branchInputs.includes(x)) branchInputs.push(x);
  }
  const branchOutputs = outputs.filter((o) => inBranch.has(o));
  return { reductions, branch, branchInputs, branchOutputs };
}
