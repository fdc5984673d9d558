import { buildGraph, isConstant, type IrGraph, type IrNode } from '../graph/ir.ts';
import { numel, type ShapeInfo } from '../graph/shapes.ts';
import { analyzeGraph } from '../graph/fold.ts';
import { decodeModel, sha256, tensorByteSize } from '../onnx/model-io.ts';
import { InputShapeError, UnsupportedModelError } from '../onnx/errors.ts';
import { DataType } from '../onnx/model-io.ts';
import { boundaryDtype, dtypeBytes } from '../graph/types.ts';
import type { DType } from '../tensor/dtype.ts';
import { fullFlops } from '../tiling/ops.ts';
import { PLAN_VERSION, branchKey, planSchema, type GroupStage, type MasterStage, type Plan, type Stage } from '../plan/schema.ts';
import { articulationPoints, classifyAll, downsamplingCuts, formSpans, type Classified, type RawStage } from './stages.ts';
import { tileGroup } from './tiles.ts';
import { buildGroupModel, buildMasterModel } from './submodel.ts';
import { GridTooLargeError, PlanSpecError } from './errors.ts';
import { splitReductions } from './reduce.ts';
import { formChains } from './chains.ts';
import { chooseCuts, type CutContext, type CutCosts } from './cuts.ts';

export interface Grid { rows: number; cols: number }

/**
 * Where groups end. `exchange` (the default): where the cost of an exchange round and its
 * strips beats recomputing the halo (chooseCuts, priced for Function Compute). `none`: maximal groups (cut only by non-local ops). `block`: at every
 * articulation tensor that fans out (a residual block's input). `stage`: at articulation tensors where the
 * next group starts with a change of resolution. Or explicit tensor names.
 */
export type CutSpec = 'exchange' | 'none' | 'block' | 'stage' | { tensors: string[] };

export interface PlanOptions {
  inputShape: number[];
  /** One grid for every group, or one per group in order. */
  grid: Grid | Grid[];
  cuts?: CutSpec;
  name?: string;
  /** Prices for the `exchange` cut policy (default: Function Compute's). */
  cutCosts?: CutCosts;
  /** Widest chain of co-scheduled workers (the worker function's maximum instances). Default 100, FC's usual quota. */
  maxWorkers?: number;
}

export const DEFAULT_MAX_WORKERS = 100;

export interface PlannedModel {
  plan: Plan;
  graph: IrGraph;
  info: ShapeInfo;
  /** Sub-model bytes per stage id (a reduction stage's branch under `branchKey(id)`). */
  subModels: Map<number, Uint8Array>;
}



export function parseGrid(spec: string): Grid | Grid[] {
  const one = (s: string): Grid => {
    const m = /^(\d+)x(\d+)$/i.exec(s.trim());
    if (!m || +m[1] < 1 || +m[2] < 1) throw new PlanSpecError(`invalid grid "${s}": expected RxC with positive integers, e.g. 2x2`);
    return { rows: +m[1], cols: +m[2] };
  };
  const parts = spec.split(',');
  return parts.length === 1 ? one(parts[0]) : parts.map(one);
}

export function parseShape(spec: string): number[] {
  const dims = spec.toLowerCase().split('x').map((d) => Number(d));
  if (dims.length !== 4 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new PlanSpecError(`invalid input shape "${spec}": expected NxCxHxW with positive integers, e.g. 1x3x224x224`);
  }
  return dims;
}

function checkInputShape(g: IrGraph, shape: number[]) {
  if (g.inputs.length !== 1) throw new InputShapeError(`the planner supports models with one input, this one has ${g.inputs.length} (${g.inputs.map((i) => i.name).join(', ')})`, { model: g.label, input: g.inputs[0]?.name ?? '?' });
  const inp = g.inputs[0];
  if (inp.dims.length !== shape.length) {
    throw new InputShapeError(`shape ${shape.join('x')} has rank ${shape.length}, the model declares rank ${inp.dims.length} [${inp.dims.join(', ')}]`, { model: g.label, input: inp.name });
  }
  inp.dims.forEach((d, i) => {
    if (typeof d === 'number' && d !== shape[i]) {
      throw new InputShapeError(`dimension ${i} is ${shape[i]} but the model fixes it to ${d} (declared [${inp.dims.join(', ')}])`, { model: g.label, input: inp.name });
    }
  });
}

