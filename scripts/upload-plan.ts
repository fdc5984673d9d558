// npm run upload-plan -- --plan <plan.json> --model <file.onnx> [--name <model name>] [--default]
//
// Publishes a plan and its sub-models to the configured store (STORE=oss OSS_BUCKET=... for the
// cloud; the local filesystem store by default) and registers it in the model registry:
//   - always under the plan's name (the plan file's base name, e.g. resnet18-224-4x4);
//   - --name X: also under X (e.g. resnet18), replacing any entry of that name;
//   - --default: X (or the plan's model name when --name is absent) is listed first, as the
//     local stack does for DEFAULT_PLAN.
// Sub-models are content-addressed: re-uploading, or uploading another plan of the same model,
// only sends the groups that are not there yet.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { runCli, UsageError, readInput } from '../src/cli/common.ts';
import { loadConfig } from '../src/config.ts';
import { parsePlan } from '../src/planner/materialize.ts';
import { makeStore } from '../src/serve/deps.ts';
import { publishPlanToRegistry } from '../src/serve/publish.ts';

const USAGE = 'usage: npm run upload-plan -- --plan <plan.json> --model <file.onnx> [--name <model name>] [--default]';

runCli(async () => {
  const { values } = parseArgs({ options: { plan: { type: 'string' }, model: { type: 'string' }, name: { type: 'string' }, default: { type: 'boolean' }, help: { type: 'boolean' } } });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.plan || !values.model) throw new UsageError(USAGE);
  const config = loadConfig();
  const store = makeStore(config);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(values.plan, 'utf8'));
  } catch (cause) {
    throw new UsageError(`cannot read plan ${values.plan}: ${(cause as Error).message}`, { cause });
  }
  const plan = parsePlan(json, values.plan);
  const modelBytes = await readInput(values.model, 'model');
  const planName = basename(values.plan).replace(/\.json$/, '');
  const alias = values.name ?? (values.default ? plan.model.name : undefined);
  const names = [...new Set([planName, ...(alias ? [alias] : [])])];
  const where = config.store === 'fs' ? `fs store ${config.dataDir}/store` : `${config.store} store`;
  console.log(`publishing ${values.plan} (model ${plan.model.name}, sha256 ${plan.model.sha256.slice(0, 12)}, ${plan.summary.groups} groups, ${plan.summary.tiles} tiles) to the ${where}`);
  const t0 = performance.now();
  const r = await publishPlanToRegistry(store, modelBytes, plan, { planName, names, defaultName: values.default ? alias : undefined });
  const subModels = plan.stages.length;
  console.log(`sub-models: ${r.uploaded} uploaded (${(r.bytes / 1024 / 1024).toFixed(1)} MiB), ${subModels - r.uploaded} already there`);
  console.log(`plan:       ${r.planKey}`);
  console.log(`registry:   ${r.added.length ? `added ${r.added.join(', ')}` : ''}${r.added.length && r.replaced.length ? '; ' : ''}${r.replaced.length ? `replaced ${r.replaced.join(', ')}` : ''}`);
  for (const m of r.registry.models) console.log(`  ${m.name.padEnd(28)} -> ${m.planKey}  input ${m.inputShape.join('x')}`);
  console.log(JSON.stringify({ planKey: r.planKey, uploaded: r.uploaded, bytes: r.bytes, names, models: r.registry.models.map((m) => m.name), ms: Math.round(performance.now() - t0) }));
});
