import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';
import { esbuildCommon } from './esbuild-bundles.ts';
import { FUNCTION_ENTRIES, NATIVE_PACKAGES, UNSHIPPED_OPTIONAL, type FunctionKey } from './package-layout.ts';

export interface LocalBundles {
  /** One instance bundle per function: the pool's instance runner and the function together. */
  entries: Record<FunctionKey, string>;
  remove(): Promise<void>;
}

/**
 * Bundles the functions as `npm run package` does (esbuild, CJS, natives external), so local
 * instances start as fast as deployed ones: loading TypeScript through tsx costs seconds per
 * instance. Each bundle also holds the instance runner, so the runner and the function share
 * one copy of every class (errors crossing between them keep `instanceof`). The output sits
 * under node_modules/.cache, where the external natives resolve from the project's
 * node_modules; each build gets its own folder (test files build concurrently).
 */
export async function buildLocalBundles(root: string): Promise<LocalBundles> {
  const base = join(root, 'node_modules/.cache/fc-tiled-cnn');
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, 'functions-'));
  // The project is "type": "module"; these bundles are CommonJS.
  await writeFile(join(dir, 'package.json'), '{"type":"commonjs"}\n');
  const keys = Object.keys(FUNCTION_ENTRIES) as FunctionKey[];
  for (const k of keys) {
    await writeFile(join(dir, `${k}-instance.ts`), [
      `import { runInstance } from ${JSON.stringify(join(root, 'src/invoke/instance-runner.ts'))};`,
      `void runInstance(() => import(${JSON.stringify(join(root, FUNCTION_ENTRIES[k]))}));`,
      '',
    ].join('\n'));
  }
  await build({
    ...esbuildCommon,
    metafile: false,
    absWorkingDir: root,
    entryPoints: Object.fromEntries(keys.map((k) => [k, join(dir, `${k}-instance.ts`)])),
    outdir: dir,
    external: [...NATIVE_PACKAGES, ...UNSHIPPED_OPTIONAL],
  });
  const entries = Object.fromEntries(keys.map((k) => [k, join(dir, `${k}.js`)])) as Record<FunctionKey, string>;
  return { entries, remove: () => rm(dir, { recursive: true, force: true }) };
}

let shared: Promise<LocalBundles> | undefined;

/** One build per process, removed when the process exits: every stack a process starts shares it. */
export function sharedLocalBundles(root: string): Promise<LocalBundles> {
  shared ??= buildLocalBundles(root).then((b) => {
    process.once('exit', () => rmSync(dirname(b.entries.handler), { recursive: true, force: true }));
    return b;
  });
  return shared;
}