function splitSpans(spans: RawStage[], cls: Classified, cuts: CutSpec, info: ShapeInfo, exchangeCuts?: (span: RawStage, groupOrdinal: number) => number[]): RawStage[] {
  if (cuts === 'none') return spans;
  if (cuts === 'exchange') {
    const out: RawStage[] = [];
    spans.forEach((span) => {
      if (span.kind !== 'group') { out.push(span); return; }
      let start = 0;
      for (const after of exchangeCuts!(span, out.filter((r) => r.kind === 'group').length)) {
        out.push({ kind: 'group', nodes: span.nodes.slice(start, after + 1) });
        start = after + 1;
      }
      out.push({ kind: 'group', nodes: span.nodes.slice(start) });
    });
    return out;
  }
  const wanted = typeof cuts === 'object' ? new Set(cuts.tensors) : undefined;
  const found = new Set<string>();
  const out: RawStage[] = [];
  for (const span of spans) {
    if (span.kind !== 'group') { out.push(span); continue; }
    const points = articulationPoints(span, cls);
    const hw = (t: string) => { const s = info.shapes.get(t)!; return `${s[2]}x${s[3]}`; };
    let chosen = points;
    if (wanted) chosen = points.filter((p) => wanted.has(p.tensor));
    else if (cuts === 'block') {
      // Block inputs fan out (residual/identity branches); plain chains get no block cuts.
      chosen = points.filter((p) => p.fanOut > 1);
    }
    else if (cuts === 'stage') {
      // Cut before the op that changes resolution: each group then holds one downsampling step
      // at its start, so its halo grows through one resolution only.
      chosen = points.filter((p, i) => {
        const next = points[i + 1]?.tensor ?? span.nodes[span.nodes.length - 1].outputs[0];
        return hw(next) !== hw(p.tensor);
      });
    }
    for (const p of chosen) found.add(p.tensor);
    let positions = chosen.map((p) => p.after);
    if (cuts === 'stage') {
      // Also every downsampling step with other maps live (FPN backbones): chains move halos only.
      positions = [...new Set([...positions, ...downsamplingCuts(span, cls, info).map((p) => p.after)])].sort((a, b) => a - b);
    }
    let start = 0;
    for (const after of positions) {
      out.push({ kind: 'group', nodes: span.nodes.slice(start, after + 1) });
      start = after + 1;
    }
    out.push({ kind: 'group', nodes: span.nodes.slice(start) });
  }
  if (wanted) {
    const missing = [...wanted].filter((t) => !found.has(t));
    if (missing.length) throw new PlanSpecError(`cut tensors ${missing.join(', ')} are not articulation points of any group (a cut must leave exactly one live feature map)`);
  }
  return out;
}

export interface ModelAnalysis { graph: IrGraph; info: ShapeInfo; cls: Classified; spans: RawStage[] }

/** Decodes, checks the input shape, infers shapes, classifies ops and forms maximal spans. */
export function analyzeModel(modelBytes: Uint8Array, inputShape: number[], label = 'model'): ModelAnalysis {
  const read = buildGraph(decodeModel(modelBytes, label), label);
  checkInputShape(read, inputShape);
  const { graph, info } = analyzeGraph(read, { [read.inputs[0].name]: inputShape });
  const cls = classifyAll(graph, info);
  return { graph, info, cls, spans: formSpans(graph, cls) };
}

/** Tensors a set of nodes reads from outside, and produces for outside (or as model outputs). */
export function stageIO(graph: IrGraph, nodes: IrNode[]): { inputs: string[]; outputs: string[] } {
  const inSet = new Set(nodes);
  const graphOutputs = new Set(graph.outputs);
  const inputs: string[] = [];
  for (const n of nodes) for (const x of n.inputs) if (x && !isConstant(graph, x) && !inSet.has(graph.producer.get(x)!) && !inputs.includes(x)) inputs.push(x);
  const outputs: string[] = [];
  for (const n of nodes) for (const o of n.outputs) {
    if (!o) continue;
    const usedLater = (graph.consumers.get(o) ?? []).some((c) => !inSet.has(c));
    if ((usedLater || graphOutputs.has(o)) && !outputs.includes(o)) outputs.push(o);
  }
  return { inputs, outputs };
}

export function spatialInputsOf(inputs: string[], nodes: IrNode[], cls: Classified): string[] {
  return inputs.filter((x) => nodes.some((n) => cls.local.get(n)!.spatialInputs.some((i) => n.inputs[i] === x)));
}

/** Candidate cut tensors (articulation points) of every maximal group, for tools and tests. */
export function cutCandidates(modelBytes: Uint8Array, inputShape: number[]): { tensor: string; shape: number[]; fanOut: number }[] {
  const { info, cls, spans } = analyzeModel(modelBytes, inputShape);
  return spans.filter((r) => r.kind === 'group')
    .flatMap((r) => articulationPoints(r, cls).map((p) => ({ tensor: p.tensor, shape: info.shapes.get(p.tensor)!, fanOut: p.fanOut })));
}

