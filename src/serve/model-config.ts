/**
 * What a served model is: its `config.json` in a model repository (zod, the single source of
 * truth), the model's real inputs and outputs as its ONNX file declares them, and the check
 * that the two fit. Every failure names the model and the field, at start.
 */
import { z } from 'zod';
import { decodeModel, DataType, toNum } from '../onnx/model-io.ts';
import { detPreprocessingSchema } from '../vision/ppocr.ts';
import { dbOptionsSchema } from '../vision/db.ts';
import { IMAGENET_MEAN, IMAGENET_STD } from './model-entry.ts';

const side = z.number().int().min(1).max(16384);
const triple = z.tuple([z.number(), z.number(), z.number()]);
const positiveTriple = z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]);

/**
 * Which input sizes a model is served at. `fixed`: one H x W (one plan). `dynamic`: any H and W
 * that are multiples of `multipleOf` within [minSide, maxSide]; a plan is made per size on first use.
 */
export const shapePolicySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('fixed'), height: side, width: side }).strict(),
  z.object({
    kind: z.literal('dynamic'),
    multipleOf: z.number().int().min(1).max(1024).default(1),
    minSide: side.default(32),
    maxSide: side.default(4096),
  }).strict().refine((p) => p.minSide <= p.maxSide, { message: 'minSide must not exceed maxSide', path: ['minSide'] }),
]);
export type ShapePolicy = z.infer<typeof shapePolicySchema>;

/** Image bodies: torchvision-style (resize the shorter side, centre-crop, normalise), or PaddleOCR's text-detection resize. */
export const imagePreprocessingSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('imagenet'),
    width: side.default(224),
    height: side.default(224),
    /** Shorter side before the centre crop; null: resize straight to width x height. Default width/0.875. */
    resize: side.nullable().optional(),
    mean: triple.default(IMAGENET_MEAN),
    std: positiveTriple.default(IMAGENET_STD),
    channelOrder: z.enum(['rgb', 'bgr']).default('rgb'),
  }).strict(),
  detPreprocessingSchema.extend({ kind: z.literal('ppocr-det') }).strict(),
]);
export type ImagePreprocessing = z.infer<typeof imagePreprocessingSchema>;

export const postprocessingSchema = z.discriminatedUnion('kind', [
  /** Top-k over the output; `labels`: a text file next to config.json, one label per line. */
  z.object({ kind: z.literal('classification'), labels: z.string().min(1).optional() }).strict(),
  /** DB post-processing of a [N,1,H,W] probability map into `boxes` and `scores`. */
  z.object({ kind: z.literal('text-detection'), db: dbOptionsSchema.partial().default({}) }).strict(),
  /** Per-pixel class scores [N,K,H,W]: the response adds the argmax `mask` [N,H,W]. */
  z.object({ kind: z.literal('segmentation') }).strict(),
]);
export type Postprocessing = z.infer<typeof postprocessingSchema>;

export const modelConfigSchema = z.object({
  input: z.object({
    /** Only NCHW inputs are tiled (H and W are the spatial axes). */
    layout: z.enum(['NCHW'], { message: 'only NCHW inputs can be tiled' }).default('NCHW'),
    /** Default: fixed at the model's own H and W when they are static, else dynamic. */
    shape: shapePolicySchema.optional(),
  }).strict().default({ layout: 'NCHW' }),
  preprocessing: imagePreprocessingSchema.optional(),
  postprocessing: postprocessingSchema.optional(),
  /** Memory each worker may use (MB); the automatic planner keeps every tile's peak under it. Default WORKER_MEMORY_MB. */
  workerMemoryMb: z.number().int().min(128).max(32768).optional(),
  /** The automatic planner's objective (planner/auto.ts). */
  objective: z.enum(['balanced', 'latency', 'cost']).default('balanced'),
}).strict();
export type ModelConfig = z.infer<typeof modelConfigSchema>;

/** A model whose file or config cannot be served: names the model and the field. */
export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
  constructor(readonly model: string, readonly field: string, message: string, options?: { cause?: unknown }) {
    super(`model ${model}: ${field}: ${message}`, options);
  }
}

