import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import YAML from 'yaml';
import { loadConfig } from '../../src/config.ts';
import { configEnvKeys } from '../../src/deploy/env-keys.ts';
import { FUNCTION_ENTRIES, REPO_ROOT } from '../../src/deploy/package-layout.ts';
import { fc2HttpEvent, fc2HttpHandler, eventBody, parseFcHttpEvent, type Fc2HttpResponse } from '../../src/http/fc-event.ts';

// deploy/s-fc2.yaml (FC 2.0, component fc) against the code and against s.yaml (FC 3.0).
const read = (file: string) => YAML.parse(readFileSync(join(REPO_ROOT, file), 'utf8'), { merge: true }) as any;
const doc = read('deploy/s-fc2.yaml');
const fc3 = read('s.yaml');
const KEYS = ['handler', 'master', 'worker'] as const;

function resolve(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const whole = /^\$\{vars\.([\w.-]+)\}$/.exec(value);
  const lookup = (path: string) => path.split('.').reduce<any>((o, k) => (o == null ? undefined : o[k]), doc.vars);
  if (whole && typeof lookup(whole[1]) === 'object') return lookup(whole[1]);
  const out = value.replace(/\$\{vars\.([\w.-]+)\}/g, (_, path: string) => {
    const v = lookup(path);
    assert.ok(typeof v === 'string' || typeof v === 'number', `\${vars.${path}} is not defined`);
    return String(v);
  });
  assert.ok(!/\$\{/.test(out), `unsupported magic variable in ${value}`);
  return out;
}
const props = (k: string) => doc.services[k].props;
const fnProps = (k: string): Record<string, any> => Object.fromEntries(Object.entries(props(k).function).map(([p, v]) => [p, p === 'environmentVariables' ? v : resolve(v)]));
const envOf = (k: string): Record<string, string> => Object.fromEntries(Object.entries(props(k).function.environmentVariables ?? {}).map(([n, v]) => [n, resolve(v) as string]));
const fc3Env = (k: string): Record<string, string> => Object.fromEntries(Object.entries(fc3.resources[k].props.environmentVariables ?? {}).map(([n, v]) => [n, String(v).replace(/\$\{vars\.(\w+)\}/g, (_, p: string) => String(fc3.vars[p]))]));

describe('deploy/s-fc2.yaml', () => {
  it('is a Serverless Devs edition 1.0.0 project: three fc services in one FC 2.0 service, built by npm run package', () => {
    assert.equal(doc.edition, '1.0.0');
    assert.deepEqual(Object.keys(doc.services).sort(), [...KEYS].sort());
    const service = resolve(props('handler').service) as Record<string, unknown>;
    assert.equal(typeof service.name, 'string');
    assert.match(String(service.role), /^acs:ram::\d+:role\/[\w.-]+$/);
    for (const k of KEYS) {
      assert.equal(doc.services[k].component, 'fc', k);
      assert.equal(resolve(props(k).region), doc.vars.region, k);
      assert.deepEqual(resolve(props(k).service), service, `${k}: same service`);
      assert.equal(fnProps(k).runtime, 'nodejs20', k);
      assert.equal(fnProps(k).codeUri, './dist/code', k);
    }
    assert.deepEqual(doc.services.handler.actions['pre-deploy'].map((a: { run: string }) => a.run), ['npm run package']);
  });

  it('mirrors s.yaml: names, sizes, timeouts, environment (but INVOKER=fc2 and the service), trigger', () => {
    for (const k of KEYS) {
      const p2 = fnProps(k);
      const p3 = fc3.resources[k].props;
      assert.equal(p2.name, String(p3.functionName).replace(/\$\{vars\.(\w+)\}/, (_: string, v: string) => fc3.vars[v]), k);
      for (const f of ['cpu', 'memorySize', 'diskSize', 'timeout', 'instanceConcurrency']) assert.equal(p2[f], p3[f], `${k}.${f}`);
      const { INVOKER, FC2_SERVICE, ...rest } = envOf(k);
      assert.equal(INVOKER, 'fc2');
      assert.equal(FC2_SERVICE, (resolve(props(k).service) as { name: string }).name);
      const { INVOKER: i3, ...rest3 } = fc3Env(k);
      assert.equal(i3, 'fc');
      assert.deepEqual(rest, rest3, `${k}: environment as in s.yaml`);
    }
    const t = props('handler').triggers;
    assert.equal(t.length, 1);
    assert.equal(t[0].type, 'http');
    assert.equal(t[0].qualifier, 'LATEST');
    assert.equal(t[0].config.authType, fc3.resources.handler.props.triggers[0].triggerConfig.authType);
    assert.deepEqual([...t[0].config.methods].sort(), ['GET', 'POST']);
    for (const k of ['master', 'worker']) assert.equal(props(k).triggers, undefined, `${k} has no trigger`);
  });

  it('the config parses inside every function: INVOKER=fc2 in the deployed service, the deployed names and sizes', () => {
    const known = configEnvKeys();
    for (const k of KEYS) {
      for (const [name, value] of Object.entries(envOf(k))) {
        assert.ok(known.has(name), `${k}: ${name} is not read by loadConfig`);
        assert.ok(!/^FC_/.test(name) && !/^ALIBABA_CLOUD_/.test(name), `${k}: ${name} is reserved or a credential`);
        assert.equal(typeof value, 'string', `${k}: ${name}`);
      }
      const config = loadConfig(envOf(k));
      assert.equal(config.invoker, 'fc2');
      const service = (resolve(props(k).service) as { name: string }).name;
      assert.deepEqual(config.fc?.services, { handler: service, master: service, worker: service });
      for (const f of KEYS) {
        assert.equal(config.functions[f].name, fnProps(f).name, `${k}: ${f}`);
        assert.equal(config.functions[f].vcpu, fnProps(f).cpu, `${k}: ${f} vCPU`);
        assert.equal(config.functions[f].memoryMb, fnProps(f).memorySize, `${k}: ${f} memory`);
      }
    }
  });

  it('master and worker are event handlers of the bundles; the handler is the FC 2.0 HTTP entry', () => {
    for (const k of ['master', 'worker'] as const) {
      assert.equal(fnProps(k).handler, `${k}.handler`);
      assert.match(readFileSync(join(REPO_ROOT, FUNCTION_ENTRIES[k]), 'utf8'), /export\s+(async\s+)?function\s+handler\s*\(/);
    }
    assert.equal(fnProps('handler').handler, 'handler.httpHandler');
  });

  it('functions/handler.ts exports httpHandler', () => {
    assert.match(readFileSync(join(REPO_ROOT, FUNCTION_ENTRIES.handler), 'utf8'), /export\s+(const|async function|function)\s+httpHandler\b/);
  });
});

describe('FC 2.0 HTTP trigger adapter (src/http/fc-event.ts)', () => {
  const request = (body: Buffer, extra: Record<string, unknown> = {}) => Object.assign(Readable.from([body]), {
    method: 'post', path: '/v2/models/resnet18/infer', url: '/v2/models/resnet18/infer?x=1',
    headers: { 'content-type': 'application/octet-stream', 'x-multi': ['a', 'b'] }, queries: { x: '1', y: ['2', '3'] }, clientIP: '10.0.0.1', ...extra,
  });

  it('turns the request into the FC 3.0 event, bytes intact', () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const ev = fc2HttpEvent(request(bytes), bytes, 'req-1');
    assert.equal(ev.rawPath, '/v2/models/resnet18/infer');
    assert.equal(ev.requestContext.http.method, 'POST');
    assert.equal(ev.requestContext.http.sourceIp, '10.0.0.1');
    assert.equal(ev.requestContext.requestId, 'req-1');
    assert.deepEqual(ev.queryParameters, { x: '1', y: '2,3' });
    assert.equal(ev.headers['x-multi'], 'a,b');
    assert.deepEqual([...eventBody(ev)], [...bytes]);
    assert.throws(() => fc2HttpEvent({ path: '/' }, bytes, 'r'), /method/);
  });

  it('runs an FC 3.0 event handler and answers through resp', async () => {
    const sent: { status?: number; headers: Record<string, string>; body?: Buffer } = { headers: {} };
    const resp: Fc2HttpResponse = {
      setStatusCode: (c) => { sent.status = c; },
      setHeader: (k, v) => { sent.headers[k] = v; },
      send: (b) => { sent.body = Buffer.from(b); },
    };
    const wrapped = fc2HttpHandler(async (event: Buffer, ctx: { requestId: string }) => {
      const ev = parseFcHttpEvent(event);
      return JSON.stringify({ statusCode: 201, headers: { 'x-req': ctx.requestId }, body: eventBody(ev).reverse().toString('base64'), isBase64Encoded: true });
    });
    await wrapped(request(Buffer.from([1, 2, 3])), resp, { requestId: 'abc' });
    assert.equal(sent.status, 201);
    assert.equal(sent.headers['x-req'], 'abc');
    assert.deepEqual([...sent.body!], [3, 2, 1]);
    // A handler that throws still answers, with the JSON error of errorResult.
    await fc2HttpHandler(async () => { throw new Error('boom'); })(request(Buffer.alloc(0)), resp, { requestId: 'x' });
    assert.equal(sent.status, 500);
    assert.equal(JSON.parse(sent.body!.toString()).code, 'internal');
  });
});
