/**
 * The package's node_modules: the native packages the bundles leave external (onnxruntime-node,
 * sharp), linux-x64 glibc only, and their runtime JS dependencies.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { readElf } from './elf.ts';
import { listFiles } from './zip.ts';
import { INSTALL_ONLY_DEPENDENCIES, MiB, type ShippedPackage, type DroppedFile } from './package-layout.ts';

const execFileP = promisify(execFile);

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

export interface PackageJson { name: string; version: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }

export async function readPackageJson(dir: string): Promise<PackageJson> {
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

export async function dirSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const f of await listFiles(dir)) {
    files++;
    bytes += (await stat(join(dir, f))).size;
  }
  return { files, bytes };
}

export async function readHead(path: string, n: number): Promise<Buffer> {
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
