/**
 * What the Function Compute code package is made of: the entry points, the native packages and
 * how they are shipped, the `nodejs20` runtime a binary must fit, the code-size limits, and the
 * shape of the parts a package report lists.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EM_X86_64 } from './elf.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** FC resource key → entry point. The bundle is `<key>.js`, so the FC handler is `<key>.handler`. */
export const FUNCTION_ENTRIES = {
  handler: 'functions/handler.ts',
  master: 'functions/master.ts',
  worker: 'functions/worker.ts',
} as const;
export type FunctionKey = keyof typeof FUNCTION_ENTRIES;

/** Native addons: never bundled, shipped with their `.node`/`.so` files in node_modules. */
export const NATIVE_PACKAGES = ['onnxruntime-node', 'sharp'] as const;

/**
 * Optional requires inside bundled libraries that are neither bundled nor shipped: urllib (under
 * ali-oss) loads `proxy-agent` only when an HTTP proxy is configured, which FC functions do not use.
 */
export const UNSHIPPED_OPTIONAL = ['proxy-agent'] as const;

/**
 * Packages that bundled code loads with a computed `require(name)`, invisible to esbuild:
 * protobufjs (under onnx-proto) looks `long` up at run time to decode int64 as Long. Shipping it
 * keeps the packaged functions decoding exactly as they do from the repository. (Requires
 * through `createRequire(import.meta.url)` in our own sources are found automatically.)
 */
export const DYNAMIC_REQUIRES = [{ name: 'long', requiredBy: 'protobufjs' }] as const;

/** Declared dependencies used only by a package's install script (onnxruntime-node's CUDA download). */
export const INSTALL_ONLY_DEPENDENCIES: Record<string, readonly string[]> = {
  'onnxruntime-node': ['adm-zip', 'global-agent'],
};

/**
 * The `nodejs20` runtime: Debian 10 on x86_64, glibc 2.28, GCC 8's libstdc++ (GLIBCXX_3.4.25,
 * CXXABI_1.3.11). Every shipped binary must need no newer symbol version than these.
 */
export const FC_NODEJS20 = {
  machine: EM_X86_64,
  maxVersions: { GLIBC: [2, 28], GLIBCXX: [3, 4, 25], CXXABI: [1, 3, 11] } as Record<string, number[]>,
  systemLibraries: [
    'libc.so.6', 'libm.so.6', 'libdl.so.2', 'librt.so.1', 'libpthread.so.0', 'libresolv.so.2',
    'ld-linux-x86-64.so.2', 'libstdc++.so.6', 'libgcc_s.so.1',
  ],
};

export const MiB = 1024 * 1024;

/**
 * FC 3.0 code-package limits (Alibaba Cloud, "Limits", FC 3.0): a code zip uploaded through the
 * console, a developer tool (Serverless Devs) or OSS may be 500 MB; through the SDK/OpenAPI, as
 * base64 in the request body, 100 MB (the API reports it as 104857600 bytes). No unzipped limit
 * is documented there; 512 MiB is our own budget (FC's default disk size), so that a package that
 * grows by accident fails here rather than at deploy time.
 */
export const FC_LIMITS = {
  codeZipViaOss: 500 * MiB,
  codeZipViaApiBase64: 100 * MiB,
  unzippedBudget: 512 * MiB,
};

export interface BundleInfo { key: FunctionKey; file: string; bytes: number }
export interface ShippedPackage { name: string; version: string; source: string; files: number; bytes: number }
export interface DroppedFile { path: string; bytes: number; reason: string }
export interface NativeFile { path: string; needed: string[]; maxVersions: Record<string, string> }
export interface LimitCheck { what: string; bytes: number; limit: number; ok: boolean }
