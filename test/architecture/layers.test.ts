/**
 * The dependency rule (issue 12): layers point one way, and modules stay small.
 *
 * Reads every module under src/ and functions/, takes its imports (static, re-exports and dynamic
 * `import()`, through TypeScript's own pre-processor, so comments and strings are not mistaken for
 * imports) and checks four rules:
 * - core: the pure core (plan, tiling, graph, onnx, planner, tensor, cost, billing) imports no runtime,
 *   serving, HTTP, adapter, emulator or benchmark code, and no native or cloud package;
 * - serve-http: src/serve does not import src/http (publishing must not load sharp, and the HTTP
 *   layer maps serve's errors, not the other way round);
 * - ort: onnxruntime-node is imported only by src/runtime/ort.ts;
 * - size: no module is over 500 lines.
 *
 * Today's violations are listed in ALLOWED below, one named debt each. A new violation fails the
 * test; so does an entry that no longer matches anything (the debt is paid: delete the entry).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAX_LINES = 500;

const CORE = ['src/plan', 'src/tiling', 'src/graph', 'src/onnx', 'src/planner', 'src/tensor', 'src/cost', 'src/billing'];
const ABOVE_CORE = [
  'src/runtime', 'src/serve', 'src/http', 'src/invoke', 'src/store', 'src/exchange', 'src/emulators',
  'src/bench', 'src/deploy', 'src/telemetry', 'src/vision', 'src/compose', 'src/calibrate',
];
const PACKAGES_BANNED_FROM_CORE = [/^onnxruntime-node$/, /^sharp$/, /^ali-oss$/, /^@alicloud\//];

type Rule = 'core' | 'serve-http' | 'ort' | 'size';

interface Violation {
  rule: Rule;
  /** The importing module (or, for size, the module itself), relative to the repository. */
  from: string;
  /** What it imports (a module path or a package name); absent for size. */
  to?: string;
}

/**
 * Known debts, as of the issue-12 audit. Each names the rule, the edge and why it is still there.
 * Delete an entry when its debt is paid (the test says so); never add one for new code.
 */
const ALLOWED: Array<Violation & { why: string }> = [];

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...walk(rel));
    else if (/\.(ts|mts|cts)$/.test(e.name)) out.push(rel);
  }
  return out;
}

const under = (file: string, dir: string) => file === dir || file.startsWith(`${dir}/`);

/** A relative specifier resolved to a repository path; a bare one (a package) is returned as is. */
function target(from: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  return relative(ROOT, resolve(ROOT, dirname(from), specifier)).split('\\').join('/');
}

/** The package a bare specifier names (`@scope/name/sub` -> `@scope/name`). */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

interface Module { file: string; lines: number; imports: string[] }

function readModules(): Module[] {
  return [...walk('src'), ...walk('functions')].sort().map((file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const info = ts.preProcessFile(text, true, true);
    const lines = text.endsWith('\n') ? text.split('\n').length - 1 : text.split('\n').length;
    return { file, lines, imports: [...new Set(info.importedFiles.map((f) => target(file, f.fileName)))] };
  });
}

function violations(modules: Module[]): Violation[] {
  const found: Violation[] = [];
  for (const m of modules) {
    if (m.lines > MAX_LINES) found.push({ rule: 'size', from: m.file });
    for (const to of m.imports) {
      const bare = !to.startsWith('src/') && !to.startsWith('functions/') && !to.startsWith('node:') && !to.startsWith('..');
      if (CORE.some((d) => under(m.file, d))) {
        if (ABOVE_CORE.some((d) => under(to, d))) found.push({ rule: 'core', from: m.file, to });
        if (bare && PACKAGES_BANNED_FROM_CORE.some((re) => re.test(packageName(to)))) found.push({ rule: 'core', from: m.file, to });
      }
      if (under(m.file, 'src/serve') && under(to, 'src/http')) found.push({ rule: 'serve-http', from: m.file, to });
      if (bare && packageName(to) === 'onnxruntime-node' && m.file !== 'src/runtime/ort.ts') found.push({ rule: 'ort', from: m.file, to });
    }
  }
  return found;
}

const key = (v: Violation) => `${v.rule}: ${v.from}${v.to === undefined ? '' : ` -> ${v.to}`}`;

describe('architecture: the dependency rule', () => {
  const modules = readModules();
  const found = violations(modules);
  const allowed = new Set(ALLOWED.map(key));

  it('reads the import graph (sanity: the parser sees imports)', () => {
    assert.ok(modules.length > 50, `only ${modules.length} modules under src/ and functions/`);
    const ort = modules.find((m) => m.file === 'src/runtime/ort.ts');
    assert.ok(ort?.imports.includes('onnxruntime-node'), 'src/runtime/ort.ts should import onnxruntime-node');
  });

  it('catches each kind of violation (synthetic modules)', () => {
    const synthetic: Module[] = [
      { file: 'src/plan/x.ts', lines: 10, imports: ['src/serve/cost.ts', 'src/plan/schema.ts', '@alicloud/fc20230330', 'zod', 'node:fs'] },
      { file: 'src/tiling/y.ts', lines: 10, imports: ['sharp', 'onnxruntime-node'] },
      { file: 'src/serve/z.ts', lines: 501, imports: ['src/http/oip.ts', 'src/store/store.ts'] },
      { file: 'src/runtime/ort.ts', lines: 10, imports: ['onnxruntime-node'] },
      { file: 'functions/worker.ts', lines: 10, imports: ['onnxruntime-node/dist/x.js'] },
    ];
    assert.deepEqual(violations(synthetic).map(key), [
      'core: src/plan/x.ts -> src/serve/cost.ts',
      'core: src/plan/x.ts -> @alicloud/fc20230330',
      'core: src/tiling/y.ts -> sharp',
      'core: src/tiling/y.ts -> onnxruntime-node',
      'ort: src/tiling/y.ts -> onnxruntime-node',
      'size: src/serve/z.ts',
      'serve-http: src/serve/z.ts -> src/http/oip.ts',
      'ort: functions/worker.ts -> onnxruntime-node/dist/x.js',
    ]);
  });

  it('has no violation outside the allowlist', () => {
    const fresh = found.filter((v) => !allowed.has(key(v))).map(key);
    assert.deepEqual(fresh, [], `new dependency-rule violations (fix them; the allowlist is for the audited debts only):\n  ${fresh.join('\n  ')}`);
  });

  it('lists only debts that are still owed', () => {
    const current = new Set(found.map(key));
    const paid = ALLOWED.filter((v) => !current.has(key(v))).map(key);
    assert.deepEqual(paid, [], `these allowlist entries match nothing any more; delete them from ALLOWED in test/architecture/layers.test.ts:\n  ${paid.join('\n  ')}`);
  });

  it('lists each debt once', () => {
    const keys = ALLOWED.map(key);
    assert.deepEqual(keys.filter((k, i) => keys.indexOf(k) !== i), []);
  });
});
