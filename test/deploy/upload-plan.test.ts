import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfig } from '../../src/config.ts';
import { REPO_ROOT } from '../../src/deploy/package-layout.ts';
import { buildModel } from '../../src/models/index.ts';
import { parsePlan } from '../../src/planner/materialize.ts';
import { makeStore } from '../../src/serve/deps.ts';
import { publishPlanToRegistry, upsertRegistry, registryEntry } from '../../src/serve/publish.ts';
import { readRegistry, REGISTRY_KEY, type Registry } from '../../src/serve/registry.ts';
import { publishModel } from '../../src/compose/stack.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';

const execFileP = promisify(execFile);
const modelBytes = buildModel('resnet18');
const planFile = (n: string) => join(REPO_ROOT, 'plans', `${n}.json`);
const loadPlan = async (n: string) => parsePlan(JSON.parse(await readFile(planFile(n), 'utf8')), n);

describe('upload-plan: publishing a plan into the registry', () => {
  it('builds the same registry as the local stack (publishModel) does', async () => {
    const store = new MemoryStore();
    const a = await publishPlanToRegistry(store, modelBytes, await loadPlan('resnet18-224-2x2'), { planName: 'resnet18-224-2x2', names: ['resnet18-224-2x2'] });
    assert.deepEqual(a.added, ['resnet18-224-2x2']);
    assert.ok(a.uploaded > 0);
    const b = await publishPlanToRegistry(store, modelBytes, await loadPlan('resnet18-224-4x4'), { planName: 'resnet18-224-4x4', names: ['resnet18-224-4x4', 'resnet18'], defaultName: 'resnet18' });
    assert.equal(b.uploaded, 0, 'sub-models are shared between the two plans of one model');
    assert.deepEqual(b.added, ['resnet18-224-4x4', 'resnet18']);

    const ref = new MemoryStore();
    const config = loadConfig({ PLANS: `${planFile('resnet18-224-2x2')},${planFile('resnet18-224-4x4')}`, DEFAULT_PLAN: 'resnet18-224-4x4', MODEL: 'resnet18' });
    await publishModel(config, ref, modelBytes);
    // As stored, byte for byte modulo order: what the handler reads is the same either way.
    const stored = async (s: MemoryStore) => JSON.parse((await s.get(REGISTRY_KEY)).toString('utf8')) as Registry;
    const got = await stored(store);
    const expected = await stored(ref);
    const byName = (r: Registry) => [...r.models].sort((x, y) => x.name.localeCompare(y.name));
    assert.deepEqual(byName(got), byName(expected));
    assert.equal(got.models[0].name, 'resnet18', 'the default name is listed first');
    assert.equal(expected.models[0].name, 'resnet18');
    assert.equal((await readRegistry(store)).models.length, 3, 'the handler can read it');
  });

  it('replaces entries by name in place and moves the default first', async () => {
    const plan = await loadPlan('resnet18-224-2x2');
    const e = (n: string, k: string) => registryEntry(n, k, plan);
    const reg = { version: 1 as const, models: [e('a', 'k1'), e('b', 'k2'), e('c', 'k3')] };
    const u = upsertRegistry(reg, [e('b', 'k9'), e('d', 'k4')], ['d']);
    assert.deepEqual(u.registry.models.map((m) => `${m.name}:${m.planKey}`), ['d:k4', 'a:k1', 'b:k9', 'c:k3']);
    assert.deepEqual(u.added, ['d']);
    assert.deepEqual(u.replaced, ['b']);
  });

  it('the CLI publishes to the configured store and prints what it uploaded', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'upload-plan-'));
    try {
      const model = join(dir, 'resnet18.onnx');
      await writeFile(model, modelBytes);
      const env = { ...process.env, STORE: 'fs', DATA_DIR: join(dir, 'data') };
      const run = (...args: string[]) => execFileP(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts/upload-plan.ts'), ...args], { cwd: REPO_ROOT, env, timeout: 120_000 });
      const first = await run('--plan', planFile('resnet18-224-4x4'), '--model', model, '--default');
      assert.match(first.stdout, /sub-models: \d+ uploaded/);
      assert.match(first.stdout, /added resnet18-224-4x4, resnet18/);
      const reg = await readRegistry(makeStore(loadConfig(env)));
      assert.deepEqual(reg.models.map((m) => m.name), ['resnet18', 'resnet18-224-4x4']);
      const last = JSON.parse(first.stdout.trim().split('\n').pop()!);
      assert.equal(last.planKey, reg.models[0].planKey);
      await assert.rejects(run('--plan', join(dir, 'missing.json'), '--model', model), (e: Error & { stderr?: string }) => /cannot read plan/.test(e.stderr ?? ''));
      await assert.rejects(run('--model', model), (e: Error & { stderr?: string }) => /usage: npm run upload-plan/.test(e.stderr ?? ''));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
