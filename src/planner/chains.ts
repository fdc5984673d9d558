import type { Chain, Stage } from '../plan/schema.ts';

/**
 * Groups the stages into chains: consecutive groups whose grids never widen, with the reduction
 * stages whose maps those groups produce. A reduction of a map from before a change of grid
 * joins the earlier chain that holds the map (its result is written whole for later chains),
 * so no map is gathered for it. A chain with more than one stage needs all its workers at once
 * (they wait for each other's strips), so groups wider than `maxWorkers` form chains of one
 * group, and reductions of their maps run on the master.
 */
export function formChains(stages: Stage[], maxWorkers: number): Chain[] {
  // A chain wider than `maxWorkers` is closed: its groups run alone, and nothing joins it (a
  // reduction of its maps runs on the master), decided as the chains form so that no stage the
  // master runs ever falls inside another chain.
  const forming: { stages: Stage[]; produced: Set<string>; first: number; closed: boolean }[] = [];
  let cur: (typeof forming)[number] | undefined;
  const position = new Map<string, number>();
  stages.forEach((s, i) => s.outputs.forEach((o) => position.set(o.name, i)));
  stages.forEach((s, i) => {
    if (s.kind === 'group') {
      // A change of grid stays in the chain when it does not widen it: the chain's workers all
      // start at once, and extra ones would be billed waiting for their first group, while
      // workers left without a tile simply finish early.
      const width = cur ? Math.max(...cur.stages.map((x) => (x.kind === 'group' ? x.tiles.length : 0))) : 0;
      if (!cur || cur.closed || s.tiles.length > width) { cur = { stages: [], produced: new Set(), first: i, closed: s.tiles.length > maxWorkers }; forming.push(cur); }
      cur.stages.push(s);
      for (const o of s.outputs) cur.produced.add(o.name);
      return;
    }
    const reduce = s.reduce;
    const home = reduce && forming.find((r) => !r.closed && reduce.reductions.every((x) => r.produced.has(x.input)));
    // Every other input must exist by the time that chain ends: made in it or before it.
    const ready = home && s.inputs.every((x) => home.produced.has(x.name) || (position.get(x.name) ?? -1) < home.first);
    if (home && ready) {
      home.stages.push(s);
      for (const o of s.outputs) home.produced.add(o.name);
      return;
    }
    cur = undefined;
  });
  return forming.map((c, id) => ({ id, stages: c.stages.map((s) => s.id), workers: Math.max(...c.stages.map((s) => (s.kind === 'group' ? s.tiles.length : 0))) }));
}

/** Whether a chain's workers wait for each other (and so must all run at once). */
export const coScheduled = (c: Chain) => c.stages.length > 1;

/** The chains to run with `maxWorkers` instances: the plan's own, or re-formed narrower. */
export function chainsFor(plan: { stages: Stage[]; chains: Chain[] }, maxWorkers: number): Chain[] {
  if (plan.chains.every((c) => !coScheduled(c) || c.workers <= maxWorkers)) return plan.chains;
  return formChains(plan.stages, maxWorkers);
}
