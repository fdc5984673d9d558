import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/models/index.ts';
import { planModel } from '../../src/planner/plan.ts';
import { buildRoutes, exchangeBytes, readerRuns, tileSource, workerReader } from '../../src/plan/bundles.ts';
import { chainsFor } from '../../src/planner/chains.ts';
import { decodeSegment, decodeTensor, encodeBundle, encodeTensor } from '../../src/serve/tile-codec.ts';
import { asFloat32 } from '../../src/runtime/ort.ts';
import { TileFormatError } from '../../src/serve/errors.ts';
import { WaitClock } from '../../src/exchange/exchange.ts';
import { randomTensor } from '../../src/tensor/random.ts';
import { cropRegion } from '../../src/tensor/nchw.ts';
import { estimateCost, FC_PRICING } from '../../src/billing/pricing.ts';
import { loadConfig, ConfigError } from '../../src/config.ts';
import type { Region } from '../../src/plan/schema.ts';

const area = (r: Region) => (r.y1 - r.y0) * (r.x1 - r.x0);

describe('routes derived from the plan', () => {
  const resnet = buildModel('resnet18');
  for (const grids of [[3, 2], [4, 4]]) {
    it(`parts tile every consumer region exactly (grid ${grids.join('x')} then 2x3)`, () => {
      const { plan } = planModel(resnet, { inputShape: [1, 3, 112, 144], cuts: 'stage', grid: [{ rows: grids[0], cols: grids[1] }, { rows: 2, cols: 3 }, { rows: 3, cols: 2 }, { rows: 2, cols: 2 }, { rows: 1, cols: 2 }] });
      const routes = buildRoutes(plan);
      for (const reads of routes.reads.values()) {
        for (const r of reads) {
          // Producer cells partition the map, so the parts partition the region: areas add up, no overlap.
          assert.equal(r.parts.reduce((a, p) => a + area(p.region), 0), area(r.region));
          for (const p of r.parts) {
            assert.ok(p.region.y0 >= r.region.y0 && p.region.y1 <= r.region.y1 && p.region.x0 >= r.region.x0 && p.region.x1 <= r.region.x1);
          }
        }
      }
      // Grids change but never widen after the first group, so one chain runs them all: each
      // tile goes to the worker whose previous cell overlaps it most, a bijection per group.
      assert.equal(routes.chains.length, grids[0] * grids[1] >= 6 ? 1 : 2);
      for (const s of plan.stages) {
        if (s.kind !== 'group') continue;
        const owners = s.tiles.map((t) => routes.ownerOf(s.id, t.index));
        assert.equal(new Set(owners).size, owners.length);
        for (const t of s.tiles) assert.equal(routes.tileOf(s.id, routes.ownerOf(s.id, t.index)), t.index);
      }
      // Some of what stays with its owner across a regrid stays in memory.
      assert.ok([...routes.reads.values()].some((reads) => reads.some((r) => r.parts.some((p) => p.self))));
      // The classifier's GlobalAveragePool is a reduction the last chain's leader runs: no map is gathered.
      assert.deepEqual([...routes.masterReads.keys()], []);
      assert.equal([...routes.reduceRole.values()].join(), 'leader');
      const b = exchangeBytes(plan);
      assert.ok(b.direct < b.mergeResplit, `direct ${b.direct} vs merge-and-resplit ${b.mergeResplit}`);
    });
  }

  it('a chain keeps its own cells: only strips owned by neighbours move', () => {
    const { plan } = planModel(resnet, { inputShape: [1, 3, 128, 128], grid: { rows: 2, cols: 2 }, cuts: 'block' });
    const routes = buildRoutes(plan);
    assert.equal(routes.chains.length, 1);
    assert.equal(routes.chains[0].workers, 4);
    for (const [key, reads] of routes.reads) {
      const [stage, tile] = key.split(':').map(Number);
      for (const r of reads) {
        if (r.tensor === plan.input.name) continue;
        // The own part is the whole cell of this worker; the rest comes from 1-3 neighbours.
        const own = r.parts.filter((p) => p.self);
        assert.equal(own.length, 1, `stage ${stage} tile ${tile} ${r.tensor}`);
        for (const p of r.parts) if (!p.self) assert.notEqual(p.source, tileSource(stage, tile));
      }
    }
    // Bundle segments are addressed to other workers of the chain (or the handler), never to their writer.
    for (const b of routes.bundles.values()) {
      const m = /^s\d+t(\d+)$/.exec(b.source);
      if (m) for (const s of b.segments) assert.ok(!s.readers.includes(workerReader(0, Number(m[1]))));
    }
    // One bundle per producer: segment offsets are contiguous and depend on the batch.
    const b = [...routes.bundles.values()].find((x) => x.source !== 'input' && x.segments.length > 1)!;
    const r0 = readerRuns(b, b.segments[0].readers[0], 2);
    assert.equal(r0[0].start, 0);
    assert.equal(r0[0].segments[0], b.segments[0]);
    assert.equal(r0[0].end, r0[0].segments.reduce((a, s) => a + 4 + 8 * s.floatsPerImage, 0));
    // Outside the input, every reader fetches its part of a bundle with one ranged read.
    for (const x of routes.bundles.values()) if (x.source !== 'input') for (const s of x.segments) for (const r of s.readers) assert.equal(readerRuns(x, r, 1).length, 1);
  });

  it('across a change of grid only the regions that change owner move', () => {
    // 4x4 on the early groups, 2x2 on the late ones: one chain of 16, against a chain per grid.
    const { plan } = planModel(resnet, { inputShape: [1, 3, 128, 128], cuts: 'stage', grid: [4, 4, 4, 2, 2].map((n) => ({ rows: n, cols: n })) });
    assert.equal(plan.chains.length, 1);
    const byGrid = new Map<string, number[]>();
    for (const s of plan.stages) {
      const key = s.kind === 'group' ? `${s.grid.rows}x${s.grid.cols}` : [...byGrid.keys()].pop()!;
      if (!byGrid.has(key)) byGrid.set(key, []);
      byGrid.get(key)!.push(s.id);
    }
    const split = [...byGrid.values()].map((stages, id) => ({ id, stages, workers: id === 0 ? 16 : 4 }));
    const one = exchangeBytes(plan, 1, buildRoutes(plan)).direct;
    const two = exchangeBytes(plan, 1, buildRoutes(plan, split)).direct;
    assert.ok(one < two, `one chain ${one} bytes vs a chain per grid ${two}`);
    // Each 2x2 tile is owned by a worker that held a quarter of it at 4x4.
    const routes = buildRoutes(plan);
    const first2x2 = plan.stages.find((s) => s.kind === 'group' && s.grid.rows === 2)!;
    const selfParts = (first2x2.kind === 'group' ? first2x2.tiles : []).map((t) => routes.reads.get(`${first2x2.id}:${t.index}`)!.flatMap((x) => x.parts).filter((p) => p.self).length);
    assert.ok(selfParts.every((n) => n === 1), `self parts per 2x2 tile: ${selfParts}`);
  });

  it('a chain wider than the worker limit is split back into single groups, its reductions on the master', () => {
    const { plan } = planModel(resnet, { inputShape: [1, 3, 128, 128], grid: { rows: 2, cols: 2 }, cuts: 'block' });
    const narrow = buildRoutes(plan, chainsFor(plan, 3));
    assert.equal(narrow.chains.length, plan.summary.groups);
    assert.ok(narrow.chains.every((c) => c.stages.length === 1));
    assert.deepEqual([...narrow.masterReads.keys()].length, 1, 'the classifier gathers the last map');
    assert.equal(chainsFor(plan, 4), plan.chains);
  });
});

