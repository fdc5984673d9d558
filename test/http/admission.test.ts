import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Admission, REQUEST_TIMEOUT_HEADER, requestDeadline } from '../../src/http/admission.ts';
import { HttpError } from '../../src/http/errors.ts';
import { type FcHttpEvent, type FcHttpResult, resultBody } from '../../src/http/fc-event.ts';
import { type Gateway, startGateway } from '../../src/http/gateway.ts';
import { route } from '../../src/http/routes.ts';
import type { InferOptions, InferenceBackend, ModelEntry } from '../../src/serve/model-entry.ts';
import type { FloatTensor } from '../../src/runtime/ort.ts';
import { predictedMs } from '../../src/serve/backend.ts';
import type { Plan } from '../../src/plan/schema.ts';

/** A promise with its resolver: lets a test hold requests in flight. */
function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => { open = r; });
  return { p, open };
}

const is503 = (code: string) => (e: unknown) => e instanceof HttpError && e.status === 503 && e.code === code && Number(e.headers?.['retry-after']) >= 1;

describe('Admission', () => {
  it('runs at most maxInflight at once, queues maxQueue in order, refuses the rest with 503 + Retry-After', async () => {
    const a = new Admission({ maxInflight: 2, maxQueue: 2 });
    const g = gate();
    const order: number[] = [];
    let running = 0;
    let peak = 0;
    const job = (i: number) => a.run(async () => {
      running++;
      peak = Math.max(peak, running);
      order.push(i);
      await g.p;
      running--;
      return i;
    });
    const admitted = [0, 1, 2, 3].map(job);
    await sleep(10);
    assert.deepEqual(a.stats().inflight, 2);
    assert.deepEqual(a.stats().queued, 2);
    await assert.rejects(job(4), is503('overloaded'));
    g.open();
    assert.deepEqual(await Promise.all(admitted), [0, 1, 2, 3]);
    assert.deepEqual(order, [0, 1, 2, 3]);
    assert.equal(peak, 2);
    const s = a.stats();
    assert.equal(s.admitted, 4);
    assert.equal(s.rejectedFull, 1);
    assert.equal(s.inflight + s.queued, 0);
  });

  it('a failing job frees its slot', async () => {
    const a = new Admission({ maxInflight: 1, maxQueue: 0 });
    await assert.rejects(a.run(async () => { throw new Error('boom'); }), /boom/);
    assert.equal(await a.run(async () => 5), 5);
  });

  it('a queued request whose deadline passes gets 503 and leaves the queue', async () => {
    const a = new Admission({ maxInflight: 1, maxQueue: 4 });
    const g = gate();
    const first = a.run(() => g.p);
    const t0 = Date.now();
    await assert.rejects(a.run(async () => 1, Date.now() + 50), is503('deadline_unmeetable'));
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(a.stats().queued, 0);
    g.open();
    await first;
  });

  it('refuses at once what cannot finish in time going by recent service times; an idle instance always admits', async () => {
    const a = new Admission({ maxInflight: 1, maxQueue: 4 });
    await a.run(() => sleep(200));
    assert.ok(a.stats().serviceMs! >= 150);
    // Idle: admitted even with a deadline shorter than the estimate (the backend judges by the plan).
    assert.equal(await a.run(async () => 'ran', Date.now() + 10), 'ran');
    const g = gate();
    const busy = a.run(() => g.p);
    const t0 = Date.now();
    const err = await a.run(async () => 1, Date.now() + 100).catch((e: unknown) => e);
    assert.ok(is503('deadline_unmeetable')(err), String(err));
    assert.ok(Date.now() - t0 < 50, 'refused up front, not after waiting');
    assert.match((err as HttpError).message, /cannot finish within its deadline/);
    g.open();
    await busy;
  });
});

describe('requestDeadline', () => {
  it('takes the server timeout, or the client\'s shorter one; rejects malformed values', () => {
    assert.equal(requestDeadline(undefined, 5000, 1000), 6000);
    assert.equal(requestDeadline('250', 5000, 1000), 1250);
    assert.equal(requestDeadline('999999', 5000, 1000), 6000);
    for (const bad of ['0', '-5', '1.5', 'soon', '1e3', '9'.repeat(20)]) {
      assert.throws(() => requestDeadline(bad, 5000), (e: HttpError) => e.status === 400 && e.code === 'invalid_timeout', bad);
    }
  });
});

