import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { buildModel } from '../../src/models/index.ts';
import { planModel } from '../../src/planner/plan.ts';
import { parsePlan } from '../../src/planner/materialize.ts';
import { chainsFor } from '../../src/planner/chains.ts';
import { bundleBytes, bundleReadBytes, bundleReads, buildRoutes, exchangeBytes, HANDLER, INPUT, MASTER, readerItems, readerRuns, tileKey, workerReader, type Routes } from '../../src/plan/bundles.ts';
import { bundleBody, SegmentReader } from '../../src/serve/segments.ts';
import { requestKeys } from '../../src/serve/keys.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { StoreExchange } from '../../src/exchange/exchange.ts';
import { randomTensor } from '../../src/tensor/random.ts';
import { cropRegion } from '../../src/tensor/nchw.ts';
import type { GroupStage, Plan } from '../../src/plan/schema.ts';
import type { FloatTensor } from '../../src/runtime/ort.ts';
import type { Region } from '../../src/plan/schema.ts';

const full = (t: FloatTensor): Region => ({ y0: 0, y1: t.dims[2], x0: 0, x1: t.dims[3] });

/**
 * Every bundle of the plan written from made-up maps (one random map per tensor, each producer
 * holding its cell of it), then every region every reader reads assembled through the real
 * SegmentReader over a store: each must equal the same region of the made-up map.
 */
async function roundTrip(plan: Plan, routes: Routes, batch: number) {
  const byId = new Map(plan.stages.map((s) => [s.id, s]));
  const maps = new Map<string, FloatTensor>();
  let seed = 1;
  const mapOf = (tensor: string): FloatTensor => {
    let m = maps.get(tensor);
    if (!m) {
      const p = routes.producers.get(tensor)!;
      const shape = p.kind === 'input' ? plan.input.shape : byId.get(p.stage)!.outputs[p.outputIndex].shape!;
      m = randomTensor([batch, ...shape.slice(1)], seed++);
      maps.set(tensor, m);
    }
    return m;
  };
  const store = new MemoryStore();
  const rid = 'bundles';
  for (const b of routes.bundles.values()) {
    const m = /^s(\d+)t(\d+)$/.exec(b.source);
    const cell = (tensor: string) => {
      if (!m) return { t: mapOf(tensor), region: full(mapOf(tensor)) };
      const g = byId.get(+m[1]) as GroupStage;
      const region = g.tiles[+m[2]].outputs.find((o) => o.tensor === tensor)!.region;
      return { t: cropRegion(mapOf(tensor), region), region };
    };
    const partial = (stage: number, index: number) => {
      const s = byId.get(stage)!;
      const input = s.kind === 'master' ? s.reduce!.reductions[index].input : '';
      return Float32Array.from({ length: batch * mapOf(input).dims[1] }, (_, i) => stage * 1000 + index * 100 + i);
    };
    const body = bundleBody(b, cell, partial);
    assert.equal(body.length, bundleBytes(b, batch));
    await store.put(requestKeys.bundle(rid, b.source), body);
  }
  const exchange = new StoreExchange(store);
  const check = async (reader: string, read: { tensor: string; region: Region; parts: { self: boolean }[] }, w?: number) => {
    const sr = new SegmentReader(exchange, routes, reader, { requestId: rid, batch, deadline: Date.now() + 10_000 });
    const own = (tensor: string) => {
      const p = routes.producers.get(tensor)!;
      const g = byId.get(p.stage) as GroupStage;
      const region = g.tiles[routes.tileOf(g.id, w!)!].outputs[p.outputIndex].region;
      return { t: cropRegion(mapOf(tensor), region), region };
    };
    const got = await sr.region(read as never, mapOf(read.tensor).dims[1], own);
    const want = cropRegion(mapOf(read.tensor), read.region);
    assert.deepEqual(got.dims, want.dims);
    assert.ok(Buffer.from((got.data as Float32Array).buffer, got.data.byteOffset, got.data.byteLength).equals(Buffer.from(want.data.buffer, want.data.byteOffset, want.data.byteLength)), `${reader} ${read.tensor} [${Object.values(read.region)}]`);
  };
  for (const s of plan.stages) {
    if (s.kind !== 'group') continue;
    const chain = routes.chainOf.get(s.id)!;
    for (const t of s.tiles) {
      const w = routes.ownerOf(s.id, t.index);
      for (const read of routes.reads.get(tileKey(s.id, t.index))!) await check(workerReader(chain.id, w), read, w);
    }
  }
  for (const read of routes.masterReads.values()) await check(MASTER, read);
  for (const read of routes.handlerReads.values()) await check(HANDLER, read);
  // Partials: each runner reads every other tile's partial of each reduction, in the view's order.
  for (const [stage, runners] of routes.runners) {
    const s = byId.get(stage)!;
    const chain = routes.chainOf.get(stage)!;
    for (const [index, r] of (s.kind === 'master' ? s.reduce!.reductions : []).entries()) {
      const g = byId.get(routes.producers.get(r.input)!.stage) as GroupStage;
      for (const w of runners) for (const t of g.tiles) {
        if (routes.ownerOf(g.id, t.index) === w) continue;
        const b = routes.bundles.get(`s${g.id}t${t.index}`)!;
        const reader = workerReader(chain.id, w);
        const k = readerItems(b, reader).findIndex((it) => it.kind === 'partial' && it.stage === stage && it.index === index);
        const items = await new SegmentReader(exchange, routes, reader, { requestId: rid, batch, deadline: Date.now() + 10_000 }).items(b.source);
        assert.equal((items[k] as Float32Array)[1], stage * 1000 + index * 100 + 1);
      }
    }
  }
}

