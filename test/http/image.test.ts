import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { HttpError } from '../../src/http/errors.ts';
import { normalizeHwcToChw, preprocessImage, resizePlan } from '../../src/http/image.ts';
import { IMAGENET_MEAN, IMAGENET_PREPROCESSING, IMAGENET_STD, preprocessingSchema } from '../../src/serve/model-entry.ts';

const solid = (w: number, h: number, rgb: [number, number, number], alpha?: number) =>
  sharp({ create: { width: w, height: h, channels: alpha === undefined ? 3 : 4, background: { r: rgb[0], g: rgb[1], b: rgb[2], alpha: alpha ?? 1 } } });

/** w x h image: left half `left`, right half `right` (raw RGB built by hand). */
async function halves(w: number, h: number, left: [number, number, number], right: [number, number, number]) {
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) raw.set(x < w / 2 ? left : right, (y * w + x) * 3);
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } });
}

/** Pixel (c, y, x) of an NCHW [1,3,H,W] tensor. */
const at = (t: { dims: number[]; data: Float32Array }, c: number, y: number, x: number) => t.data[(c * t.dims[2]! + y) * t.dims[3]! + x]!;
const norm = (p: number, c: number) => (p / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;

async function assert415(p: Promise<unknown>, re: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HttpError, String(e));
    assert.equal(e.status, 415, e.message);
    assert.match(e.message, re);
    return true;
  });
}

describe('preprocessingSchema', () => {
  it('defaults to ImageNet: 224x224, resize 256, mean/std', () => {
    assert.deepEqual(preprocessingSchema.parse({}), { width: 224, height: 224, resize: 256, mean: IMAGENET_MEAN, std: IMAGENET_STD });
    assert.deepEqual(IMAGENET_PREPROCESSING.resize, 256);
  });
  it('resize: null selects direct resize; bad configs are rejected', () => {
    assert.equal(preprocessingSchema.parse({ width: 32, height: 16, resize: null }).resize, undefined);
    assert.equal(preprocessingSchema.parse({ width: 112, height: 112 }).resize, 128);
    assert.throws(() => preprocessingSchema.parse({ width: 224, height: 224, resize: 200 }), /center crop fits/);
    assert.throws(() => preprocessingSchema.parse({ std: [0.2, 0, 0.2] }));
    assert.throws(() => preprocessingSchema.parse({ mean: [0.5, 0.5] }));
  });
  it('plans torchvision Resize(int) + CenterCrop', () => {
    assert.deepEqual(resizePlan(512, 256, IMAGENET_PREPROCESSING), { rw: 512, rh: 256, left: 144, top: 16 });
    assert.deepEqual(resizePlan(300, 400, IMAGENET_PREPROCESSING), { rw: 256, rh: 341, left: 16, top: 59 });
  });
});

