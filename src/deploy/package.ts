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
 */
import { execFile } from 'node:child_process';
import { cp, lstat, mkdir, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { compareVersions, EM_X86_64, isElf, parseSymbolVersion, readElf } from './elf.ts';
import { listFiles, zipDirectory, type ZipSummary } from './zip.ts';

const execFileP = promisify(execFile);

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

// ---------------------------------------------------------------------------------------------
// 1. Bundles

const packageName = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);

export const esbuildCommon = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: false,
  legalComments: 'none',
  metafile: true,
  logLevel: 'silent',
  // CJS has no import.meta: give modules that read import.meta.url the bundle's own URL.
  define: { 'import.meta.url': '__bundle_import_meta_url' },
  banner: { js: 'var __bundle_import_meta_url = require("url").pathToFileURL(__filename).href;' },
} as const;

/** A package that the bundles load at run time by name, found where `fromDir` would find it. */
export interface RuntimeRequire { name: string; fromDir: string; via: string }

/**
 * Requires that esbuild cannot follow: `createRequire(import.meta.url)` in our own sources
 * (`const r = createRequire(...); r('pkg')`), and the known computed requires of bundled
 * libraries (DYNAMIC_REQUIRES), when those libraries are in the bundles.
 */
export async function findRuntimeRequires(root: string, inputs: string[]): Promise<RuntimeRequire[]> {
  const out = new Map<string, RuntimeRequire>();
  for (const input of inputs) {
    const abs = resolve(root, input);
    if (abs.split(sep).includes('node_modules')) continue;
    const text = await readFile(abs, 'utf8');
    if (!text.includes('createRequire')) continue;
    const fns = [...text.matchAll(/\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*createRequire\(/g)].map((m) => m[1]);
    const calls = [
      ...text.matchAll(/createRequire\([^)]*\)\(\s*['"]([^'"]+)['"]\s*\)/g),
      ...fns.flatMap((f) => [...text.matchAll(new RegExp(`(?<![\\w$.])${f.replace(/\$/g, '\\$')}\\(\\s*['"]([^'"]+)['"]\\s*\\)`, 'g'))]),
    ];
    for (const m of calls) {
      const name = packageName(m[1]);
      if (!isBuiltin(name) && !m[1].startsWith('.')) out.set(name, { name, fromDir: dirname(abs), via: input });
    }
  }
  for (const d of DYNAMIC_REQUIRES) {
    const lib = inputs.find((i) => i.split(/[\\/]/).join('/').includes(`node_modules/${d.requiredBy}/`));
    if (lib && !out.has(d.name)) {
      const libDir = resolve(root, lib.slice(0, lib.indexOf(`node_modules/${d.requiredBy}/`) + `node_modules/${d.requiredBy}`.length));
      out.set(d.name, { name: d.name, fromDir: libDir, via: d.requiredBy });
    }
  }
  return [...out.values()].sort((x, y) => x.name.localeCompare(y.name));
}

function requiresIn(text: string): string[] {
  return [...text.matchAll(/\brequire\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]);
}

export async function bundleFunctions(root: string, codeDir: string, opts: { minify?: boolean } = {}): Promise<{ bundles: BundleInfo[]; warnings: string[]; requires: string[]; runtimeRequires: RuntimeRequire[] }> {
  const result = await build({
    ...esbuildCommon,
    absWorkingDir: root,
    entryPoints: { ...FUNCTION_ENTRIES },
    outdir: codeDir,
    external: [...NATIVE_PACKAGES, ...UNSHIPPED_OPTIONAL],
    minify: opts.minify ?? false,
  });
  const bundles: BundleInfo[] = [];
  const requires = new Set<string>();
  for (const key of Object.keys(FUNCTION_ENTRIES) as FunctionKey[]) {
    const file = join(codeDir, `${key}.js`);
    const text = await readFile(file, 'utf8');
    bundles.push({ key, file, bytes: Buffer.byteLength(text) });
    for (const r of requiresIn(text)) requires.add(r);
  }
  const runtimeRequires = await findRuntimeRequires(root, Object.keys(result.metafile.inputs));
  const warnings = result.warnings.map((w) => `${w.location ? `${w.location.file}:${w.location.line}: ` : ''}${w.text}`);
  return { bundles, warnings, requires: [...requires], runtimeRequires };
}

