/** The esbuild bundles of the function entry points, and one-file bundles of packages required by a computed name. */
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { dirname, join, resolve, sep } from 'node:path';
import { build } from 'esbuild';
import { dirSize, readPackageJson, resolvePackageDir } from './node-modules.ts';
import {
  DYNAMIC_REQUIRES, FUNCTION_ENTRIES, NATIVE_PACKAGES, UNSHIPPED_OPTIONAL, type BundleInfo, type FunctionKey, type ShippedPackage,
} from './package-layout.ts';

export const packageName = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);

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
