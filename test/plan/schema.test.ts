import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { PLAN_VERSION, branchKey, fillSchema, planJsonSchema, planSchema, regionSchema, runtimePadSchema, type Plan } from '../../src/plan/schema.ts';
import { parsePlan } from '../../src/planner/materialize.ts';
import { PlanMismatchError } from '../../src/planner/errors.ts';

const FILES = readdirSync('plans').filter((f) => f.endsWith('.json')).sort();
const load = (f: string) => JSON.parse(readFileSync(`plans/${f}`, 'utf8')) as Record<string, any>;
const clone = <T>(x: T): T => structuredClone(x);
/** parsePlan must fail with a PlanMismatchError naming the source and every path in `paths`. */
function rejects(json: unknown, ...paths: string[]) {
  assert.throws(() => parsePlan(json, 'bad.json'), (e: Error) => {
    assert.ok(e instanceof PlanMismatchError, `${e.name}: ${e.message}`);
    assert.match(e.message, /^bad\.json is not a valid plan \(/);
    for (const p of paths) assert.ok(e.message.includes(`${p}:`), `"${e.message}" should name ${p}`);
    return true;
  });
}

describe('committed plans', () => {
  it('plans/ holds at least one plan', () => assert.ok(FILES.length > 0));
  for (const f of FILES) {
    it(`${f} parses and is internally consistent`, () => {
      const plan: Plan = parsePlan(load(f), f);
      assert.equal(plan.version, PLAN_VERSION);
      const groups = plan.stages.filter((s) => s.kind === 'group');
      assert.equal(plan.summary.groups, groups.length);
      assert.equal(plan.summary.masterStages, plan.stages.length - groups.length);
      assert.equal(plan.summary.tiles, groups.reduce((a, g) => a + (g.kind === 'group' ? g.tiles.length : 0), 0));
      for (const g of groups) if (g.kind === 'group') assert.equal(g.tiles.length, g.grid.rows * g.grid.cols);
      // Every stage appears in exactly one chain or none; chain stages exist.
      const ids = new Set(plan.stages.map((s) => s.id));
      for (const c of plan.chains) for (const s of c.stages) assert.ok(ids.has(s), `chain ${c.id} stage ${s}`);
    });
  }
  it('round-trips through JSON unchanged', () => {
    const json = load(FILES[0]);
    assert.deepEqual(JSON.parse(JSON.stringify(parsePlan(json))), json);
  });
});

describe('malformed plans', () => {
  const base = load(FILES[0]);

  it('a wrong or missing version is rejected naming the source and the version', () => {
    const { version: _v, ...noVersion } = base;
    for (const json of [{ ...base, version: PLAN_VERSION + 1 }, { ...base, version: String(PLAN_VERSION) }, { ...base, version: 1 }, noVersion]) {
      assert.throws(() => parsePlan(json, 'bad.json'), (e: Error) => e instanceof PlanMismatchError && /bad\.json/.test(e.message) && /version/.test(e.message), JSON.stringify(json.version));
    }
  });

  it('non-objects are rejected at the root', () => {
    rejects(null, '(root)');
    rejects([], '(root)');
    rejects('plan', '(root)');
  });

  it('unknown keys are rejected (strict objects)', () => {
    rejects({ ...base, extra: 1 }, '(root)');
    const p = clone(base);
    p.stages[0].surprise = true;
    rejects(p, 'stages.0');
  });

  it('a bad field deep inside a stage is named by its path', () => {
    const p = clone(base);
    p.stages[0].grid.rows = 0;
    p.stages[0].tiles[0].outputs[0].region.y1 = 1.5;
    rejects(p, 'stages.0.grid.rows', 'stages.0.tiles.0.outputs.0.region.y1');
  });

  it('hashes, sizes and kinds are checked', () => {
    const p = clone(base);
    p.model.sha256 = 'ABC';
    p.model.bytes = -1;
    p.stages[0].subModel.sha256 = p.stages[0].subModel.sha256.toUpperCase();
    rejects(p, 'model.sha256', 'model.bytes', 'stages.0.subModel.sha256');
    const q = clone(base);
    q.stages[0].kind = 'worker';
    rejects(q, 'stages.0.kind');
  });

  it('empty stages, empty tile lists and empty node lists are rejected', () => {
    rejects({ ...base, stages: [] }, 'stages');
    const p = clone(base);
    p.stages[0].tiles = [];
    p.stages[0].nodes = [];
    rejects(p, 'stages.0.tiles', 'stages.0.nodes');
  });

  it('lists at most 8 issues', () => {
    const p = clone(base);
    for (let i = 0; i < 20; i++) p.stages[0].nodes[i] = -1;
    const msg = (() => { try { parsePlan(p); } catch (e) { return (e as Error).message; } return ''; })();
    assert.equal(msg.split('; ').length, 8, msg);
    assert.match(msg, /^plan is not a valid plan/, 'default source name');
  });

  it('the prediction block is optional but strict when present', () => {
    assert.ok(planSchema.safeParse({ ...base, prediction: undefined }).success);
    rejects({ ...base, prediction: { profile: 'x' } }, 'prediction.objective');
  });
});

describe('schema pieces', () => {
  it('regions are integers', () => {
    assert.ok(regionSchema.safeParse({ y0: 0, y1: 2, x0: -1, x1: 3 }).success);
    assert.ok(!regionSchema.safeParse({ y0: 0, y1: 2, x0: 0 }).success);
  });

  it('fills are numbers or "-inf" (JSON has no -Infinity)', () => {
    assert.ok(fillSchema.safeParse('-inf').success);
    assert.ok(fillSchema.safeParse(0.5).success);
    assert.ok(!fillSchema.safeParse('inf').success);
    assert.ok(!fillSchema.safeParse(null).success);
  });

  it('runtime pads are discriminated by use', () => {
    assert.ok(runtimePadSchema.safeParse({ use: 'output', name: 'p', tensor: 't' }).success);
    assert.ok(runtimePadSchema.safeParse({ use: 'input', name: 'p', node: 0, input: 0, tensor: 't', fill: '-inf', mode: 'reflect' }).success);
    assert.ok(runtimePadSchema.safeParse({ use: 'mask2', name: 'p', node: 3, tensor: 't' }).success);
    assert.ok(!runtimePadSchema.safeParse({ use: 'input', name: 'p', node: 0, input: 0, tensor: 't', fill: 0, mode: 'wrap' }).success);
    assert.ok(!runtimePadSchema.safeParse({ use: 'crop', name: 'p', tensor: 't' }).success, 'crop needs its node');
    assert.ok(!runtimePadSchema.safeParse({ use: 'other', name: 'p', tensor: 't' }).success);
  });

  it('branch keys are negative and distinct from stage ids', () => {
    assert.deepEqual([0, 1, 5].map(branchKey), [-1, -2, -6]);
  });

  it('exports a JSON Schema pinning the version', () => {
    const js = planJsonSchema() as { type: string; properties: Record<string, { const?: number }>; required: string[] };
    assert.equal(js.type, 'object');
    assert.equal(js.properties.version.const, PLAN_VERSION);
    assert.ok(js.required.includes('stages'));
  });
});