/**
 * Pure-JS packages loaded at run time by name are shipped as one-file bundles
 * (`node_modules/<name>/index.js`): their dependency trees are deep and nested (ali-oss has
 * conflicting versions of the same package), which a bundle flattens for free.
 */
export async function bundleRuntimePackages(root: string, nodeModules: string, reqs: RuntimeRequire[], opts: { minify?: boolean } = {}): Promise<{ packages: ShippedPackage[]; requires: string[]; warnings: string[] }> {
  const packages: ShippedPackage[] = [];
  const requires: string[] = [];
  const warnings: string[] = [];
  for (const r of reqs) {
    if ((NATIVE_PACKAGES as readonly string[]).includes(r.name)) continue;
    const dir = resolvePackageDir(r.name, r.fromDir, root);
    if (!dir) throw new Error(`${r.name} (required at run time by ${r.via}) is not installed`);
    const pj = await readPackageJson(dir);
    const target = join(nodeModules, ...r.name.split('/'));
    const res = await build({
      ...esbuildCommon,
      absWorkingDir: root,
      stdin: { contents: `module.exports = require(${JSON.stringify(r.name)});`, resolveDir: r.fromDir, sourcefile: `${r.name}-entry.js` },
      outfile: join(target, 'index.js'),
      external: [...NATIVE_PACKAGES, ...UNSHIPPED_OPTIONAL],
      minify: opts.minify ?? false,
    });
    warnings.push(...res.warnings.map((w) => `${r.name}: ${w.text}`));
    await writeFile(join(target, 'package.json'), `${JSON.stringify({ name: r.name, version: pj.version, main: 'index.js', description: `${r.name}@${pj.version} and its dependencies, bundled by npm run package (required at run time by ${r.via})` }, null, 1)}\n`);
    for (const f of await readdir(dir)) if (/^(licen[cs]e|copying|notice)/i.test(f)) await cp(join(dir, f), join(target, f), { dereference: true });
    requires.push(...requiresIn(await readFile(join(target, 'index.js'), 'utf8')));
    packages.push({ name: r.name, version: pj.version, source: `${dir} (bundled)`, ...(await dirSize(target)) });
  }
  return { packages, requires, warnings };
}

// ---------------------------------------------------------------------------------------------
// 2. node_modules

/** Node's lookup of `name` from package folder `fromDir`, never leaving `boundary`. */
export function resolvePackageDir(name: string, fromDir: string, boundary: string): string | undefined {
  const stop = resolve(boundary);
  let dir = resolve(fromDir);
  for (;;) {
    if (basename(dir) !== 'node_modules') {
      const candidate = join(dir, 'node_modules', name);
      if (existsSync(join(candidate, 'package.json'))) return candidate;
    }
    if (dir === stop || !dir.startsWith(stop + sep)) return undefined;
    dir = dirname(dir);
  }
}

interface PackageJson { name: string; version: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }

