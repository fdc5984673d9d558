/**
 * Image request preprocessing: JPEG/PNG/WebP bytes → normalised NCHW float32
 * tensor [1, 3, H, W], torchvision-style:
 *   Resize(resize) (shorter side) → CenterCrop(height, width) → ToTensor → Normalize(mean, std)
 * or, with `resize: null`, a direct (aspect-ratio-ignoring) resize to width x height.
 */
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import type { FloatTensor } from '../runtime/ort.ts';
import { HttpError, payloadTooLarge, unsupportedMediaType } from './errors.ts';
import { mediaType } from './fc-event.ts';
import type { Preprocessing } from '../serve/model-entry.ts';


/** Declared media types accepted, and the sharp format each must decode as. */
const ACCEPTED: Record<string, 'jpeg' | 'png' | 'webp'> = {
  'image/jpeg': 'jpeg',
  'image/jpg': 'jpeg',
  'image/pjpeg': 'jpeg',
  'image/png': 'png',
  'image/webp': 'webp',
};
export const ACCEPTED_IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp'] as const;

export interface PreprocessOptions {
  /** Reject images with more pixels than this (decompression-bomb guard). Default 40 M. */
  maxPixels?: number;
}

const DEFAULT_MAX_PIXELS = 40_000_000;

/** Where to resize to and crop from: torchvision Resize(int) + CenterCrop semantics. */
export function resizePlan(srcW: number, srcH: number, pre: Preprocessing): { rw: number; rh: number; left: number; top: number } {
  if (pre.resize === undefined) return { rw: pre.width, rh: pre.height, left: 0, top: 0 };
  const s = pre.resize;
  // torchvision: the shorter side becomes s, the longer int(s * long / short).
  const [rw, rh] = srcW <= srcH ? [s, Math.max(s, Math.floor((s * srcH) / srcW))] : [Math.max(s, Math.floor((s * srcW) / srcH)), s];
  return { rw, rh, left: Math.round((rw - pre.width) / 2), top: Math.round((rh - pre.height) / 2) };
}

/**
 * Decode, resize/crop, and normalise an image into a [1, 3, height, width] FP32 tensor.
 * 415 for an unsupported declared type, a body that is not that format, or an
 * undecodable/corrupt image; 413 for images over `maxPixels`.
 */
export async function preprocessImage(bytes: Buffer, contentType: string, pre: Preprocessing, opts: PreprocessOptions = {}): Promise<FloatTensor> {
  const declared = mediaType(contentType);
  const expected = ACCEPTED[declared];
  if (!expected) {
    throw unsupportedMediaType(`unsupported content type ${JSON.stringify(declared || contentType)}; images must be one of ${ACCEPTED_IMAGE_TYPES.join(', ')}`, {
      code: 'unsupported_image_type',
      details: { accepted: [...ACCEPTED_IMAGE_TYPES] },
    });
  }
  if (bytes.length === 0) throw unsupportedMediaType(`empty body; expected ${declared} image data`, { code: 'invalid_image' });

  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { failOn: 'error', limitInputPixels: false }).metadata();
  } catch (e) {
    throw unsupportedMediaType(`cannot decode body as ${declared}: ${(e as Error).message}`, { code: 'invalid_image', cause: e });
  }
  if (meta.format !== expected) {
    throw unsupportedMediaType(`content type is ${declared} but the body is ${meta.format ? `a ${meta.format} image` : 'not a recognised image'}`, {
      code: 'image_type_mismatch',
      details: { declared, actual: meta.format ?? null },
    });
  }
  const { width: w, height: h } = meta;
  if (!w || !h) throw unsupportedMediaType(`${declared} image has no dimensions`, { code: 'invalid_image' });
  if (w * h > maxPixels) {
    throw payloadTooLarge(`image is ${w}x${h} = ${w * h} pixels, over the limit of ${maxPixels}`, { code: 'image_too_large' });
  }
  // EXIF orientation swaps width/height for 5..8.
  const [ow, oh] = (meta.orientation ?? 1) >= 5 ? [h, w] : [w, h];
  const { rw, rh, left, top } = resizePlan(ow, oh, pre);

  let data: Buffer;
  let info: OutputInfo;
  try {
    let img = sharp(bytes, { failOn: 'error', limitInputPixels: maxPixels, autoOrient: true })
      .resize(rw, rh, { fit: 'fill', kernel: 'linear' });
    if (pre.resize !== undefined) img = img.extract({ left, top, width: pre.width, height: pre.height });
    ({ data, info } = await img.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw unsupportedMediaType(`cannot decode body as ${declared}: ${(e as Error).message}`, { code: 'invalid_image', cause: e });
  }
  if (info.channels !== 3 || info.width !== pre.width || info.height !== pre.height || data.length !== pre.width * pre.height * 3) {
    throw new Error(`image pipeline produced ${info.width}x${info.height}x${info.channels}, expected ${pre.width}x${pre.height}x3`);
  }
  return { dims: [1, 3, pre.height, pre.width], data: normalizeHwcToChw(data, pre.width, pre.height, pre.mean, pre.std) };
}

/** One pass over interleaved RGB bytes → planar float32 `(p/255 - mean[c]) / std[c]`. */
export function normalizeHwcToChw(rgb: Uint8Array, width: number, height: number, mean: readonly number[], std: readonly number[]): Float32Array {
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  const s0 = 1 / (255 * std[0]!), s1 = 1 / (255 * std[1]!), s2 = 1 / (255 * std[2]!);
  const o0 = mean[0]! / std[0]!, o1 = mean[1]! / std[1]!, o2 = mean[2]! / std[2]!;
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[i] = rgb[p]! * s0 - o0;
    out[plane + i] = rgb[p + 1]! * s1 - o1;
    out[2 * plane + i] = rgb[p + 2]! * s2 - o2;
  }
  return out;
}
