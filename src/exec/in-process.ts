import type { GroupStage, Plan } from '../plan/schema.ts';
import { createSession, type ModelSession, type SessionOptions, type Tensor } from '../runtime/ort.ts';
import { cropRegion, pasteRegion, zerosOf } from '../tensor/nchw.ts';
import { dtypeOf } from '../tensor/dtype.ts';
import { runTile } from './tile.ts';

export interface LocalStageTiming { id: number; kind: 'group' | 'master'; ms: number; tiles?: number }

/**
 * Executes a plan in one process, tile by tile: split each group's inputs, run every tile's
 * sub-model, stitch the outputs, run master segments in between. The reference for the
 * distributed runtime, and what `npm run verify` checks against monolithic ORT.
 */
export async function executePlan(
  plan: Plan, subModels: Map<number, Uint8Array>, input: Tensor, opts: SessionOptions = {},
): Promise<{ outputs: Record<string, Tensor>; timings: LocalStageTiming[] }> {
  const tensors = new Map<string, Tensor>([[plan.input.name, input]]);
  const timings: LocalStageTiming[] = [];
  const batch = input.dims[0];
  for (const stage of plan.stages) {
    const t0 = performance.now();
    const session: ModelSession = await createSession(subModels.get(stage.id)!, `stage ${stage.id}`, opts);
    try {
      const get = (name: string) => {
        const t = tensors.get(name);
        if (!t) throw new Error(`stage ${stage.id} needs ${name}, which no earlier stage produced`);
        return t;
      };
      if (stage.kind === 'master') {
        const feeds: Record<string, Tensor> = {};
        for (const i of stage.inputs) feeds[i.name] = get(i.name);
        const out = await session.run(feeds);
        for (const o of stage.outputs) tensors.set(o.name, out[o.name]);
      } else {
        await runGroup(stage, session, get, tensors, batch);
      }
    } finally {
      await session.release();
    }
    timings.push({ id: stage.id, kind: stage.kind, ms: performance.now() - t0, tiles: stage.kind === 'group' ? stage.tiles.length : undefined });
  }
  const outputs: Record<string, Tensor> = {};
  for (const o of plan.outputs) outputs[o.name] = tensors.get(o.name)!;
  return { outputs, timings };
}

async function runGroup(stage: GroupStage, session: ModelSession, get: (n: string) => Tensor, tensors: Map<string, Tensor>, batch: number) {
  const whole: Record<string, Tensor> = {};
  for (const i of stage.inputs) if (!i.spatial) whole[i.name] = get(i.name);
  // Each output map takes the dtype its first tile comes back with.
  const outs = new Map<string, Tensor>();
  for (const tile of stage.tiles) {
    const spatial: Record<string, Tensor> = {};
    for (const i of tile.inputs) spatial[i.tensor] = cropRegion(get(i.tensor), i.region);
    const res = await runTile(session, stage, tile, spatial, whole);
    for (const o of tile.outputs) {
      const t = res[o.tensor];
      if (!outs.has(o.tensor)) outs.set(o.tensor, zerosOf(dtypeOf(t), [batch, ...stage.outputs.find((x) => x.name === o.tensor)!.shape.slice(1)]));
      pasteRegion(outs.get(o.tensor)!, t, o.region);
    }
  }
  for (const [k, v] of outs) tensors.set(k, v);
}