async function readPackageJson(dir: string): Promise<PackageJson> {
  return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/**
 * The runtime dependency closure of `roots`, flattened: `dependencies` (minus install-only ones)
 * must resolve; `optionalDependencies` are taken where installed (sharp's platform packages,
 * installed for linux-x64-glibc only). Two versions of one name cannot be flattened: error.
 */
export async function collectPackages(roots: { name: string; fromDir: string; boundary: string }[]): Promise<Map<string, { dir: string; version: string }>> {
  const found = new Map<string, { dir: string; version: string }>();
  const queue = roots.map((r) => ({ ...r, optional: false, requiredBy: '(root)' }));
  while (queue.length) {
    const q = queue.shift()!;
    const dir = resolvePackageDir(q.name, q.fromDir, q.boundary);
    if (!dir) {
      if (q.optional) continue;
      throw new Error(`cannot find package ${q.name} (required by ${q.requiredBy}) under ${q.boundary}`);
    }
    const pj = await readPackageJson(dir);
    const prev = found.get(q.name);
    if (prev) {
      if (prev.version !== pj.version) throw new Error(`two versions of ${q.name} are needed (${prev.version} at ${prev.dir}, ${pj.version} at ${dir}): a flat node_modules cannot hold both`);
      continue;
    }
    found.set(q.name, { dir, version: pj.version });
    const skip = new Set(INSTALL_ONLY_DEPENDENCIES[q.name] ?? []);
    for (const d of Object.keys(pj.dependencies ?? {})) if (!skip.has(d)) queue.push({ name: d, fromDir: dir, boundary: q.boundary, optional: false, requiredBy: q.name });
    for (const d of Object.keys(pj.optionalDependencies ?? {})) queue.push({ name: d, fromDir: dir, boundary: q.boundary, optional: true, requiredBy: q.name });
  }
  return found;
}

/** Files never needed at run time: type declarations, TypeScript/C++ sources, source maps, docs. */
export function isRuntimeIrrelevant(path: string): boolean {
  const b = basename(path);
  if (/^(licen[cs]e|copying|notice)/i.test(b)) return false;
  return /\.(d\.[cm]?ts|[cm]?ts|map|md|markdown|cc|cpp|c|h|hpp|gyp|gypi)$/i.test(b);
}

async function dirSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const f of await listFiles(dir)) {
    files++;
    bytes += (await stat(join(dir, f))).size;
  }
  return { files, bytes };
}

async function readHead(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * onnxruntime-node ships every platform's binaries. Keep, per `bin/napi-v*\/linux/x64/`, the
 * `.node` addon and the libraries it loads (DT_NEEDED, transitively), under the exact names it
 * loads them by, dereferenced: Linux builds carry the library twice (`libonnxruntime.so.1` and
 * `libonnxruntime.so.1.x.y`, or one a symlink to the other), and symlinks do not survive a zip.
 */
export async function selectOrtBinaries(pkgDir: string): Promise<{ keep: string[]; dropped: DroppedFile[] }> {
  const binDir = join(pkgDir, 'bin');
  const all = await listFilesFollowing(binDir);
  const linuxDirs = [...new Set(all.filter((f) => /^napi-v\d+\/linux\/x64\/[^/]+$/.test(f)).map((f) => dirname(f)))];
  if (!linuxDirs.length) throw new Error(`${pkgDir}: no bin/napi-v*/linux/x64 binaries (onnxruntime-node ${JSON.stringify(all.slice(0, 5))}...)`);
  const keep = new Set<string>();
  for (const d of linuxDirs) {
    const names = new Set(all.filter((f) => dirname(f) === d).map((f) => basename(f)));
    const queue = [...names].filter((n) => n.endsWith('.node'));
    if (!queue.length) throw new Error(`${join(binDir, d)}: no .node addon`);
    while (queue.length) {
      const n = queue.shift()!;
      const rel = `${d}/${n}`;
      if (keep.has(rel)) continue;
      keep.add(rel);
      const info = readElf(await readFile(join(binDir, rel)), rel);
      for (const lib of info.needed) if (names.has(lib)) queue.push(lib);
    }
  }
  const dropped: DroppedFile[] = [];
  for (const f of all) {
    if (keep.has(f)) continue;
    const bytes = (await stat(join(binDir, f))).size;
    const sameDir = linuxDirs.includes(dirname(f));
    dropped.push({ path: `onnxruntime-node/bin/${f}`, bytes, reason: sameDir ? 'not loaded by the addon (duplicate or optional provider)' : 'other platform' });
  }
  return { keep: [...keep].sort(), dropped };
}

/** Like listFiles, but symlinks to files count as files (npm tarballs may carry them). */
async function listFilesFollowing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = e.isSymbolicLink() ? await stat(p) : undefined;
      if (e.isDirectory() || st?.isDirectory()) await walk(p);
      else if (e.isFile() || st?.isFile()) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  await walk(dir);
  return out.sort();
}