describe('preprocessImage', () => {
  it('PNG: NCHW [1,3,224,224] with hand-computed normalised pixels', async () => {
    const png = await solid(300, 200, [200, 100, 50]).png().toBuffer();
    const t = await preprocessImage(png, 'image/png', IMAGENET_PREPROCESSING);
    assert.deepEqual(t.dims, [1, 3, 224, 224]);
    assert.equal(t.data.length, 3 * 224 * 224);
    // (200/255 - 0.485) / 0.229 = 1.30704..., (100/255 - 0.456)/0.224 = -0.28501..., (50/255 - 0.406)/0.225 = -0.93298...
    assert.ok(Math.abs(at(t, 0, 0, 0) - 1.3070468) < 1e-5, String(at(t, 0, 0, 0)));
    assert.ok(Math.abs(at(t, 1, 100, 50) - -0.2850140) < 1e-5, String(at(t, 1, 100, 50)));
    assert.ok(Math.abs(at(t, 2, 223, 223) - -0.9329847) < 1e-5, String(at(t, 2, 223, 223)));
  });

  it('center-crops in the right place and lays out channels as planes', async () => {
    // 512x256: shorter side already 256 → crop x in [144, 368); the colour boundary (x=256) lands at crop column 112.
    const png = await (await halves(512, 256, [255, 0, 0], [0, 0, 255])).png().toBuffer();
    const t = await preprocessImage(png, 'image/png', IMAGENET_PREPROCESSING);
    for (const [x, want] of [[0, [255, 0, 0]], [100, [255, 0, 0]], [124, [0, 0, 255]], [223, [0, 0, 255]]] as const) {
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(at(t, c, 50, x) - norm(want[c]!, c)) < 1e-5, `x=${x} c=${c}: ${at(t, c, 50, x)}`);
    }
  });

  it('JPEG (lossy: close to the colour)', async () => {
    const jpg = await solid(640, 480, [30, 160, 220]).jpeg({ quality: 95 }).toBuffer();
    const t = await preprocessImage(jpg, 'image/jpeg', IMAGENET_PREPROCESSING);
    assert.deepEqual(t.dims, [1, 3, 224, 224]);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(at(t, c, 112, 112) - norm([30, 160, 220][c]!, c)) < 0.05);
  });

  it('WebP, direct resize (no crop), and custom mean/std', async () => {
    const webp = await solid(50, 80, [255, 0, 128]).webp({ lossless: true }).toBuffer();
    const pre = preprocessingSchema.parse({ width: 32, height: 16, resize: null, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    const t = await preprocessImage(webp, 'image/webp; charset=binary', pre);
    assert.deepEqual(t.dims, [1, 3, 16, 32]);
    assert.ok(Math.abs(at(t, 0, 3, 3) - 1) < 1e-6);
    assert.ok(Math.abs(at(t, 1, 3, 3) - -1) < 1e-6);
    assert.ok(Math.abs(at(t, 2, 15, 31) - (128 / 255 - 0.5) / 0.5) < 1e-6);
  });

  it('drops alpha and expands grayscale to RGB', async () => {
    const pre = preprocessingSchema.parse({ width: 8, height: 8, resize: null });
    const opaque = await preprocessImage(await solid(64, 64, [10, 20, 30], 1).png().toBuffer(), 'image/png', pre);
    assert.deepEqual(opaque.dims, [1, 3, 8, 8]);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(at(opaque, c, 4, 4) - norm([10, 20, 30][c]!, c)) < 1e-5);
    // Semi-transparent: colour kept (libvips resizes premultiplied, so allow one level of rounding), alpha dropped.
    const half = await preprocessImage(await solid(64, 64, [10, 20, 30], 0.5).png().toBuffer(), 'image/png', pre);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(at(half, c, 4, 4) - norm([10, 20, 30][c]!, c)) <= 1.01 / 255 / IMAGENET_STD[c]!);
    const gray = await sharp(Buffer.alloc(16 * 16, 77), { raw: { width: 16, height: 16, channels: 1 } }).png().toBuffer();
    const g = await preprocessImage(gray, 'image/png', pre);
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(at(g, c, 1, 1) - norm(77, c)) < 1e-5);
  });

  it('415 for text/plain, a missing type, and unsupported image types', async () => {
    const png = await solid(8, 8, [1, 2, 3]).png().toBuffer();
    await assert415(preprocessImage(png, 'text/plain', IMAGENET_PREPROCESSING), /unsupported content type "text\/plain"/);
    await assert415(preprocessImage(png, '', IMAGENET_PREPROCESSING), /unsupported content type/);
    await assert415(preprocessImage(png, 'image/gif', IMAGENET_PREPROCESSING), /image\/jpeg, image\/png, image\/webp/);
  });

  it('415 for corrupt, empty, truncated, or mislabelled bodies', async () => {
    await assert415(preprocessImage(Buffer.from('definitely not an image'), 'image/png', IMAGENET_PREPROCESSING), /cannot decode body as image\/png/);
    await assert415(preprocessImage(Buffer.alloc(0), 'image/jpeg', IMAGENET_PREPROCESSING), /empty body/);
    const jpg = await (await halves(256, 256, [255, 255, 0], [0, 255, 255])).jpeg().toBuffer();
    await assert415(preprocessImage(jpg.subarray(0, jpg.length >> 1), 'image/jpeg', IMAGENET_PREPROCESSING), /cannot decode body as image\/jpeg/);
    const png = await (await halves(256, 256, [255, 255, 0], [0, 255, 255])).png().toBuffer();
    await assert415(preprocessImage(png.subarray(0, png.length - 40), 'image/png', IMAGENET_PREPROCESSING), /cannot decode body as image\/png/);
    await assert415(preprocessImage(jpg, 'image/png', IMAGENET_PREPROCESSING), /content type is image\/png but the body is a jpeg image/);
  });

  it('413 for images over maxPixels', async () => {
    const png = await solid(100, 100, [1, 2, 3]).png().toBuffer();
    await assert.rejects(preprocessImage(png, 'image/png', IMAGENET_PREPROCESSING, { maxPixels: 5000 }), (e: unknown) => e instanceof HttpError && e.status === 413);
  });
});

describe('normalizeHwcToChw', () => {
  it('matches the formula element-wise', () => {
    const rgb = Uint8Array.from([0, 128, 255, 1, 2, 3]); // 2x1 image
    const out = normalizeHwcToChw(rgb, 2, 1, IMAGENET_MEAN, IMAGENET_STD);
    const want = [norm(0, 0), norm(1, 0), norm(128, 1), norm(2, 1), norm(255, 2), norm(3, 2)];
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(out[i]! - want[i]!) < 1e-6, `${i}: ${out[i]} vs ${want[i]}`);
  });
});
