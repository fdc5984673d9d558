import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/models/index.ts';
import { planModel } from '../../src/planner/plan.ts';
import { buildExchange, exchangeBytes } from '../../src/serve/exchange.ts';
import { decodeTensor, encodeTensor } from '../../src/serve/tile-codec.ts';
import { TileFormatError } from '../../src/serve/errors.ts';
import { estimateCost, FC_PRICING } from '../../src/serve/cost.ts';
import { loadConfig, ConfigError } from '../../src/config.ts';
import type { TileRegion } from '../../src/tiling/geometry.ts';

const area = (r: TileRegion) => (r.y1 - r.y0) * (r.x1 - r.x0);

describe('tile exchange derived from the plan', () => {
  const resnet = buildModel('resnet18');
  for (const grids of [[3, 2], [4, 4]]) {
    it(`pieces tile every consumer region exactly (grid ${grids.join('x')} then 2x3)`, () => {
      const { plan } = planModel(resnet, { inputShape: [1, 3, 112, 144], grid: [{ rows: grids[0], cols: grids[1] }, { rows: 2, cols: 3 }, { rows: 3, cols: 2 }, { rows: 2, cols: 2 }, { rows: 1, cols: 2 }] });
      const ex = buildExchange(plan);
      for (const reads of ex.reads.values()) {
        for (const r of reads) {
          // Producer cells partition the map, so the pieces partition the region: areas add up, no overlap.
          assert.equal(r.pieces.reduce((a, p) => a + area(p.region), 0), area(r.region));
          for (const p of r.pieces) {
            assert.ok(p.region.y0 >= r.region.y0 && p.region.y1 <= r.region.y1 && p.region.x0 >= r.region.x0 && p.region.x1 <= r.region.x1);
          }
        }
      }
      // The master reads whole maps only for its own stages and the model output.
      assert.deepEqual([...ex.masterReads.keys()], ['layer4.1.relu2_output_0']);
      const b = exchangeBytes(plan);
      assert.ok(b.direct < b.mergeResplit, `direct ${b.direct} vs merge-and-resplit ${b.mergeResplit}`);
    });
  }
});

describe('tile codec', () => {
  it('round-trips dims, region and data, and rejects corruption', () => {
    const t = { dims: [1, 2, 3, 5], data: Float32Array.from({ length: 30 }, (_, i) => i * 0.5 - 3) };
    const buf = encodeTensor(t, { y0: 4, y1: 7, x0: 0, x1: 5 });
    const { tensor, header } = decodeTensor(buf, 'k');
    assert.deepEqual(tensor.dims, t.dims);
    assert.deepEqual(Array.from(tensor.data), Array.from(t.data));
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