export function planModel(modelBytes: Uint8Array, opts: PlanOptions): PlannedModel {
  const label = opts.name ?? 'model';
  const { graph, info, cls, spans } = analyzeModel(modelBytes, opts.inputShape, label);
  const inputName = graph.inputs[0].name;
  // Boundary tensors record their element type when it is not float32 (the runtime's default).
  // A float16 value the whole model holds in float32 crosses as float32 (Classified.widen).
  const widen = cls.widen ?? new Set<string>();
  const dtypeField = (t: string): { dtype?: DType } => {
    const type = widen.has(t) ? DataType.FLOAT : info.types.get(t) ?? DataType.FLOAT;
    const dtype = boundaryDtype(type);
    if (!dtype) throw new UnsupportedModelError(`tensor ${t} has element type ${type}, which cannot cross a stage boundary (supported: float32, float16, bfloat16, int8, uint8, int32, int64, bool)`, { model: label });
    return dtype === 'float32' ? {} : { dtype };
  };
  // A grid per group cannot share chains' cut pricing (which assumes one grid): cut by stage.
  const cutSpec = opts.cuts ?? (Array.isArray(opts.grid) ? 'stage' : 'exchange');
  if (cutSpec === 'exchange' && Array.isArray(opts.grid)) throw new PlanSpecError('cuts "exchange" need one grid for every group (a chain shares its grid); give explicit cuts with per-group grids');
  const ctx: CutContext = {
    cls, info, modelInput: inputName,
    io: (nodes) => { const { inputs, outputs } = stageIO(graph, nodes); return { inputs, outputs, spatialInputs: spatialInputsOf(inputs, nodes, cls) }; },
  };
  const raw = splitSpans(spans, cls, cutSpec, info, (span) => chooseCuts(span, opts.grid as Grid, ctx, opts.cutCosts));
  const groupCount = raw.filter((r) => r.kind === 'group').length;
  if (Array.isArray(opts.grid) && opts.grid.length !== groupCount) {
    throw new PlanSpecError(`${opts.grid.length} grids given for ${groupCount} groups`, { model: label });
  }


  const stages: Stage[] = [];
  const subModels = new Map<number, Uint8Array>();
  let nextGroupOrdinal = 0;
  raw.forEach((r, id) => {
    const { inputs, outputs } = stageIO(graph, r.nodes);
    const flopsOf = (n: IrNode) => (cls.local.has(n) ? fullFlops(cls.local.get(n)!, info) : 0);
    if (r.kind === 'master') {
      const reasons: Record<string, string> = {};
      for (const n of r.nodes) if (!reasons[n.op]) reasons[n.op] = cls.reasons.get(n) ?? '';
      const bytes = buildMasterModel(graph, info, id, r.nodes, inputs, outputs, widen);
      subModels.set(id, bytes);
      const ti = (t: string) => ({ name: t, shape: info.shapes.get(t), ...dtypeField(t) });
      const stage: MasterStage = {
        kind: 'master', id, label: `master ${id}: ${r.nodes[0].label}${r.nodes.length > 1 ? ` .. ${r.nodes[r.nodes.length - 1].label}` : ''}`,
        nodes: r.nodes.map((n) => n.index), inputs: inputs.map(ti), outputs: outputs.map(ti), reasons,
        flops: masterFlops(r.nodes, info), subModel: { sha256: sha256(bytes), bytes: bytes.length, opset: graph.opset },
      };
      const split = splitReductions(graph, info, r.nodes, inputs, outputs);
      if (split) {
        stage.reduce = { reductions: split.reductions };
        if (split.branch.length) {
          // A reduction's result has its input map's boundary dtype (the workers' partials are float32).
          const reduced = new Map(split.reductions.map((x) => [x.output, x.input]));
          const branchWiden = new Set([...[...widen].filter((t) => !reduced.has(t)), ...split.branchInputs.filter((x) => reduced.has(x) && widen.has(reduced.get(x)!))]);
          const b = buildMasterModel(graph, info, id, split.branch, split.branchInputs, split.branchOutputs, branchWiden);
          subModels.set(branchKey(id), b);
          stage.reduce.branch = { sha256: sha256(b), bytes: b.length, opset: graph.opset, nodes: split.branch.map((n) => n.index), inputs: split.branchInputs, outputs: split.branchOutputs };
        }
      }
      stages.push(stage);
      return;
    }
    const groupOrdinal = nextGroupOrdinal++;
    const grid = Array.isArray(opts.grid) ? opts.grid[groupOrdinal] : opts.grid;
    for (const o of outputs) {
      const s = info.shapes.get(o)!;
      if (grid.rows > s[2] || grid.cols > s[3]) {
        throw new GridTooLargeError(`grid ${grid.rows}x${grid.cols} is larger than the ${s[2]}x${s[3]} feature map ${o} (${r.nodes[r.nodes.length - 1].label})`, { model: label, group: groupOrdinal });
      }
    }
    const spatialInputs = spatialInputsOf(inputs, r.nodes, cls);
    const { tiles, runtimePads } = tileGroup({ nodes: r.nodes, ops: cls.local, spatialInputs, outputs }, info, grid, groupOrdinal);
    const groupInputs = inputs.map((x) => ({ name: x, shape: info.shapes.get(x)!, ...dtypeField(x), spatial: spatialInputs.includes(x) }));
    const groupOutputs = outputs.map((o) => ({ name: o, shape: info.shapes.get(o)!, ...dtypeField(o) }));
    const bytes = buildGroupModel(graph, info, { id, nodes: r.nodes, inputs: groupInputs, outputs: groupOutputs, runtimePads, widen });
    subModels.set(id, bytes);
    const full = r.nodes.reduce((a, n) => a + flopsOf(n), 0);
    const tileFlops = tiles.reduce((a, t) => a + t.flops, 0);
    const boundaryType = (t: string) => (widen.has(t) ? DataType.FLOAT : info.types.get(t) ?? DataType.FLOAT);
    const bytesPerPos = (t: string) => { const s = info.shapes.get(t)!; return s[0] * s[1] * dtypeBytes(boundaryType(t)); };
    const weights = new Set<string>();
    // Weights include what derived nodes (a QDQ model's weight DequantizeLinear) read.
    const addWeights = (x: string) => {
      if (graph.constants.has(x)) weights.add(x);
      graph.derived?.get(x)?.inputs.forEach(addWeights);
    };
    for (const n of r.nodes) n.inputs.forEach(addWeights);
    const stage: GroupStage = {
      kind: 'group', id, label: `group ${groupOrdinal}: ${r.nodes[0].label} .. ${r.nodes[r.nodes.length - 1].label}`,
      nodes: r.nodes.map((n) => n.index), grid, inputs: groupInputs, outputs: groupOutputs, runtimePads, tiles,
      flops: { full, tiles: tileFlops, redundancy: full ? tileFlops / full : 1 },
      bytes: {
        weights: [...weights].reduce((a, w) => a + tensorByteSize(graph.constants.get(w)!), 0),
        tileInputs: tiles.reduce((a, t) => a + t.inputs.reduce((b, i) => b + (i.region.y1 - i.region.y0) * (i.region.x1 - i.region.x0) * bytesPerPos(i.tensor), 0), 0),
        tileOutputs: tiles.reduce((a, t) => a + t.outputs.reduce((b, o) => b + (o.region.y1 - o.region.y0) * (o.region.x1 - o.region.x0) * bytesPerPos(o.tensor), 0), 0),
        fullInput: spatialInputs.reduce((a, x) => a + numel(info.shapes.get(x)!) * dtypeBytes(boundaryType(x)), 0),
      },
      subModel: { sha256: sha256(bytes), bytes: bytes.length, opset: Math.max(11, graph.opset) },
    };
    stages.push(stage);
  });

  const groups = stages.filter((s): s is GroupStage => s.kind === 'group');
  const masters = stages.filter((s): s is MasterStage => s.kind === 'master');
  const flops = groups.reduce((a, s) => a + s.flops.full, 0);
  const tileFlops = groups.reduce((a, s) => a + s.flops.tiles, 0);
  const maxWorkers = opts.maxWorkers ?? DEFAULT_MAX_WORKERS;
  const chains = formChains(stages, maxWorkers);
  const plan: Plan = planSchema.parse({
    version: PLAN_VERSION,
    model: { name: label, sha256: sha256(modelBytes), bytes: modelBytes.length, opset: graph.opset },
    input: { name: inputName, shape: opts.inputShape, ...dtypeField(inputName) },
    outputs: graph.outputs.map((o) => ({ name: o, shape: info.shapes.get(o) ?? [], ...dtypeField(o) })),
    stages,
    chains,
    maxWorkers,
    summary: {
      groups: groups.length, chains: chains.length, tiles: groups.reduce((a, s) => a + s.tiles.length, 0), masterStages: masters.length,
      flops, tileFlops, redundancy: flops ? tileFlops / flops : 1,
      masterFlops: masters.reduce((a, s) => a + s.flops, 0),
      // Stage models only: a reduction branch repeats a few small SE weights for the workers.
      subModelBytes: [...subModels].reduce((a, [k, b]) => a + (k >= 0 ? b.length : 0), 0),
    },
  });
  return { plan, graph, info, subModels };
}

/** Rough FLOPs of master-side ops (Gemm/MatMul dominate; the rest counted per element). */
function masterFlops(nodes: IrNode[], info: ShapeInfo): number {
  let f = 0;
  for (const n of nodes) {
    const x = info.shapes.get(n.inputs[0]);
    const y = info.shapes.get(n.outputs[0]);
    if (!x || !y) continue;
    if (n.op === 'Gemm' || n.op === 'MatMul') f += 2 * numel(y) * x[x.length - 1];
    else f += numel(x);
  }
  return f;
}