describe('predictedMs (the backend\'s up-front refusal)', () => {
  it('uses the plan\'s recorded prediction, scaled up to the batch; none without one', () => {
    const pred = { profile: 'local', objective: 'latency', vcpu: 1, workerMemoryMb: 1024, concurrency: 1, batch: 1, latencyMs: 800, workerPeakMb: 1, invocations: 1, storeRequests: 1, storeBytes: 1, computeUnits: 0, usdPer1000: 0 };
    assert.equal(predictedMs({ prediction: pred } as unknown as Plan, 1), 800);
    assert.equal(predictedMs({ prediction: pred } as unknown as Plan, 4), 3200);
    assert.equal(predictedMs({} as unknown as Plan, 4), undefined);
  });
});

/** TEST BACKEND (routing layer only): records the deadline it was given and waits on a gate. */
class GatedBackend implements InferenceBackend {
  deadlines: (number | undefined)[] = [];
  g = gate();
  async ready() { return true; }
  async infer(_m: ModelEntry, input: FloatTensor, _id: string, opts?: InferOptions) {
    this.deadlines.push(opts?.deadline);
    await this.g.p;
    return { output: { dims: [1, 1], data: Float32Array.of(input.data[0]!) }, cost: undefined };
  }
}
const models = new Map<string, ModelEntry>([['m', { name: 'm', inputName: 'input', inputShape: [1, 2], outputName: 'out', outputShape: [1, 1] }]]);
const inferBody = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [7, 8] }] });
function ev(headers: Record<string, string> = {}): FcHttpEvent {
  return {
    version: 'v1', rawPath: '/v2/models/m/infer', body: inferBody, isBase64Encoded: false, headers, queryParameters: {},
    requestContext: { http: { method: 'POST', path: '/v2/models/m/infer' }, requestId: 'r' },
  };
}
const json = (r: FcHttpResult) => JSON.parse(resultBody(r).toString('utf8'));

describe('routes with admission and deadlines', () => {
  it('passes the deadline to the backend and answers 503 JSON with Retry-After beyond the queue', async () => {
    const backend = new GatedBackend();
    const admission = new Admission({ maxInflight: 1, maxQueue: 1 });
    const errors: unknown[] = [];
    const deps = { models, backend, admission, requestTimeoutMs: 60_000, onError: (e: unknown) => errors.push(e) };
    const t0 = Date.now();
    const a = route(ev({ [REQUEST_TIMEOUT_HEADER]: '5000' }), deps);
    const b = route(ev(), deps);
    await sleep(10);
    const c = await route(ev(), deps);
    assert.equal(c.statusCode, 503);
    assert.equal(c.headers!['retry-after'], '1');
    assert.equal(json(c).code, 'overloaded');
    const bad = await route(ev({ [REQUEST_TIMEOUT_HEADER]: 'x' }), deps);
    assert.equal(bad.statusCode, 400);
    backend.g.open();
    assert.equal((await a).statusCode, 200);
    assert.equal((await b).statusCode, 200);
    const [da, db] = backend.deadlines as number[];
    assert.ok(da! >= t0 + 5000 && da! < t0 + 6000, 'the client\'s shorter deadline');
    assert.ok(db! >= t0 + 60_000 && db! < t0 + 61_000, 'the server\'s');
    assert.equal(errors.length, 0, 'refusals are not logged as failures');
  });
});

