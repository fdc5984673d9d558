/**
 * Builds the Function Compute code package (`npm run package`):
 *
 *   dist/code/{handler,master,worker}.js   esbuild bundles (CJS, node20), one per entry point
 *   dist/code/package.json                 {"type":"commonjs"}
 *   dist/code/node_modules/                the native packages the bundles leave external
 *                                          (onnxruntime-node, sharp), linux-x64 glibc only,
 *                                          plus their runtime JS dependencies, and one-file
 *                                          bundles of packages loaded by a computed name
 *   dist/code.zip                          the same folder, zipped (sizes are checked on it)
 *
 * No FC layer: the whole package is ~75 MiB unzipped / ~27 MiB zipped, far below the code limits,
 * and one self-contained folder deploys with `s deploy` alone, with no layer ARN to publish and
 * keep in step with the code (docs/deploy.md has the reasoning and the figures).
 *
 * This module runs the steps and reports; the parts are in package-layout.ts (what ships),
 * esbuild-bundles.ts, node-modules.ts and native-checks.ts.
 */
import { lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { listFiles, zipDirectory, type ZipSummary } from './zip.ts';
import { bundleFunctions, bundleRuntimePackages, packageName, type RuntimeRequire } from './esbuild-bundles.ts';
import { checkLimits, checkNativeFiles } from './native-checks.ts';
import { buildNodeModules } from './node-modules.ts';
import {
  FUNCTION_ENTRIES, MiB, NATIVE_PACKAGES, REPO_ROOT, type BundleInfo, type DroppedFile, type LimitCheck, type NativeFile, type ShippedPackage,
} from './package-layout.ts';

// src/compose/stack.ts imports these from here; re-exported until it imports package-layout.ts itself.
export { FUNCTION_ENTRIES, type FunctionKey } from './package-layout.ts';

export interface PackageReport {
  codeDir: string;
  codeZip: string;
  bundles: BundleInfo[];
  packages: ShippedPackage[];
  dropped: DroppedFile[];
  natives: NativeFile[];
  /** Packages the bundles load by a name esbuild cannot see (shipped as one-file bundles). */
  runtimeRequires: RuntimeRequire[];
  /** Non-builtin requires left in the bundles, beyond the shipped packages (optional, in try/catch). */
  unresolvedRequires: string[];
  warnings: string[];
  code: ZipSummary;
  limits: LimitCheck[];
  problems: string[];
  ok: boolean;
  ms: number;
}

export interface PackageOptions {
  /** Repository root (package.json, functions/, node_modules/). */
  root?: string;
  /** Output folder; `code/` and `code.zip` inside it are replaced. Default `<root>/dist`. */
  outDir?: string;
  minify?: boolean;
  log?: (line: string) => void;
}

export async function packageFunctions(opts: PackageOptions = {}): Promise<PackageReport> {
  const t0 = performance.now();
  const root = resolve(opts.root ?? REPO_ROOT);
  const outDir = resolve(opts.outDir ?? join(root, 'dist'));
  const log0 = opts.log ?? (() => {});
  const log = (l: string) => log0(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${l}`);
  const codeDir = join(outDir, 'code');
  const codeZip = join(outDir, 'code.zip');
  await rm(codeDir, { recursive: true, force: true });
  await rm(codeZip, { force: true });
  await mkdir(codeDir, { recursive: true });

  log(`bundling ${Object.values(FUNCTION_ENTRIES).join(', ')} with esbuild (cjs, node20${opts.minify ? ', minified' : ''})`);
  const b = await bundleFunctions(root, codeDir, { minify: opts.minify });
  await writeFile(join(codeDir, 'package.json'), `${JSON.stringify({ name: 'fc-tiled-cnn-functions', private: true, type: 'commonjs' }, null, 1)}\n`);

  const nodeModules = join(codeDir, 'node_modules');
  const staging = await mkdtemp(join(tmpdir(), 'fc-package-'));
  let nm: Awaited<ReturnType<typeof buildNodeModules>>;
  try {
    nm = await buildNodeModules(root, nodeModules, staging, log);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  for (const r of b.runtimeRequires) {
    if (nm.packages.some((p) => p.name === r.name) && !(NATIVE_PACKAGES as readonly string[]).includes(r.name)) {
      throw new Error(`${r.name} is both a runtime require (${r.via}) and a dependency of a native package`);
    }
  }
  if (b.runtimeRequires.length) log(`bundling packages required at run time: ${b.runtimeRequires.map((r) => `${r.name} (by ${r.via})`).join(', ')}`);
  const rt = await bundleRuntimePackages(root, nodeModules, b.runtimeRequires, { minify: opts.minify });
  const packages = [...nm.packages, ...rt.packages].sort((x, y) => x.name.localeCompare(y.name));
  const shipped = new Set(packages.map((p) => p.name));
  const unresolvedRequires = [...new Set([...b.requires, ...rt.requires])]
    .filter((r) => !isBuiltin(r) && !shipped.has(packageName(r)))
    .sort();

  const { natives, problems } = await checkNativeFiles(codeDir);
  for (const f of await listFiles(codeDir)) {
    if ((await lstat(join(codeDir, f))).isSymbolicLink()) problems.push(`${f}: symlink in the package`);
  }
  log('zipping dist/code with yazl');
  const code = await zipDirectory(codeDir, codeZip);
  const limits = checkLimits(code);
  for (const l of limits) if (!l.ok) problems.push(`${l.what}: ${fmtMiB(l.bytes)} exceeds ${fmtMiB(l.limit)}`);
  return {
    codeDir, codeZip, bundles: b.bundles, packages, dropped: nm.dropped, natives,
    runtimeRequires: b.runtimeRequires, unresolvedRequires, warnings: [...b.warnings, ...rt.warnings], code, limits, problems, ok: problems.length === 0,
    ms: performance.now() - t0,
  };
}

export const fmtMiB = (n: number) => `${(n / MiB).toFixed(n < 10 * MiB ? 2 : 1)} MiB`;

export function formatReport(r: PackageReport, cwd = process.cwd()): string[] {
  const rel = (p: string) => relative(cwd, p) || '.';
  const lines: string[] = [];
  lines.push(`bundles (${rel(r.codeDir)}):`);
  for (const b of r.bundles) lines.push(`  ${basename(b.file).padEnd(38)} ${fmtMiB(b.bytes).padStart(10)}   handler: ${b.key}.handler`);
  lines.push('node_modules (linux-x64, glibc):');
  for (const p of r.packages) lines.push(`  ${`${p.name}@${p.version}`.padEnd(38)} ${fmtMiB(p.bytes).padStart(10)}   ${p.files} files`);
  const droppedBytes = r.dropped.reduce((a, d) => a + d.bytes, 0);
  if (r.dropped.length) {
    lines.push(`  dropped from onnxruntime-node/bin: ${r.dropped.length} files, ${fmtMiB(droppedBytes)}`);
    for (const d of r.dropped.filter((x) => x.reason !== 'other platform')) lines.push(`    ${d.path} (${fmtMiB(d.bytes)}): ${d.reason}`);
  }
  lines.push('native files (all x86-64; needs within Debian 10):');
  for (const n of r.natives) lines.push(`  ${n.path}  needs ${n.needed.join(', ')}  [${Object.values(n.maxVersions).join(', ')}]`);
  if (r.unresolvedRequires.length) lines.push(`require() names esbuild left unresolved (optional, inside try/catch; not shipped): ${r.unresolvedRequires.join(', ')}`);
  for (const w of r.warnings) lines.push(`esbuild warning: ${w}`);
  lines.push(`code package: ${r.code.files} files, unzipped ${fmtMiB(r.code.unzippedBytes)}, zipped ${fmtMiB(r.code.zippedBytes)} (${rel(r.codeZip)})`);
  lines.push('layer: none (node_modules ship inside the code package)');
  lines.push('FC limits:');
  for (const l of r.limits) lines.push(`  ${l.what.padEnd(38)} ${fmtMiB(l.bytes).padStart(10)} of ${fmtMiB(l.limit).padStart(9)}  ${l.ok ? 'ok' : 'EXCEEDED'}`);
  for (const p of r.problems) lines.push(`problem: ${p}`);
  lines.push(`${r.ok ? 'ok' : 'FAILED'} in ${(r.ms / 1000).toFixed(1)} s`);
  return lines;
}