describe('bundle segments', () => {
  it('round-trip items and reject corruption', () => {
    const items = [Float32Array.from([1, 2, 3]), Float32Array.from([4.5])];
    const buf = encodeBundle([{ items }, { items: [Float32Array.from([7, 8])] }]);
    assert.deepEqual(decodeSegment(buf.subarray(0, 20), [3, 1], 'k').map((a) => Array.from(a)), [[1, 2, 3], [4.5]]);
    assert.deepEqual(Array.from(decodeSegment(buf.subarray(20), [2], 'k')[0]), [7, 8]);
    const bad = Buffer.from(buf);
    bad[10] ^= 1;
    assert.throws(() => decodeSegment(bad.subarray(0, 20), [3, 1], 'requests/x/b-s0t1'), (e: Error) => e instanceof TileFormatError && /checksum/.test(e.message) && /b-s0t1/.test(e.message));
    assert.throws(() => decodeSegment(buf.subarray(0, 16), [3, 1], 'k'), /bytes/);
  });

  it('regions are cut straight into the body, bit for bit as a crop would give them', () => {
    const map = randomTensor([2, 3, 6, 7], 5);
    const at = { y0: 10, y1: 16, x0: 20, x1: 27 };
    const regions = [{ y0: 10, y1: 12, x0: 20, x1: 27 }, { y0: 11, y1: 16, x0: 25, x1: 27 }, { y0: 15, y1: 16, x0: 20, x1: 21 }];
    const buf = encodeBundle([{ items: regions.map((region) => ({ src: map, at, region })) }, { items: [Float32Array.from([9])] }]);
    const counts = regions.map((r) => 2 * 3 * (r.y1 - r.y0) * (r.x1 - r.x0));
    const first = 4 + 4 * counts.reduce((a, b) => a + b, 0);
    const got = decodeSegment(buf.subarray(0, first), counts, 'k');
    regions.forEach((r, i) => assert.deepEqual(Array.from(got[i]), Array.from(cropRegion(map, { y0: r.y0 - 10, y1: r.y1 - 10, x0: r.x0 - 20, x1: r.x1 - 20 }).data)));
    assert.deepEqual(Array.from(decodeSegment(buf.subarray(first), [1], 'k')[0]), [9]);
    assert.throws(() => encodeBundle([{ items: [{ src: map, at, region: { y0: 9, y1: 12, x0: 20, x1: 27 } }] }]), /not inside/);
  });
});