describe('bundle layout', () => {
  const resnet = buildModel('resnet18');

  it('the input is stored once and a 2x2 grid reads it in 6 ranged reads; other bundles one read per reader', async () => {
    const plan = parsePlan(JSON.parse(await readFile('plans/resnet18-224-2x2.json', 'utf8')), 'resnet18-224-2x2');
    const routes = buildRoutes(plan, chainsFor(plan, 4));
    const input = routes.bundles.get(INPUT)!;
    const [, c, h, w] = plan.input.shape;
    // Blocks partition the map: its bytes once, plus a CRC per segment.
    assert.equal(bundleBytes(input, 1), c * h * w * 4 + 4 * input.segments.length);
    assert.ok(bundleReadBytes(input, 1) > bundleBytes(input, 1), 'halos overlap: readers fetch more than is stored');
    assert.equal(bundleReads(input), 6);
    for (const b of routes.bundles.values()) {
      if (b.source === INPUT) continue;
      const readers = new Set(b.segments.flatMap((s) => s.readers));
      for (const r of readers) assert.equal(readerRuns(b, r, 1).length, 1, `${b.source} ${r}`);
      assert.equal(bundleReads(b), readers.size);
      // Never more bytes than one segment per reader would write.
      assert.ok(bundleBytes(b, 1) <= bundleReadBytes(b, 1));
    }
    await roundTrip(plan, routes, 1);
  });

  for (const [name, grids, batch] of [
    ['3x2 then regrids', [[3, 2], [2, 3], [3, 2], [2, 2], [1, 2]], 1],
    ['4x4 then 2x2, batch 2', [[4, 4], [4, 4], [4, 4], [2, 2], [2, 2]], 2],
    ['1x3', [[1, 3], [1, 3], [1, 3], [1, 3], [1, 3]], 1],
  ] as const) {
    it(`every reader assembles exactly what it reads (${name})`, async () => {
      const { plan } = planModel(resnet, { inputShape: [1, 3, 112, 144], cuts: 'stage', grid: grids.map(([rows, cols]) => ({ rows, cols })) });
      for (const routes of [buildRoutes(plan), buildRoutes(plan, chainsFor(plan, 3))]) {
        await roundTrip(plan, routes, batch);
        // Each block stored once: the direct exchange moves less than merge-and-resplit.
        const b = exchangeBytes(plan, 1, routes);
        assert.ok(b.direct < b.mergeResplit);
      }
    });
  }
});
