import { z } from 'zod';
import { preprocessingSchema } from '../http/image.ts';
import type { ModelEntry } from '../http/routes.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { ArtifactMissingError } from './errors.ts';
import { ObjectNotFoundError } from '../store/object-store.ts';

/** What the handler serves: model names, each bound to a published plan. */
export const registrySchema = z.object({
  version: z.literal(1),
  models: z.array(z.object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/),
    planKey: z.string(),
    inputName: z.string(),
    inputShape: z.array(z.number().int()),
    outputName: z.string(),
    outputShape: z.array(z.number().int()),
    preprocessing: z.input(preprocessingSchema).optional(),
    labels: z.array(z.string()).optional(),
  }).strict()),
}).strict();
export type Registry = z.infer<typeof registrySchema>;
export type RegistryEntry = Registry['models'][number];

export const REGISTRY_KEY = 'artifacts/registry.json';

export async function readRegistry(store: ObjectStore): Promise<Registry> {
  let raw: Buffer;
  try {
    raw = await store.get(REGISTRY_KEY);
  } catch (e) {
    if (e instanceof ObjectNotFoundError) throw new ArtifactMissingError('no model registry in the store: publish a model first', { key: REGISTRY_KEY, cause: e });
    throw e;
  }
  return registrySchema.parse(JSON.parse(raw.toString('utf8')));
}

export function modelEntries(reg: Registry): Map<string, ModelEntry & { planKey: string }> {
  return new Map(reg.models.map((m) => [m.name, {
    name: m.name, planKey: m.planKey, inputName: m.inputName, inputShape: m.inputShape, outputName: m.outputName, outputShape: m.outputShape,
    preprocessing: m.preprocessing ? preprocessingSchema.parse(m.preprocessing) : undefined, labels: m.labels,
    maxInputElements: m.inputShape.map((d) => (d < 0 ? 64 : d)).reduce((a, b) => a * b, 1),
  }]));
}