describe('wait clock', () => {
  it('counts overlapping waits once: a worker blocked on three neighbours at once is blocked for the longest', () => {
    const c = new WaitClock();
    c.blocked(100, 150);
    c.blocked(110, 160);
    c.blocked(120, 130);
    assert.equal(c.waitMs, 60);
    c.blocked(200, 210);
    c.blocked(90, 95);
    assert.equal(c.waitMs, 75);
    c.blocked(5, 5);
    assert.equal(c.waitMs, 75);
  });
});

describe('tile codec', () => {
  it('round-trips dims, region and data, and rejects corruption', () => {
    const t = { dims: [1, 2, 3, 5], data: Float32Array.from({ length: 30 }, (_, i) => i * 0.5 - 3) };
    const buf = encodeTensor(t, { y0: 4, y1: 7, x0: 0, x1: 5 });
    const { tensor, header } = decodeTensor(buf, 'k');
    assert.deepEqual(tensor.dims, t.dims);
    assert.deepEqual(Array.from(asFloat32(tensor, 'k').data), Array.from(t.data));
    assert.deepEqual(header.region, { y0: 4, y1: 7, x0: 0, x1: 5 });
    const bad = Buffer.from(buf);
    bad[bad.length - 1] ^= 0xff;
    assert.throws(() => decodeTensor(bad, 'requests/x/s0'), (e: Error) => e instanceof TileFormatError && /checksum/.test(e.message) && /requests\/x\/s0/.test(e.message));
    assert.throws(() => decodeTensor(buf.subarray(0, buf.length - 4), 'k'), /bytes/);
    assert.throws(() => decodeTensor(Buffer.from('hello world'), 'k'), /magic/);
  });
});

describe('cost model and config', () => {
  it('bills duration x vCPU and x memory, plus invocations, at FC CU prices', () => {
    const c = estimateCost([{ function: 'w', durationMs: 200 }, { function: 'w', durationMs: 200 }], { w: { vcpu: 0.25, memoryMb: 512 } });
    assert.equal(c.invocations, 2);
    assert.ok(Math.abs(c.vcpuSeconds - 0.1) < 1e-9);
    assert.ok(Math.abs(c.gbSeconds - 0.2) < 1e-9);
    // The official example: 3M calls x 200 ms x 0.5 GB x 0.25 vCPU = 217,500 CU.
    const perCall = FC_PRICING.cuPerInvocation + 0.2 * 0.25 + 0.2 * 0.5 * FC_PRICING.cuPerGbSecond;
    assert.ok(Math.abs(perCall * 3e6 - 217_500) < 1e-6);
  });
  it('rejects invalid settings by name', () => {
    assert.throws(() => loadConfig({ PORT: 'eighty' }), (e: Error) => e instanceof ConfigError && /PORT/.test(e.message));
    assert.throws(() => loadConfig({ WORKER_VCPU: '4', WORKER_MEMORY_MB: '1024' }), (e: Error) => /WORKER_VCPU=4/.test(e.message) && /1:1 and 1:4/.test(e.message));
    assert.equal(loadConfig({}).port, 9000);
  });
});

describe('configuration flags', () => {
  it('map onto the config variables and are validated like them', async () => {
    const { envFromArgs } = await import('../../src/cli/config-args.ts');
    assert.deepEqual(envFromArgs(['--port', '9001', '--worker-max-instances=8']), { PORT: '9001', WORKER_MAX_INSTANCES: '8' });
    assert.throws(() => envFromArgs(['--colour', 'blue']), /unknown flag --colour/);
    assert.throws(() => envFromArgs(['--port']), /needs a value/);
    assert.throws(() => loadConfig(envFromArgs(['--port', 'x'])), /PORT/);
  });
});
