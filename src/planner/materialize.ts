import { buildGraph, type IrNode } from '../graph/ir.ts';
import { analyzeGraph } from '../graph/fold.ts';
import { DataType, decodeModel, sha256 } from '../onnx/model-io.ts';
import { branchKey, planSchema, planVersionProblem, upgradePlanJson, type Plan } from '../plan/schema.ts';
import { buildGroupModel, buildMasterModel } from './submodel.ts';
import { PlanMismatchError } from './errors.ts';
import type { PlannedModel } from './plan.ts';

/** Validates plan JSON (upgrading an older format first); the error lists every schema issue with its path. */
export function parsePlan(json: unknown, source = 'plan'): Plan {
  const upgraded = upgradePlanJson(json);
  const version = planVersionProblem(upgraded);
  if (version) throw new PlanMismatchError(`${source}: ${version}; make it again with this code`);
  const r = planSchema.safeParse(upgraded);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 8).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new PlanMismatchError(`${source} is not a valid plan (${issues})`);
  }
  return r.data;
}

/**
 * Rebuilds every stage's sub-model from the model and the plan, and checks both hashes: a plan
 * only runs against the exact model it was made for, and sub-models are derived, never stored
 * in the plan.
 */
export function materializePlan(modelBytes: Uint8Array, plan: Plan, label = plan.model.name): PlannedModel {
  const hash = sha256(modelBytes);
  if (hash !== plan.model.sha256) {
    throw new PlanMismatchError(`plan was made for model sha256 ${plan.model.sha256.slice(0, 12)}…, this model is ${hash.slice(0, 12)}…`, { model: label });
  }
  const { graph, info } = analyzeGraph(buildGraph(decodeModel(modelBytes, label), label), { [plan.input.name]: plan.input.shape });
  const byIndex = new Map<number, IrNode>(graph.nodes.map((n) => [n.index, n]));
  const nodesOf = (ids: number[], stage: number) => ids.map((i) => {
    const n = byIndex.get(i);
    if (!n) throw new PlanMismatchError(`stage ${stage} references node ${i}, which the model does not have`, { model: label });
    return n;
  });
  // float16 tensors the plan moves as float32 (graph/types.ts `float16Boundaries`).
  const widen = new Set(plan.stages.flatMap((s) => [...s.inputs, ...s.outputs])
    .filter((t) => (t.dtype ?? 'float32') === 'float32' && info.types.get(t.name) === DataType.FLOAT16).map((t) => t.name));
  const subModels = new Map<number, Uint8Array>();
  for (const s of plan.stages) {
    const nodes = nodesOf(s.nodes, s.id);
    const bytes = s.kind === 'group'
      ? buildGroupModel(graph, info, { id: s.id, nodes, inputs: s.inputs, outputs: s.outputs, runtimePads: s.runtimePads, widen })
      : buildMasterModel(graph, info, s.id, nodes, s.inputs.map((i) => i.name), s.outputs.map((o) => o.name), widen);
    if (sha256(bytes) !== s.subModel.sha256) {
      throw new PlanMismatchError(`stage ${s.id} sub-model does not match the plan's hash (plan made by another planner version?)`, { model: label });
    }
    subModels.set(s.id, bytes);
    const branch = s.kind === 'master' ? s.reduce?.branch : undefined;
    if (branch) {
      const reduced = new Map((s.kind === 'master' ? s.reduce?.reductions ?? [] : []).map((x) => [x.output, x.input]));
      const branchWiden = new Set([...[...widen].filter((t) => !reduced.has(t)), ...branch.inputs.filter((x) => reduced.has(x) && widen.has(reduced.get(x)!))]);
      const b = buildMasterModel(graph, info, s.id, nodesOf(branch.nodes, s.id), branch.inputs, branch.outputs, branchWiden);
      if (sha256(b) !== branch.sha256) throw new PlanMismatchError(`stage ${s.id} reduction branch does not match the plan's hash`, { model: label });
      subModels.set(branchKey(s.id), b);
    }
  }
  return { plan, graph, info, subModels };
}
