import { AttrType, DataType, tensorDims, type NodeProto, type TensorProto } from '../onnx/model-io.ts';
import type { IrNode } from './ir.ts';

/**
 * InstanceNormalization with constant scale and bias, spelled out in ops the planner already
 * distributes: y = (x - mean) * scale / sqrt(var + eps) + B, where mean and var are
 * ReduceMeans over H and W (var of the centred map, so no cancellation). Both reductions then
 * run in the workers from the cells they own, and the normalisation is applied locally by the
 * next group: no map is gathered for it. Returns undefined when the node does not qualify.
 *
 * New nodes get indices from `nextIndex` on, so the plan (which names nodes by index) rebuilds
 * the same graph from the same model.
 */
export function expandInstanceNorm(
  n: IrNode, constants: Map<string, TensorProto>, opset: number, nextIndex: () => number,
): { nodes: IrNode[]; constants: TensorProto[] } | undefined {
  if (n.op !== 'InstanceNormalization' || (n.domain && n.domain !== 'ai.onnx')) return undefined;
  const [x, s, b] = n.inputs;
  const y = n.outputs[0];
  const scale = constants.get(s);
  const bias = constants.get(b);
  if (!x || !y || !scale || !bias || scale.dataType !== DataType.FLOAT || bias.dataType !== DataType.FLOAT) return undefined;
  const c = tensorDims(scale).reduce((a, v) => a * v, 1);
  const eps = typeof n.attrs.epsilon === 'number' ? n.attrs.epsilon : 1e-5;
  const name = (k: string) => `${y}__in_${k}`;
  const extra: TensorProto[] = [
    { ...scale, name: name('scale'), dims: [1, c, 1, 1] },
    { ...bias, name: name('bias'), dims: [1, c, 1, 1] },
    { name: name('eps'), dataType: DataType.FLOAT, dims: [], floatData: [eps] },
  ];
  // ReduceMean takes its axes as an input from opset 18.
  const axesInput = opset >= 18;
  if (axesInput) extra.push({ name: name('axes'), dataType: DataType.INT64, dims: [2], int64Data: [2, 3] });
  const nodes: IrNode[] = [];
  const add = (op: string, inputs: string[], output: string, reduce = false) => {
    const index = nextIndex();
    const attribute: NonNullable<NodeProto['attribute']> = reduce
      ? [{ name: 'keepdims', type: AttrType.INT, i: 1 }, ...(axesInput ? [] : [{ name: 'axes', type: AttrType.INTS, ints: [2, 3] }])]
      : [];
    const ins = reduce && axesInput ? [...inputs, name('axes')] : inputs;
    const label = `${n.label}/${op}${nodes.length}`;
    const proto: NodeProto = { opType: op, input: ins, output: [output], name: label, attribute };
    nodes.push({ index, label, op, domain: '', inputs: ins, outputs: [output], attrs: reduce ? { keepdims: 1, ...(axesInput ? {} : { axes: [2, 3] }) } : {}, proto });
  };
  add('ReduceMean', [x], name('mean'), true);
  add('Sub', [x, name('mean')], name('centred'));
  add('Mul', [name('centred'), name('centred')], name('square'));
  add('ReduceMean', [name('square')], name('var'), true);
  add('Add', [name('var'), name('eps')], name('vareps'));
  add('Sqrt', [name('vareps')], name('std'));
  add('Div', [name('scale'), name('std')], name('factor'));
  add('Mul', [name('centred'), name('factor')], name('scaled'));
  add('Add', [name('scaled'), name('bias')], y);
  return { nodes, constants: extra };
}
