// npm run verify -- --model <file.onnx> --plan <plan.json> [--seed N] [--batch N]
// Last line: one JSON object; exit 0 only if maxAbsDiff <= 1e-4 * max(1, maxRef).
import { parseArgs } from 'node:util';
import { materializePlan, parsePlan } from '../src/planner/materialize.ts';
import { verifyPlan } from '../src/exec/verify.ts';
import { readInput, runCli, UsageError } from '../src/cli/common.ts';

runCli(async () => {
  const { values } = parseArgs({ options: { model: { type: 'string' }, plan: { type: 'string' }, seed: { type: 'string' }, batch: { type: 'string' }, threads: { type: 'string' } } });
  if (!values.model || !values.plan) throw new UsageError('usage: npm run verify -- --model <file.onnx> --plan <plan.json> [--seed N] [--batch N]');
  const modelBytes = await readInput(values.model, 'model');
  const planText = (await readInput(values.plan, 'plan')).toString('utf8');
  let json: unknown;
  try { json = JSON.parse(planText); } catch (e) { throw new UsageError(`plan ${values.plan} is not JSON: ${(e as Error).message}`); }
  const plan = parsePlan(json, values.plan);
  const { subModels } = materializePlan(modelBytes, plan);
  const r = await verifyPlan(modelBytes, plan, subModels, {
    seed: values.seed ? Number(values.seed) : 1,
    batch: values.batch ? Number(values.batch) : undefined,
    threads: values.threads ? Number(values.threads) : undefined,
  });
  for (const t of r.timings) console.log(`stage ${t.id} ${t.kind}${t.tiles ? ` ${t.tiles} tiles` : ''}: ${t.ms.toFixed(1)} ms`);
  console.log(`monolithic ${r.monolithicMs.toFixed(1)} ms, partitioned ${r.partitionedMs.toFixed(1)} ms; max |diff| ${r.maxAbsDiff.toExponential(3)} (tolerance ${r.tolerance.toExponential(3)}): ${r.ok ? 'EQUAL' : 'MISMATCH'}`);
  const { timings: _t, ...summary } = r;
  console.log(JSON.stringify(summary));
  return r.ok ? 0 : 1;
});