/** Parses a config.json body; errors name the model and the first bad fields. */
export function parseModelConfig(model: string, json: unknown): ModelConfig {
  const r = modelConfigSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = i.path.join('.') || '(config)';
    throw new ModelConfigError(model, `config.json ${field}`, r.error.issues.slice(0, 3).map((x) => `${x.path.join('.') || '(root)'}: ${x.message}`).join('; '));
  }
  return r.data;
}

export const tensorMetaSchema = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()) }).strict();
export type TensorMeta = z.infer<typeof tensorMetaSchema>;

const OIP_OF: Record<number, string> = {
  [DataType.FLOAT]: 'FP32', [DataType.FLOAT16]: 'FP16', [DataType.BFLOAT16]: 'BF16', [DataType.DOUBLE]: 'FP64',
  [DataType.INT8]: 'INT8', [DataType.UINT8]: 'UINT8', [DataType.INT16]: 'INT16', [DataType.UINT16]: 'UINT16',
  [DataType.INT32]: 'INT32', [DataType.UINT32]: 'UINT32', [DataType.INT64]: 'INT64', [DataType.UINT64]: 'UINT64',
  [DataType.BOOL]: 'BOOL', [DataType.STRING]: 'BYTES',
};

/** The model's graph inputs (initializers excluded) and outputs: names, OIP datatypes, shapes with -1 for dynamic axes. */
export function modelIo(bytes: Uint8Array, label: string): { inputs: TensorMeta[]; outputs: TensorMeta[] } {
  let model;
  try {
    model = decodeModel(bytes, label);
  } catch (e) {
    throw new ModelConfigError(label, 'model.onnx', `not a readable ONNX model: ${(e as Error).message}`, { cause: e });
  }
  const g = model.graph;
  if (!g) throw new ModelConfigError(label, 'model.onnx', 'the model has no graph');
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const meta = (v: NonNullable<typeof g.input>[number]): TensorMeta => {
    const tt = v.type?.tensorType;
    const dims = tt?.shape?.dim ?? [];
    return {
      name: v.name ?? '',
      datatype: OIP_OF[tt?.elemType ?? 0] ?? `onnx type ${tt?.elemType ?? '?'}`,
      shape: dims.map((d) => (d.dimValue !== undefined && d.dimValue !== null && toNum(d.dimValue) > 0 ? toNum(d.dimValue) : -1)),
    };
  };
  return { inputs: (g.input ?? []).filter((i) => !inits.has(i.name ?? '')).map(meta), outputs: (g.output ?? []).map(meta) };
}

/** What the registry needs to serve a model: its I/O, the shape policy, preprocessing and post-processing, all checked. */
export interface ResolvedModel {
  io: { inputs: TensorMeta[]; outputs: TensorMeta[] };
  shape: ShapePolicy;
  channels: number;
  config: ModelConfig;
}

/**
 * Checks that `config` fits the model: one NCHW input, the shape policy within the model's
 * static dimensions, image preprocessing only for 3-channel float inputs of the right size,
 * and post-processing that matches the output. Throws ModelConfigError naming the field.
 */
