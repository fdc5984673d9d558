/**
 * Text detection over HTTP: an image body is prepared as PaddleOCR prepares it (own size, sides
 * rounded to a multiple of 32, scaled down only past the side limit), the probability map comes
 * back from the backend, and DB post-processing turns it into boxes in the original image's
 * pixels. The response's OIP outputs are `boxes` (FP32 [N,4,2], corners clockwise from the
 * top left, x then y) and `scores` (FP32 [N]); `?probability_map=true` adds the map itself as
 * `probability_map` (FP32 [1,1,H,W], at the model input's resolution) in the binary extension
 * (inference-header-content-length): a 4096x4096 map is 64 MB, more than a function may return.
 */
import type { FloatTensor } from '../runtime/ort.ts';
import { detInput } from '../vision/ppocr.ts';
import { textBoxes } from '../vision/db.ts';
import { badRequest, HttpError, payloadTooLarge, unsupportedMediaType } from './errors.ts';
import { mediaType, type FcHttpEvent } from './fc-event.ts';
import { ACCEPTED_IMAGE_TYPES } from './image.ts';
import type { ResponseOutput } from './oip.ts';
import { encodeInferResponse } from './oip-response.ts';
import type { TextDetection } from '../serve/model-entry.ts';


const MAX_PIXELS = 40_000_000;

/** The model input for an image body, and the image's own size (what boxes are given in). */
export async function detectionInput(body: Buffer, contentType: string, td: TextDetection): Promise<{ tensor: FloatTensor; image: { width: number; height: number } }> {
  const declared = mediaType(contentType);
  if (!(ACCEPTED_IMAGE_TYPES as readonly string[]).includes(declared === 'image/jpg' ? 'image/jpeg' : declared)) {
    throw unsupportedMediaType(`unsupported content type ${JSON.stringify(declared)}; images must be one of ${ACCEPTED_IMAGE_TYPES.join(', ')}`, { code: 'unsupported_image_type' });
  }
  if (!body.length) throw unsupportedMediaType(`empty body; expected ${declared} image data`, { code: 'invalid_image' });
  try {
    return await detInput(body, td.preprocessing, { maxPixels: MAX_PIXELS });
  } catch (e) {
    if (e instanceof HttpError) throw e;
    const msg = (e as Error).message;
    if (/pixel limit/i.test(msg)) throw payloadTooLarge(`image is over the limit of ${MAX_PIXELS} pixels`, { code: 'image_too_large' });
    throw unsupportedMediaType(`cannot decode body as ${declared}: ${msg}`, { code: 'invalid_image', cause: e });
  }
}

/** Whether the client asked for the probability map (`?probability_map=true|1`). */
export function wantsProbabilityMap(event: FcHttpEvent): boolean {
  const raw = event.queryParameters?.probability_map;
  if (raw === undefined) return false;
  if (!/^(true|false|1|0)$/.test(raw)) throw badRequest(`query parameter probability_map must be true or false, got ${JSON.stringify(raw)}`, { code: 'invalid_parameter' });
  return raw === 'true' || raw === '1';
}

/** The OIP response for one image: boxes, scores, and the map if asked for. */
export async function detectionResponse(
  model: { name: string; textDetection?: TextDetection }, requestId: string, map: FloatTensor,
  image: { width: number; height: number }, opts: { probabilityMap: boolean; parameters?: Record<string, unknown> },
): Promise<{ headers: Record<string, string>; body: Buffer; binary: boolean }> {
  const [, , h, w] = map.dims;
  const boxes = await textBoxes(map.data.subarray(0, h * w), h, w, image, model.textDetection?.db ?? {});
  const outputs: ResponseOutput[] = [
    { name: 'boxes', shape: [boxes.length, 4, 2], datatype: 'FP32', data: Float32Array.from(boxes.flatMap((b) => b.points.flat())) },
    { name: 'scores', shape: [boxes.length], datatype: 'FP32', data: Float32Array.from(boxes.map((b) => b.score)) },
  ];
  if (opts.probabilityMap) outputs.push({ name: 'probability_map', shape: [1, 1, h, w], datatype: 'FP32', data: map.data.subarray(0, h * w) });
  const enc = encodeInferResponse({
    model_name: model.name, id: requestId,
    parameters: { image: image, input: [h, w], ...(opts.parameters ?? {}) },
    outputs,
  }, { binary: opts.probabilityMap ? new Set(['probability_map']) : false });
  // The map travels in the binary extension: as JSON numbers it would be ~4x larger.
  return { headers: enc.headers, body: enc.body, binary: enc.binary };
}

/** RGB planes to BGR, for models trained on images read by OpenCV. */
export function toBgr(t: FloatTensor): FloatTensor {
  const [n, c, h, w] = t.dims;
  if (c !== 3) return t;
  const out = new Float32Array(t.data.length);
  const plane = h * w;
  for (let b = 0; b < n; b++) {
    const o = b * 3 * plane;
    out.set(t.data.subarray(o + 2 * plane, o + 3 * plane), o);
    out.set(t.data.subarray(o + plane, o + 2 * plane), o + plane);
    out.set(t.data.subarray(o, o + plane), o + 2 * plane);
  }
  return { dims: t.dims, data: out };
}
