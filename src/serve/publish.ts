/**
 * Registry entries for published plans, shared by the local stack (`publishModel` in stack.ts)
 * and `npm run upload-plan` (which publishes to whatever store the configuration names, OSS in
 * the cloud). The registry is read, modified and written back whole; entries are keyed by name.
 */
import type { Plan } from '../plan/schema.ts';
import { ObjectNotFoundError, type ObjectStore } from '../store/object-store.ts';
import { publishPlan } from './artifacts.ts';
import { guardPlan } from './guard.ts';
import { materializePlan } from '../planner/materialize.ts';
import { oipDatatype } from './model-entry.ts';
import { REGISTRY_KEY, registrySchema, type Registry, type StoredModelEntry } from './registry.ts';

/** The served model entry for a published plan, under `name`. */
export function registryEntry(name: string, planKey: string, plan: Plan): StoredModelEntry {
  const [, c, h, w] = plan.input.shape;
  return {
    name,
    planKey,
    inputName: plan.input.name,
    inputShape: [-1, c, h, w],
    outputName: plan.outputs[0].name,
    outputShape: [-1, ...plan.outputs[0].shape.slice(1)],
    preprocessing: c === 3 ? { width: w, height: h } : undefined,
    io: {
      inputs: [{ name: plan.input.name, datatype: oipDatatype(plan.input.dtype ?? 'float32'), shape: [-1, c, h, w] }],
      outputs: plan.outputs.map((o) => ({ name: o.name, datatype: oipDatatype(o.dtype ?? 'float32'), shape: [-1, ...o.shape.slice(1)] })),
    },
  };
}

/** The registry in the store, or an empty one if none was published yet. */
export async function readRegistryOrEmpty(store: ObjectStore): Promise<Registry> {
  let raw: Buffer;
  try {
    raw = await store.get(REGISTRY_KEY);
  } catch (e) {
    if (e instanceof ObjectNotFoundError) return { version: 1, models: [] };
    throw e;
  }
  const json: unknown = JSON.parse(raw.toString('utf8'));
  registrySchema.parse(json); // validate, but keep the entries as written (no defaults filled in)
  return json as Registry;
}

export interface RegistryUpdate { registry: Registry; added: string[]; replaced: string[] }

/**
 * Adds or replaces `entries` by name (a replaced entry keeps its place, a new one is appended);
 * names in `first` are then moved to the front, in that order.
 */
export function upsertRegistry(reg: Registry, entries: StoredModelEntry[], first: string[] = []): RegistryUpdate {
  const models = [...reg.models];
  const added: string[] = [];
  const replaced: string[] = [];
  for (const e of entries) {
    const i = models.findIndex((m) => m.name === e.name);
    if (i >= 0) {
      models[i] = e;
      replaced.push(e.name);
    } else {
      models.push(e);
      added.push(e.name);
    }
  }
  const front = first.map((n) => models.find((m) => m.name === n)).filter((m): m is StoredModelEntry => !!m);
  const rest = models.filter((m) => !first.includes(m.name));
  const registry: Registry = { version: 1, models: [...front, ...rest] };
  registrySchema.parse(registry);
  return { registry, added, replaced };
}

export async function writeRegistry(store: ObjectStore, reg: Registry): Promise<void> {
  registrySchema.parse(reg);
  await store.put(REGISTRY_KEY, Buffer.from(JSON.stringify(reg)));
}

export interface PublishedPlan extends RegistryUpdate { planKey: string; uploaded: number; bytes: number; entries: StoredModelEntry[] }

/**
 * Checks one plan with the guard (./guard.ts), publishes it (its sub-models, content-addressed,
 * then the plan) and registers it under `names` (read-modify-write of the registry).
 * `defaultName`, if given, is listed first.
 */
export async function publishPlanToRegistry(
  store: ObjectStore, modelBytes: Uint8Array, plan: Plan,
  opts: { planName: string; names: string[]; defaultName?: string; guardBudgetBytes?: number },
): Promise<PublishedPlan> {
  if (!opts.names.length) throw new Error('no registry name given for the plan');
  // Checked against monolithic ORT before anything is uploaded: a wrong plan never reaches the store.
  await guardPlan(modelBytes, plan, materializePlan(modelBytes, plan).subModels, { budgetBytes: opts.guardBudgetBytes });
  const { planKey, uploaded, bytes } = await publishPlan(store, modelBytes, plan, opts.planName);
  const entries = opts.names.map((n) => registryEntry(n, planKey, plan));
  const update = upsertRegistry(await readRegistryOrEmpty(store), entries, opts.defaultName ? [opts.defaultName] : []);
  await writeRegistry(store, update.registry);
  return { planKey, uploaded, bytes, entries, ...update };
}
