import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { buildMobilenetV2 } from './mobilenet.ts';
import { buildResnet18, type ModelOpts } from './resnet.ts';
import { buildVgg16 } from './vgg.ts';

export { buildResnet18, buildVgg16, buildMobilenetV2 };
export type { ModelOpts };

export const ARCHS = ['resnet18', 'vgg16', 'mobilenetv2'] as const;
export type Arch = (typeof ARCHS)[number];

export function isArch(s: string): s is Arch {
  return (ARCHS as readonly string[]).includes(s);
}

/** Build a reference model; deterministic (byte-identical) for given options. */
export function buildModel(arch: Arch, opts: ModelOpts = {}): Uint8Array {
  switch (arch) {
    case 'resnet18':
      return buildResnet18(opts);
    case 'vgg16':
      return buildVgg16(opts);
    case 'mobilenetv2':
      return buildMobilenetV2(opts);
    default:
      throw new Error(`unknown arch ${String(arch)}; expected one of ${ARCHS.join(', ')}`);
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Write model bytes atomically (temp file + rename), creating parent dirs. */
export async function writeModelFile(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

/**
 * Ensure a model file exists at `path`, generating it with default options
 * (seed 0, opset 13, 1000 classes) if missing. Returns `path`.
 */
export async function ensureModel(arch: Arch, path: string, opts: ModelOpts = {}): Promise<string> {
  if (!existsSync(path)) await writeModelFile(path, buildModel(arch, opts));
  return path;
}
