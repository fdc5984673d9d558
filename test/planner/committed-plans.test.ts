import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildModel, ensureModel } from '../../src/models/index.ts';
import { planModel } from '../../src/planner/plan.ts';
import { COMMITTED_PLANS } from '../../src/planner/committed.ts';
import { parsePlan } from '../../src/planner/materialize.ts';
import { PLAN_VERSION } from '../../src/plan/schema.ts';
import { PlanMismatchError } from '../../src/planner/errors.ts';

const run = promisify(execFile);

describe('committed plans', () => {
  for (const c of COMMITTED_PLANS) {
    it(`${c.file} is what the planner generates today (deterministic, model hash matches)`, async () => {
      const committed = JSON.parse(await readFile(c.file, 'utf8'));
      const { plan } = planModel(buildModel(c.arch), { inputShape: c.inputShape, grid: c.grid, cuts: c.cuts, name: c.arch });
      assert.deepEqual(JSON.parse(JSON.stringify(plan)), committed, 'run `npm run make-plans` and commit the result');
    });
  }

  it('a version-2 plan (tiles\' `params`) reads as the current one; other versions are refused by version', async () => {
    const committed = JSON.parse(await readFile(COMMITTED_PLANS[0].file, 'utf8'));
    const v2 = {
      ...committed,
      version: 2,
      stages: committed.stages.map((s: { tiles?: { pads: unknown }[] }) => (s.tiles
        ? { ...s, tiles: s.tiles.map(({ pads, ...t }) => ({ ...t, params: pads })) }
        : s)),
    };
    assert.equal(PLAN_VERSION, 3);
    assert.deepEqual(parsePlan(v2, 'old.json'), parsePlan(committed, 'new.json'));
    for (const version of [1, 4]) {
      assert.throws(() => parsePlan({ ...committed, version }, 'old.json'), (e: Error) => {
        assert.ok(e instanceof PlanMismatchError, e.name);
        assert.match(e.message, new RegExp(`old\\.json: plan format version ${version} is not supported: this code reads version 3`));
        return true;
      });
    }
    // A version-3 plan with the old field name is not upgraded: the schema names the field.
    assert.throws(() => parsePlan({ ...v2, version: 3 }), /params|pads/);
  });

  it('the paper schemes: 6 groups, 24 and 72 worker tiles', async () => {
    const [p2, p4] = await Promise.all(COMMITTED_PLANS.map(async (c) => JSON.parse(await readFile(c.file, 'utf8'))));
    assert.equal(p2.summary.groups, 6);
    assert.equal(p2.summary.tiles, 24);
    assert.equal(p4.summary.tiles, 72);
  });

  it('npm run verify passes on the 4x4 plan, last line is the JSON summary', async () => {
    await ensureModel('resnet18', 'models/resnet18.onnx');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/verify.ts', '--model', 'models/resnet18.onnx', '--plan', COMMITTED_PLANS[1].file, '--seed', '5']);
    const last = JSON.parse(stdout.trim().split('\n').pop()!);
    assert.equal(last.ok, true);
    for (const k of ['maxAbsDiff', 'maxRef', 'groups', 'tiles', 'redundancy']) assert.ok(k in last, k);
    assert.ok(last.maxAbsDiff <= 1e-4 * Math.max(1, last.maxRef));
  });

  it('npm run verify exits 1 with a clear message on a plan for another model', async () => {
    await ensureModel('mobilenetv2', 'models/mobilenetv2.onnx');
    await assert.rejects(
      run(process.execPath, ['--import', 'tsx', 'scripts/verify.ts', '--model', 'models/mobilenetv2.onnx', '--plan', COMMITTED_PLANS[0].file]),
      (e: { code: number; stderr: string }) => e.code === 1 && /PlanMismatchError: .*sha256/.test(e.stderr),
    );
  });
});

describe('plan JSON Schema', () => {
  it('is derived from the zod schema and describes the committed plans', async () => {
    const { planJsonSchema } = await import('../../src/plan/schema.ts');
    const s = planJsonSchema() as { type: string; required: string[]; properties: Record<string, unknown> };
    assert.equal(s.type, 'object');
    for (const k of ['version', 'model', 'input', 'stages', 'summary']) assert.ok(s.required.includes(k), k);
    const committed = JSON.parse(await readFile(COMMITTED_PLANS[0].file, 'utf8'));
    for (const k of Object.keys(committed)) assert.ok(k in s.properties, `plan field ${k} is in the JSON Schema`);
  });
});
