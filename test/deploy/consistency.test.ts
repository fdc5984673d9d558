import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { loadConfig } from '../../src/config.ts';
import { configEnvKeys } from '../../src/deploy/env-keys.ts';
import { FUNCTION_ENTRIES, REPO_ROOT } from '../../src/deploy/package-layout.ts';

// s.yaml against the code: what FC will run must be what the code expects.
const raw = readFileSync(join(REPO_ROOT, 's.yaml'), 'utf8');
// Serverless Devs reads s.yaml with js-yaml, which applies YAML merge keys (<<); so do we.
const doc = YAML.parse(raw, { merge: true }) as {
  edition: string;
  vars: Record<string, any>;
  actions?: Record<string, { run: string; path?: string }[]>;
  resources: Record<string, { component: string; props: Record<string, any> }>;
};
const KEYS = ['handler', 'master', 'worker'] as const;

/** Resolves `${vars.a.b}` the way Serverless Devs does; any other magic variable is an error here. */
function resolve(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const out = value.replace(/\$\{vars\.([\w.-]+)\}/g, (_, path: string) => {
    const v = path.split('.').reduce<any>((o, k) => (o == null ? undefined : o[k]), doc.vars);
    assert.ok(typeof v === 'string' || typeof v === 'number', `\${vars.${path}} is not defined`);
    return String(v);
  });
  assert.ok(!/\$\{/.test(out), `unsupported magic variable in ${value}`);
  return out;
}
const props = (k: string) => Object.fromEntries(Object.entries(doc.resources[k].props).map(([p, v]) => [p, p === 'environmentVariables' || p === 'triggers' ? v : resolve(v)]));
const envOf = (k: string): Record<string, string> => Object.fromEntries(Object.entries(doc.resources[k].props.environmentVariables ?? {}).map(([n, v]) => [n, resolve(v) as string]));

/** FC: vCPU 0.05..16 in steps of 0.05, memory 128..32768 MB in steps of 64, vCPU:GB between 1:1 and 1:4. */
function checkResources(what: string, cpu: number, memoryMb: number) {
  assert.ok(cpu >= 0.05 && cpu <= 16 && Math.abs(cpu / 0.05 - Math.round(cpu / 0.05)) < 1e-9, `${what}: cpu ${cpu}`);
  assert.ok(memoryMb >= 128 && memoryMb <= 32768 && memoryMb % 64 === 0, `${what}: memory ${memoryMb}`);
  const gbPerVcpu = memoryMb / 1024 / cpu;
  assert.ok(gbPerVcpu >= 1 && gbPerVcpu <= 4, `${what}: ${cpu} vCPU / ${memoryMb} MB is 1:${gbPerVcpu.toFixed(2)}, outside 1:1..1:4`);
}

describe('s.yaml', () => {
  it('is a Serverless Devs 3 project of three fc3 resources on nodejs20, built by npm run package', () => {
    assert.equal(doc.edition, '3.0.0');
    assert.deepEqual(Object.keys(doc.resources).sort(), [...KEYS].sort());
    for (const k of KEYS) {
      const p = props(k);
      assert.equal(doc.resources[k].component, 'fc3', k);
      assert.equal(p.runtime, 'nodejs20', k);
      assert.equal(p.code, './dist/code', k);
      assert.equal(p.region, doc.vars.region, k);
      assert.equal(p.role, doc.vars.role, k);
      assert.match(String(p.role), /^acs:ram::\d+:role\/[\w.-]+$/, k);
      assert.equal(typeof p.internetAccess, 'boolean', k);
    }
    assert.deepEqual(doc.actions?.['pre-deploy']?.map((a) => a.run), ['npm run package']);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
    assert.ok(pkg.scripts.package && pkg.scripts['upload-plan']);
  });

  it('each handler is a bundle the packager builds, exporting handler()', () => {
    for (const k of KEYS) {
      const [file, fn, ...rest] = String(props(k).handler).split('.');
      assert.equal(rest.length, 0);
      assert.equal(fn, 'handler');
      assert.equal(file, k, 'bundle named after the resource');
      const entry = FUNCTION_ENTRIES[file as keyof typeof FUNCTION_ENTRIES];
      assert.ok(entry, `${file}.js is not built by npm run package`);
      const src = readFileSync(join(REPO_ROOT, entry), 'utf8');
      assert.match(src, /export\s+(async\s+)?function\s+handler\s*\(/, entry);
    }
  });

  it('sets only variables the config schema knows, never FC-reserved or credential ones, and the same for all', () => {
    const known = configEnvKeys();
    for (const k of KEYS) {
      for (const [name, value] of Object.entries(doc.resources[k].props.environmentVariables ?? {})) {
        assert.ok(known.has(name), `${k}: ${name} is not read by loadConfig (src/config.ts)`);
        assert.ok(!/^FC_/.test(name), `${k}: FC_* variables are reserved by FC`);
        assert.ok(!/^ALIBABA_CLOUD_/.test(name), `${k}: credentials come from the role, not s.yaml`);
        assert.equal(typeof value, 'string', `${k}: ${name} must be a string`);
      }
    }
    assert.deepEqual(envOf('master'), envOf('handler'));
    assert.deepEqual(envOf('worker'), envOf('handler'));
    assert.doesNotMatch(raw, /LTAI[0-9A-Za-z]{8,}|AccessKey(Id|Secret)\s*:|SECURITY_TOKEN\s*:/i, 'no secrets in s.yaml');
  });

  it('the config parses inside every function and names the deployed functions and sizes', () => {
    for (const k of KEYS) {
      // FC sets FC_REGION / FC_ACCOUNT_ID itself; the config must not need them.
      const config = loadConfig(envOf(k));
      assert.equal(config.store, 'oss');
      assert.equal(config.invoker, 'fc');
      for (const f of KEYS) {
        const p = props(f);
        assert.equal(config.functions[f].name, p.functionName, `${k}: ${f.toUpperCase()}_FUNCTION`);
        assert.equal(config.functions[f].vcpu, p.cpu, `${k}: ${f.toUpperCase()}_VCPU`);
        assert.equal(config.functions[f].memoryMb, p.memorySize, `${k}: ${f.toUpperCase()}_MEMORY_MB`);
      }
    }
    const names = KEYS.map((k) => props(k).functionName);
    assert.equal(new Set(names).size, 3);
  });

  it('vCPU:memory is valid for every function and every worker preset (the paper\'s)', () => {
    for (const k of KEYS) checkResources(k, props(k).cpu, props(k).memorySize);
    const presets = doc.vars.workerPresets;
    assert.deepEqual(presets.small, { cpu: 0.35, memorySize: 512 });
    assert.deepEqual(presets.large, { cpu: 1.5, memorySize: 4096 });
    for (const name of ['small', 'large']) {
      checkResources(`preset ${name}`, presets[name].cpu, presets[name].memorySize);
      const env = presets[`${name}-env`];
      assert.equal(Number(env.WORKER_VCPU), presets[name].cpu, name);
      assert.equal(Number(env.WORKER_MEMORY_MB), presets[name].memorySize, name);
      loadConfig({ ...envOf('worker'), ...env }); // sizes accepted by the config's own check
    }
    const w = props('worker');
    assert.ok(['small', 'large'].some((n) => presets[n].cpu === w.cpu && presets[n].memorySize === w.memorySize), 'the worker uses a preset');
    assert.equal(w.instanceConcurrency, 1, 'one tile per worker instance');
  });

  it('timeouts: every callee outlives the invoke timeout, every caller outlives its wait', () => {
    const invokeMs = Number(envOf('handler').FUNCTION_TIMEOUT_MS);
    assert.ok(invokeMs > 0);
    for (const k of ['master', 'worker']) assert.ok(props(k).timeout * 1000 >= invokeMs, `${k} timeout`);
    for (const k of ['handler', 'master']) assert.ok(props(k).timeout * 1000 > invokeMs, `${k} waits up to FUNCTION_TIMEOUT_MS`);
    assert.ok(props('handler').timeout >= props('master').timeout);
  });

  it('has an HTTP trigger on the handler only', () => {
    const triggers = doc.resources.handler.props.triggers as any[];
    assert.equal(triggers.length, 1);
    const t = triggers[0];
    assert.equal(t.triggerType, 'http');
    assert.equal(t.qualifier, 'LATEST');
    assert.ok(['anonymous', 'function'].includes(t.triggerConfig.authType));
    assert.deepEqual([...t.triggerConfig.methods].sort(), ['GET', 'POST']);
    for (const k of ['master', 'worker']) assert.equal(doc.resources[k].props.triggers, undefined, `${k} has no trigger`);
  });
});

describe('deploy/ram-policy.json and deploy/oss-lifecycle.json', () => {
  const policy = JSON.parse(readFileSync(join(REPO_ROOT, 'deploy/ram-policy.json'), 'utf8')) as { Version: string; Statement: { Effect: string; Action: string[]; Resource: string[]; Condition?: any }[] };

  it('the role may read artifacts, read/write/delete request data, and invoke the master and workers only', () => {
    assert.equal(policy.Version, '1');
    const allowed = new Set(['oss:GetObject', 'oss:PutObject', 'oss:DeleteObject', 'oss:ListObjects', 'fc:InvokeFunction']);
    for (const s of policy.Statement) {
      assert.equal(s.Effect, 'Allow');
      for (const a of s.Action) assert.ok(allowed.has(a), a);
      for (const r of s.Resource) assert.ok(!/:\*$|^\*$/.test(r) || /^acs:oss:\*:<account-id>:<bucket>/.test(r), `too broad: ${r}`);
    }
    const on = (action: string) => policy.Statement.filter((s) => s.Action.includes(action)).flatMap((s) => s.Resource);
    assert.deepEqual(on('oss:PutObject'), ['acs:oss:*:<account-id>:<bucket>/requests/*']);
    assert.deepEqual(on('oss:DeleteObject'), ['acs:oss:*:<account-id>:<bucket>/requests/*']);
    assert.deepEqual(on('oss:GetObject').sort(), ['acs:oss:*:<account-id>:<bucket>/artifacts/*', 'acs:oss:*:<account-id>:<bucket>/requests/*']);
    const list = policy.Statement.find((s) => s.Action.includes('oss:ListObjects'))!;
    assert.deepEqual(list.Condition.StringLike['oss:Prefix'].sort(), ['artifacts/*', 'requests/*']);
    const invoked = on('fc:InvokeFunction').map((r) => r.replace(/^acs:fc:<region>:<account-id>:functions\//, ''));
    assert.deepEqual(invoked.sort(), [doc.vars.masterFunction, doc.vars.workerFunction].sort(), 'the functions the handler and master invoke');
  });

  it('request objects expire after a day', () => {
    const lc = JSON.parse(readFileSync(join(REPO_ROOT, 'deploy/oss-lifecycle.json'), 'utf8'));
    const rule = lc.Rule.find((r: any) => r.Prefix === 'requests/');
    assert.ok(rule);
    assert.equal(rule.Status, 'Enabled');
    assert.ok(rule.Expiration.Days >= 1);
    assert.ok(!lc.Rule.some((r: any) => !r.Prefix || 'artifacts/'.startsWith(r.Prefix)), 'never expire artifacts');
    assert.ok(existsSync(join(REPO_ROOT, 'docs/deploy.md')));
  });
});
