import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { PlanCache } from '../../src/serve/plans.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { ArtifactMissingError } from '../../src/serve/errors.ts';
import { parsePlan } from '../../src/planner/materialize.ts';
import { COMMITTED_PLANS } from '../../src/planner/committed.ts';

/** The committed plan as code before format version 3 wrote it (tiles' runtime pads under `params`). */
async function planFiles() {
  const committed = JSON.parse(await readFile(COMMITTED_PLANS[0].file, 'utf8'));
  const v2 = {
    ...committed,
    version: 2,
    stages: committed.stages.map((s: { tiles?: { pads: unknown }[] }) => (s.tiles
      ? { ...s, tiles: s.tiles.map(({ pads, ...t }) => ({ ...t, params: pads })) }
      : s)),
  };
  return { committed, v2 };
}

describe('PlanCache', () => {
  it('loads a plan published (or cached per shape) by older code, as the current format', async () => {
    const { committed, v2 } = await planFiles();
    const store = new MemoryStore();
    await store.put('artifacts/x/plans/old.json', Buffer.from(JSON.stringify(v2)));
    const plan = await new PlanCache(store).getPlan('artifacts/x/plans/old.json');
    assert.deepEqual(plan, parsePlan(committed));
    assert.ok(plan.stages.some((s) => s.kind === 'group' && s.tiles.every((t) => 'pads' in t && !('params' in t))));
  });

  it('refuses a plan of an unsupported version with an error naming it', async () => {
    const { committed } = await planFiles();
    const store = new MemoryStore();
    await store.put('p1.json', Buffer.from(JSON.stringify({ ...committed, version: 1 })));
    await assert.rejects(new PlanCache(store).getPlan('p1.json'), (e: Error) => {
      assert.ok(e instanceof ArtifactMissingError, e.name);
      assert.match(e.message, /plan format version 1 is not supported: this code reads version 3 .*republish it/);
      return true;
    });
  });
});