function npmEnv(): NodeJS.ProcessEnv {
  // `npm run package` exports its own config as npm_config_*; the staging install must not
  // inherit the project's prefix or workspace settings.
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^npm_config_(prefix|local_prefix|global|location|workspaces?|include_workspace_root|os|cpu|libc|omit|include|save.*|package_lock.*)$/i.test(k)) delete env[k];
  }
  return env;
}

async function runNpm(args: string[], cwd: string): Promise<string> {
  const npmCli = process.env.npm_execpath;
  const [cmd, argv] = npmCli && /npm-cli\.c?js$/.test(npmCli) ? [process.execPath, [npmCli, ...args]] : ['npm', args];
  try {
    const { stdout, stderr } = await execFileP(cmd, argv, { cwd, env: npmEnv(), maxBuffer: 16 * MiB, shell: process.platform === 'win32' && cmd === 'npm' });
    return `${stdout}${stderr}`;
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

/**
 * Installs `sharp@<version>` for linux/x64/glibc into `staging` (npm picks the
 * `@img/sharp-linux-x64` and `@img/sharp-libvips-linux-x64` optional packages for that platform,
 * whatever the build machine is). Scripts are not run: sharp needs none, its binaries come in
 * the platform packages.
 */
export async function stageLinuxSharp(version: string, staging: string): Promise<void> {
  await mkdir(staging, { recursive: true });
  await writeFile(join(staging, 'package.json'), JSON.stringify({ name: 'fc-package-staging', private: true }));
  await runNpm(['install', '--os=linux', '--cpu=x64', '--libc=glibc', '--ignore-scripts', '--no-audit', '--no-fund', '--omit=dev', '--omit=peer', '--no-save', '--prefix', staging, `sharp@${version}`], staging);
}

export async function buildNodeModules(root: string, dest: string, staging: string, log: (l: string) => void = () => {}): Promise<{ packages: ShippedPackage[]; dropped: DroppedFile[] }> {
  const installed = async (name: string) => {
    const dir = resolvePackageDir(name, root, root);
    if (!dir) throw new Error(`${name} is not installed in ${root}/node_modules: run npm ci first`);
    return { dir, version: (await readPackageJson(dir)).version };
  };
  const ort = await installed('onnxruntime-node');
  const sharp = await installed('sharp');
  log(`staging sharp@${sharp.version} for linux-x64-glibc (npm install --os=linux --cpu=x64 --libc=glibc)`);
  await stageLinuxSharp(sharp.version, staging);

  const roots = [
    // onnxruntime-node's npm package carries every platform's binaries: take it from the repository.
    { name: 'onnxruntime-node', fromDir: root, boundary: root },
    { name: 'sharp', fromDir: staging, boundary: staging },
  ];
  const found = await collectPackages(roots);
  if (found.get('onnxruntime-node')!.version !== ort.version) throw new Error('onnxruntime-node resolved to an unexpected copy');
  for (const p of ['@img/sharp-linux-x64', '@img/sharp-libvips-linux-x64']) {
    if (!found.has(p)) throw new Error(`the staging install has no ${p}: cannot ship sharp for linux-x64`);
  }

  await mkdir(dest, { recursive: true });
  const packages: ShippedPackage[] = [];
  const dropped: DroppedFile[] = [];
  for (const [name, { dir, version }] of [...found].sort(([a], [b]) => a.localeCompare(b))) {
    const target = join(dest, ...name.split('/'));
    const isOrt = name === 'onnxruntime-node';
    await cp(dir, target, {
      recursive: true,
      dereference: true,
      filter: (src) => {
        const rel = relative(dir, src);
        if (rel === '') return true;
        const top = rel.split(sep)[0];
        if (top === 'node_modules') return false; // nested copies: the flat closure has them
        if (isOrt && top === 'bin') return false; // selected below
        return !isRuntimeIrrelevant(src);
      },
    });
    if (isOrt) {
      const sel = await selectOrtBinaries(dir);
      for (const f of sel.keep) {
        await mkdir(dirname(join(target, 'bin', f)), { recursive: true });
        await cp(join(dir, 'bin', f), join(target, 'bin', f), { dereference: true });
      }
      dropped.push(...sel.dropped);
    }
    const size = await dirSize(target);
    packages.push({ name, version, source: dir, ...size });
  }
  return { packages, dropped };
}

// ---------------------------------------------------------------------------------------------
// 3. Checks

/**
 * Every ELF file in the package: x86-64, each needed library either a Debian 10 system library
 * (with symbol versions no newer than glibc 2.28 / GCC 8) or present in the package where the
 * file's RUNPATH/RPATH ($ORIGIN-relative) points. This is the `ldd` check, done statically.
 */
export async function checkNativeFiles(codeDir: string): Promise<{ natives: NativeFile[]; problems: string[] }> {
  const natives: NativeFile[] = [];
  const problems: string[] = [];
  for (const rel of await listFiles(codeDir)) {
    const abs = join(codeDir, rel);
    if (!isElf(await readHead(abs, 4))) continue;
    let info;
    try {
      info = readElf(await readFile(abs), rel);
    } catch (e) {
      problems.push(`${rel}: ${(e as Error).message}`);
      continue;
    }
    if (info.machine !== FC_NODEJS20.machine) {
      problems.push(`${rel}: machine ${info.machine}, not x86-64: the package must carry linux-x64 binaries`);
      continue;
    }
    const origin = dirname(abs);
    const dirs = info.searchPath.map((p) => resolve(p.replace(/\$\{?ORIGIN\}?/g, origin)));
    for (const lib of info.needed) {
      if (FC_NODEJS20.systemLibraries.includes(lib)) continue;
      const hit = dirs.find((d) => (d === codeDir || d.startsWith(codeDir + sep)) && existsSync(join(d, lib)));
      if (!hit) problems.push(`${rel} needs ${lib}, which is neither a system library nor found in the package (search path: ${info.searchPath.join(':') || 'none'})`);
    }
    const maxVersions: Record<string, string> = {};
    for (const [lib, versions] of Object.entries(info.versionNeeds)) {
      if (!FC_NODEJS20.systemLibraries.includes(lib)) continue;
      for (const v of versions) {
        const p = parseSymbolVersion(v);
        if (!p || !(p.family in FC_NODEJS20.maxVersions)) continue;
        const cur = maxVersions[p.family] ? parseSymbolVersion(maxVersions[p.family])!.version : undefined;
        if (!cur || compareVersions(p.version, cur) > 0) maxVersions[p.family] = v;
        if (compareVersions(p.version, FC_NODEJS20.maxVersions[p.family]) > 0) {
          problems.push(`${rel} needs ${v} from ${lib}; FC's nodejs20 runtime (Debian 10) has ${p.family}_${FC_NODEJS20.maxVersions[p.family].join('.')}`);
        }
      }
    }
    natives.push({ path: rel, needed: info.needed, maxVersions });
  }
  return { natives, problems };
}

export function checkLimits(code: ZipSummary): LimitCheck[] {
  const base64 = 4 * Math.ceil(code.zippedBytes / 3);
  return [
    { what: 'code zip, via OSS / Serverless Devs', bytes: code.zippedBytes, limit: FC_LIMITS.codeZipViaOss, ok: code.zippedBytes <= FC_LIMITS.codeZipViaOss },
    { what: 'code zip, via API (base64)', bytes: base64, limit: FC_LIMITS.codeZipViaApiBase64, ok: base64 <= FC_LIMITS.codeZipViaApiBase64 },
    { what: 'code unzipped (our budget)', bytes: code.unzippedBytes, limit: FC_LIMITS.unzippedBudget, ok: code.unzippedBytes <= FC_LIMITS.unzippedBudget },
  ];
}

// ---------------------------------------------------------------------------------------------
// 4. All of it

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