export function resolveModel(name: string, bytes: Uint8Array, config: ModelConfig, labels?: string[]): ResolvedModel {
  const io = modelIo(bytes, name);
  if (io.inputs.length !== 1) throw new ModelConfigError(name, 'model.onnx inputs', `has ${io.inputs.length} inputs (${io.inputs.map((i) => i.name).join(', ')}); only single-input image models are served`);
  const input = io.inputs[0];
  if (input.shape.length !== 4) throw new ModelConfigError(name, 'input.layout', `input ${input.name} has rank ${input.shape.length}, not 4 (NCHW)`);
  const [, c, h, w] = input.shape;
  if (c < 1) throw new ModelConfigError(name, 'input.layout', `input ${input.name} has a dynamic channel axis; NCHW needs C static`);
  let shape: ShapePolicy;
  const s = config.input.shape;
  if (!s) {
    shape = h > 0 && w > 0 ? { kind: 'fixed', height: h, width: w }
      : config.preprocessing?.kind === 'imagenet' ? { kind: 'fixed', height: config.preprocessing.height, width: config.preprocessing.width }
        : { kind: 'dynamic', multipleOf: config.preprocessing?.kind === 'ppocr-det' ? config.preprocessing.multipleOf : 1, minSide: 32, maxSide: 4096 };
  } else shape = s;
  if (shape.kind === 'fixed') {
    if (h > 0 && shape.height !== h) throw new ModelConfigError(name, 'input.shape.height', `is ${shape.height}, but the model's input ${input.name} has H = ${h}`);
    if (w > 0 && shape.width !== w) throw new ModelConfigError(name, 'input.shape.width', `is ${shape.width}, but the model's input ${input.name} has W = ${w}`);
  } else if (h > 0 || w > 0) {
    throw new ModelConfigError(name, 'input.shape.kind', `is dynamic, but the model's input ${input.name} is fixed at ${h}x${w}`);
  }
  const pre = config.preprocessing;
  if (pre) {
    if (c !== 3) throw new ModelConfigError(name, 'preprocessing', `images give 3 channels, but the model's input ${input.name} has ${c}`);
    if (input.datatype !== 'FP32') throw new ModelConfigError(name, 'preprocessing', `images give FP32, but the model's input ${input.name} is ${input.datatype}`);
    if (pre.kind === 'imagenet') {
      if (shape.kind === 'fixed' && (pre.height !== shape.height || pre.width !== shape.width)) {
        throw new ModelConfigError(name, 'preprocessing.width', `images are prepared at ${pre.height}x${pre.width}, but the model is served at ${shape.height}x${shape.width}`);
      }
      if (shape.kind === 'dynamic') {
        for (const [k, v] of [['height', pre.height], ['width', pre.width]] as const) {
          if (v % shape.multipleOf || v < shape.minSide || v > shape.maxSide) throw new ModelConfigError(name, `preprocessing.${k}`, `${v} is outside input.shape (multiple of ${shape.multipleOf}, ${shape.minSide}..${shape.maxSide})`);
        }
      }
    } else {
      if (shape.kind !== 'dynamic') throw new ModelConfigError(name, 'preprocessing.kind', 'ppocr-det keeps each image\'s own size: it needs a dynamic input.shape');
      if (pre.multipleOf % shape.multipleOf) throw new ModelConfigError(name, 'preprocessing.multipleOf', `${pre.multipleOf} is not a multiple of input.shape.multipleOf ${shape.multipleOf}`);
      if (pre.maxSide > shape.maxSide) throw new ModelConfigError(name, 'preprocessing.maxSide', `${pre.maxSide} is above input.shape.maxSide ${shape.maxSide}`);
    }
  }
  const post = config.postprocessing;
  const out = io.outputs[0];
  // An output declared without a shape is checked by the planner and ORT only.
  const known = (o: TensorMeta) => o.shape.length > 0;
  if (post?.kind === 'text-detection' && known(out)) {
    if (out.shape.length !== 4 || (out.shape[1] !== 1 && out.shape[1] !== -1)) throw new ModelConfigError(name, 'postprocessing.kind', `text detection needs a [N,1,H,W] probability map; output ${out.name} is [${out.shape.join(',')}]`);
    if (out.datatype !== 'FP32') throw new ModelConfigError(name, 'postprocessing.kind', `text detection needs an FP32 map; output ${out.name} is ${out.datatype}`);
  }
  if (post?.kind === 'segmentation' && known(out) && out.shape.length !== 4) throw new ModelConfigError(name, 'postprocessing.kind', `segmentation needs a [N,K,H,W] output; ${out.name} is [${out.shape.join(',')}]`);
  if (post?.kind === 'classification') {
    const classes = out.shape[out.shape.length - 1];
    if (known(out) && out.shape.length !== 2) throw new ModelConfigError(name, 'postprocessing.kind', `classification needs a [N,K] output; ${out.name} is [${out.shape.join(',')}]`);
    if (labels && classes > 0 && labels.length !== classes) throw new ModelConfigError(name, 'postprocessing.labels', `has ${labels.length} labels, the output ${out.name} has ${classes} classes`);
  }
  return { io, shape, channels: c, config };
}

/** The configuration `ppocr-det` is served with: PaddleOCR's preprocessing and DB post-processing. */
export const PPOCR_DET_CONFIG: ModelConfig = modelConfigSchema.parse({
  input: { shape: { kind: 'dynamic', multipleOf: 32, minSide: 32, maxSide: 4096 } },
  preprocessing: { kind: 'ppocr-det' },
  postprocessing: { kind: 'text-detection' },
});
