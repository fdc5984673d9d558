import { z } from 'zod';
import { preprocessingSchema } from './model-entry.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { ArtifactMissingError, RegistryInvalidError } from './errors.ts';
import { describeIssues } from '../zod-issues.ts';
import { ObjectNotFoundError } from '../store/object-store.ts';
import { costProfileSchema } from '../cost/model.ts';
import { detPreprocessingSchema } from '../vision/ppocr.ts';
import { dbOptionsSchema } from '../vision/db.ts';
import { shapePolicySchema, tensorMetaSchema } from './model-config.ts';

/**
 * How a model without a committed plan is planned per input shape (src/serve/shape-plans.ts):
 * the model's bytes in the store, the sizes it accepts, and what the automatic planner is told.
 */
export const autoPlanningSchema = z.object({
  modelKey: z.string(),
  modelSha: z.string().regex(/^[0-9a-f]{64}$/),
  shape: shapePolicySchema,
  objective: z.enum(['balanced', 'latency', 'cost']),
  profile: costProfileSchema,
  vcpu: z.number().positive(),
  workerMemoryMb: z.number().int().positive(),
  /** Worker instances that run at once (the pool size, or FC's instance limit). */
  concurrency: z.number().int().positive(),
  maxWorkers: z.number().int().positive(),
  /** Memory the guard's monolithic check may use (MB); above it the check runs at a smaller shape. */
  guardMemoryMb: z.number().int().positive(),
}).strict();
export type AutoPlanning = z.infer<typeof autoPlanningSchema>;

/**
 * A served model, as the routes (src/http) and the backend read it. The registry stores it in a
 * slightly different form (`storedModelEntrySchema`, below), derived from this one so that the
 * fields the two share are declared once.
 */
export const modelEntrySchema = z.object({
  /** A versioned entry of a model repository is listed as `<name>/<version>`. */
  name: z.string().regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)?$/),
  /** The committed plan; absent for models planned per shape. */
  planKey: z.string().optional(),
  inputName: z.string(),
  /** -1 for dynamic dimensions. */
  inputShape: z.array(z.number().int()),
  outputName: z.string(),
  outputShape: z.array(z.number().int()),
  /** Present when the model accepts image bodies (image/jpeg, image/png, image/webp). */
  preprocessing: preprocessingSchema.optional(),
  /** Class labels for top_k / the classification extension. */
  labels: z.array(z.string()).optional(),
  /** Largest accepted input (element count); larger requests get 413. */
  maxInputElements: z.number().int().positive().optional(),
  /** The model's real inputs and outputs for GET /v2/models/{name} (absent: FP32 from the fields above). */
  metadata: z.object({
    inputs: z.array(tensorMetaSchema), outputs: z.array(tensorMetaSchema), versions: z.array(z.string()).optional(),
  }).strict().optional(),
  auto: autoPlanningSchema.optional(),
  /** Image bodies in BGR plane order (models trained on images read by OpenCV). */
  channelOrder: z.enum(['rgb', 'bgr']).optional(),
  /** Image bodies prepared as PaddleOCR does, and the map turned into boxes (DB post-processing, src/http/text-detection.ts). */
  textDetection: z.object({ preprocessing: detPreprocessingSchema, db: dbOptionsSchema }).strict().optional(),
  /** Responses add `mask`, the per-pixel argmax of the [N,K,H,W] output (src/http/segmentation.ts). */
  segmentation: z.boolean().optional(),
}).strict();
export type ModelEntry = z.infer<typeof modelEntrySchema>;

/**
 * A model entry as the registry stores it: preprocessing as configured (defaults not yet
 * applied, so a rewritten registry keeps `resize: null`), the tensors as `io` and `versions`,
 * and no input limit (computed from the shapes by `modelEntries`).
 */
export const storedModelEntrySchema = modelEntrySchema
  .omit({ preprocessing: true, maxInputElements: true, metadata: true })
  .extend({
    preprocessing: z.input(preprocessingSchema).optional(),
    /** The model's real inputs and outputs (names, OIP datatypes, -1 for dynamic axes): GET /v2/models/{name}. */
    io: z.object({ inputs: z.array(tensorMetaSchema), outputs: z.array(tensorMetaSchema) }).strict().optional(),
    versions: z.array(z.string()).optional(),
  })
  .strict();
export type StoredModelEntry = z.infer<typeof storedModelEntrySchema>;

/** What the handler serves: model names, each bound to a published plan, or planned per input shape (`auto`). */
export const registrySchema = z.object({
  version: z.literal(1),
  models: z.array(storedModelEntrySchema),
}).strict();
export type Registry = z.infer<typeof registrySchema>;

export const REGISTRY_KEY = 'artifacts/registry.json';

export async function readRegistry(store: ObjectStore): Promise<Registry> {
  let raw: Buffer;
  try {
    raw = await store.get(REGISTRY_KEY);
  } catch (e) {
    if (e instanceof ObjectNotFoundError) throw new ArtifactMissingError('no model registry in the store: publish a model first', { key: REGISTRY_KEY, cause: e });
    throw e;
  }
  let json: unknown;
  try { json = JSON.parse(raw.toString('utf8')); } catch (e) { throw new RegistryInvalidError(`not JSON: ${(e as Error).message}`, { key: REGISTRY_KEY, cause: e }); }
  const r = registrySchema.safeParse(json);
  if (!r.success) throw new RegistryInvalidError(describeIssues(r.error.issues), { key: REGISTRY_KEY, cause: r.error });
  return r.data;
}

/** The served view of each stored entry, by name. */
export function modelEntries(reg: Registry): Map<string, ModelEntry> {
  return new Map(reg.models.map((m) => {
    const [, c] = m.inputShape;
    // Dynamic sizes are bounded by the shape policy (4 images of the largest side); fixed ones by a batch of 64.
    const side = m.auto?.shape.kind === 'dynamic' ? m.auto.shape.maxSide : 0;
    const dims = m.inputShape.map((d, i) => (d >= 0 ? d : i === 0 ? 64 : side || 64));
    const entry: ModelEntry = {
      name: m.name, inputName: m.inputName, inputShape: m.inputShape, outputName: m.outputName, outputShape: m.outputShape,
      preprocessing: m.preprocessing ? preprocessingSchema.parse(m.preprocessing) : undefined, labels: m.labels,
      maxInputElements: side ? 4 * c * side * side : dims.reduce((a, b) => a * b, 1),
      ...(m.planKey ? { planKey: m.planKey } : {}),
      ...(m.auto ? { auto: m.auto } : {}),
      ...(m.io ? { metadata: { ...m.io, ...(m.versions ? { versions: m.versions } : {}) } } : {}),
      ...(m.channelOrder ? { channelOrder: m.channelOrder } : {}),
      ...(m.textDetection ? { textDetection: m.textDetection } : {}),
      ...(m.segmentation ? { segmentation: true } : {}),
    };
    return [m.name, entry];
  }));
}