describe('gateway with admission', () => {
  let gw: Gateway;
  const backend = new GatedBackend();
  const seen: FcHttpEvent[] = [];
  before(async () => {
    gw = await startGateway({
      maxBodyBytes: 1 << 20, admission: new Admission({ maxInflight: 2, maxQueue: 1 }), requestTimeoutMs: 30_000,
      invoke: (e) => { seen.push(e); return route(e, { models, backend }); },
    });
  });
  after(() => gw.close());

  it('holds 2 + 1, refuses the 4th with 503 JSON + Retry-After; metadata is not queued; the deadline travels in the event', async () => {
    const post = (h: Record<string, string> = {}) => fetch(`${gw.url}/v2/models/m/infer`, { method: 'POST', body: inferBody, headers: h });
    const held = [post({ [REQUEST_TIMEOUT_HEADER]: '10000' }), post(), post()];
    await sleep(100);
    const r = await post();
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
    assert.match(r.headers.get('content-type')!, /application\/json/);
    assert.equal((await r.json()).code, 'overloaded');
    assert.equal((await fetch(`${gw.url}/v2/models/m`)).status, 200, 'metadata passes while inference is full');
    backend.g.open();
    for (const h of await Promise.all(held)) assert.equal(h.status, 200);
    const timeouts = seen.filter((e) => e.rawPath.endsWith('/infer')).map((e) => Number(e.headers[REQUEST_TIMEOUT_HEADER]));
    assert.equal(timeouts.length, 3);
    assert.ok(timeouts[0]! <= 10_000 && timeouts[0]! > 9_000, String(timeouts[0]));
    assert.ok(timeouts.slice(1).every((t) => t <= 30_000 && t > 29_000), String(timeouts));
  });
});

describe('under overload: admitted requests keep their latency (a serial 20 ms test backend behind the gateway)', () => {
  /** Closed-loop clients for `ms`; refused ones wait their Retry-After (jittered). p50/p99 of the answered requests. */
  async function overload(admission: Admission | undefined, clients: number, ms: number) {
    let tail = Promise.resolve();
    // TEST BACKEND: one request at a time, 20 ms each (the capacity the queue builds up in front of).
    const serial: InferenceBackend = {
      ready: async () => true,
      infer: async (_m, x) => {
        const mine = tail.then(() => sleep(20));
        tail = mine;
        await mine;
        return { output: { dims: [1, 1], data: Float32Array.of(x.data[0]!) }, cost: undefined };
      },
    };
    const gw = await startGateway({ maxBodyBytes: 1 << 20, admission, invoke: (e) => route(e, { models, backend: serial }) });
    const okMs: number[] = [];
    let refused = 0;
    const failures: string[] = [];
    const end = performance.now() + ms;
    await Promise.all(Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const r = await fetch(`${gw.url}/v2/models/m/infer`, { method: 'POST', body: inferBody });
        const text = await r.text();
        if (r.status === 200) okMs.push(performance.now() - t0);
        else if (r.status === 503) { refused++; await sleep(Number(r.headers.get('retry-after')) * 1000 * (0.5 + Math.random())); } else { failures.push(`${r.status} ${text}`); break; }
      }
    }));
    await gw.close();
    assert.deepEqual(failures, []);
    okMs.sort((a, b) => a - b);
    return { p99: okMs[Math.ceil(0.99 * okMs.length) - 1]!, p50: okMs[Math.ceil(0.5 * okMs.length) - 1]!, ok: okMs.length, refused };
  }

  // The clients share this process's event loop with the gateway, so the tail is noisy on a busy
  // machine: the median is asserted strictly, the p99 only against the unbounded one.
  it('latency stays near (slots + queue) x service time instead of growing with the clients', async (t) => {
    const bounded = await overload(new Admission({ maxInflight: 2, maxQueue: 2 }), 64, 3000);
    const unbounded = await overload(undefined, 64, 3000);
    t.diagnostic(`64 clients, serial 20 ms backend: bounded (2 + 2) p50 ${bounded.p50.toFixed(0)} p99 ${bounded.p99.toFixed(0)} ms, ${bounded.ok} ok, ${bounded.refused} refused; unbounded p50 ${unbounded.p50.toFixed(0)} p99 ${unbounded.p99.toFixed(0)} ms, ${unbounded.ok} ok`);
    assert.ok(unbounded.p99 > 64 * 20 * 0.7, `unbounded p99 ${unbounded.p99}`);
    assert.ok(bounded.p50 < unbounded.p50 / 3, `bounded p50 ${bounded.p50} vs unbounded ${unbounded.p50}`);
    assert.ok(bounded.p99 < unbounded.p99, `bounded p99 ${bounded.p99} vs unbounded ${unbounded.p99}`);
    assert.ok(bounded.refused > 0);
  });
});
