/**
 * A served model as the handler sees it, shared by serve (the registry, publishing, the
 * backend) and http (routing, image preprocessing, OIP metadata), so that serve never has to
 * import the HTTP layer (and, through it, sharp).
 */
import { z } from 'zod';
import type { FloatTensor } from '../runtime/ort.ts';
import type { DType } from '../tensor/dtype.ts';
import type { DetPreprocessing } from '../vision/ppocr.ts';
import type { DbOptions } from '../vision/db.ts';
// Type-only: erased at run time, so http still loads no registry code.
import type { ModelEntry } from './registry.ts';

// ---------------------------------------------------------------------------
// OIP datatypes of model tensors

export const OIP_DATATYPES = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'BF16', 'FP32', 'FP64', 'BYTES',
] as const;
export type OipDatatype = (typeof OIP_DATATYPES)[number];
/** The datatypes a model's tensors can have here, and the runtime dtype of each. */
export const OIP_TO_DTYPE = {
  FP32: 'float32', FP16: 'float16', BF16: 'bfloat16', INT8: 'int8', UINT8: 'uint8', INT32: 'int32', INT64: 'int64', BOOL: 'bool',
} as const satisfies Partial<Record<OipDatatype, DType>>;
export type TensorDatatype = keyof typeof OIP_TO_DTYPE;
export const DTYPE_TO_OIP: Readonly<Record<DType, TensorDatatype>> = {
  float32: 'FP32', float16: 'FP16', bfloat16: 'BF16', int8: 'INT8', uint8: 'UINT8', int32: 'INT32', int64: 'INT64', bool: 'BOOL',
};
/** The OIP datatype of a runtime dtype (model metadata, responses). */
export const oipDatatype = (d: DType): TensorDatatype => DTYPE_TO_OIP[d];

export interface TensorMetadata {
  name: string;
  datatype: string;
  /** -1 for dynamic dimensions. */
  shape: number[];
}

/** Text detection's preprocessing and DB post-processing options (src/http/text-detection.ts). */
export interface TextDetection { preprocessing: DetPreprocessing; db: DbOptions }

// ---------------------------------------------------------------------------
// Image preprocessing

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

export interface Preprocessing {
  /** Output width and height (the model's input W and H). */
  width: number;
  height: number;
  /**
   * Shorter side is resized to this before the center crop. Absent: resize
   * directly to width x height (aspect ratio not kept).
   */
  resize?: number;
  mean: [number, number, number];
  std: [number, number, number];
}

const triple = z.tuple([z.number(), z.number(), z.number()]);
const dim = z.number().int().min(1).max(8192);

/**
 * Preprocessing config. Defaults are ImageNet's: 224x224, mean/std as above and
 * `resize` = floor(max(width, height) / 0.875) (256 for 224). `resize: null`
 * selects the direct resize to width x height.
 */
export const preprocessingSchema = z
  .object({
    width: dim.default(224),
    height: dim.default(224),
    resize: dim.nullable().optional(),
    mean: triple.default(IMAGENET_MEAN),
    std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).default(IMAGENET_STD),
  })
  .refine((p) => p.resize == null || p.resize >= Math.max(p.width, p.height), {
    message: 'resize (shorter side) must be at least max(width, height) so the center crop fits',
    path: ['resize'],
  })
  .transform((p): Preprocessing => {
    const resize = p.resize === undefined ? Math.floor(Math.max(p.width, p.height) / 0.875) : p.resize;
    return {
      width: p.width,
      height: p.height,
      ...(resize === null ? {} : { resize }),
      mean: [...p.mean] as [number, number, number],
      std: [...p.std] as [number, number, number],
    };
  });

export type PreprocessingInput = z.input<typeof preprocessingSchema>;

/** ImageNet defaults: resize 256, center-crop 224x224. */
export const IMAGENET_PREPROCESSING: Preprocessing = preprocessingSchema.parse({});

// ---------------------------------------------------------------------------
// The model entry and the backend behind the routes

/** Declared with the registry's schema (./registry.ts), whose stored form is derived from it. */
export type { ModelEntry };

export interface InferenceBackend {
  ready(): Promise<boolean>;
  /** `deadline` (epoch ms): when the request must be answered; the backend refuses or gives up past it. */
  infer(model: ModelEntry, input: FloatTensor, requestId: string, opts?: InferOptions): Promise<{ output: FloatTensor; cost: unknown }>;
}

export interface InferOptions {
  deadline?: number;
}

