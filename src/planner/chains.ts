import type { Chain, Stage } from '../plan/schema.ts';

/**
 * Groups the stages into chains: runs of consecutive groups with one grid, with the reduction
 * stages between them whose maps those groups produce. A chain with more than one stage needs
 * all its workers at once (they wait for each other's strips), so one wider than `maxWorkers`
 * is split back into single groups, and its reductions run on the master.
 */
export function formChains(stages: Stage[], maxWorkers: number): Chain[] {
  const runs: Stage[][] = [];
  let cur: Stage[] | undefined;
  let produced = new Set<string>();
  for (const s of stages) {
    if (s.kind === 'group') {
      const head = cur?.find((x) => x.kind === 'group');
      const same = head && head.kind === 'group' && head.grid.rows === s.grid.rows && head.grid.cols === s.grid.cols;
      if (!cur || !same) { cur = []; produced = new Set(); runs.push(cur); }
      cur.push(s);
      for (const o of s.outputs) produced.add(o.name);
      continue;
    }
    if (cur && s.reduce && s.reduce.reductions.every((r) => produced.has(r.input))) {
      cur.push(s);
      continue;
    }
    cur = undefined;
  }
  const chains: Chain[] = [];
  for (const run of runs) {
    // Reductions that end a chain stay in it (the leader combines them); none may start one.
    const workers = Math.max(...run.map((s) => (s.kind === 'group' ? s.tiles.length : 0)));
    if (run.length > 1 && workers > maxWorkers) {
      for (const s of run) if (s.kind === 'group') chains.push({ id: chains.length, stages: [s.id], workers: s.tiles.length });
      continue;
    }
    chains.push({ id: chains.length, stages: run.map((s) => s.id), workers });
  }
  return chains;
}

/** Whether a chain's workers wait for each other (and so must all run at once). */
export const coScheduled = (c: Chain) => c.stages.length > 1;

/** The chains to run with `maxWorkers` instances: the plan's own, or re-formed narrower. */
export function chainsFor(plan: { stages: Stage[]; chains: Chain[] }, maxWorkers: number): Chain[] {
  if (plan.chains.every((c) => !coScheduled(c) || c.workers <= maxWorkers)) return plan.chains;
  return formChains(plan.stages, maxWorkers);
}
