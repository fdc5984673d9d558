import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  FunctionCrashedError,
  FunctionError,
  FunctionNotFoundError,
  FunctionTimeoutError,
  InvokeError,
  PayloadTooLargeError,
  deserializeInvokeError,
  serializeInvokeError,
} from '../../src/invoke/errors.ts';
import { ProcessPoolInvoker } from '../../src/invoke/process-pool.ts';

import { fn, sha, waitFor } from '../helpers/functions.ts';
const MAX_PAYLOAD = 1024 * 1024;

interface OkResult {
  ok: true;
  isBuffer: boolean;
  bytes: number;
  sha256: string;
  body: any;
  pid: number | null;
  instanceId: string;
  coldStart: boolean;
  durationMs: number;
  initMs: number | null;
  peakRssBytes: number | null;
}
interface ErrResult {
  ok: false;
  name: string;
  ctor: string;
  message: string;
  instanceOf: Record<string, boolean>;
  [field: string]: any;
}
interface FanoutOut {
  pid: number;
  ppid: number;
  instanceId: string;
  ms: number;
  results: (OkResult | ErrResult)[];
}


function okResults(out: FanoutOut): OkResult[] {
  for (const r of out.results) assert.ok(r.ok, `nested call failed: ${JSON.stringify(r)}`);
  return out.results as OkResult[];
}

describe('nested invocation (context.invoker)', () => {
  let pool: ProcessPoolInvoker;
  const fanout = async (event: unknown, name = 'fanout'): Promise<FanoutOut> =>
    JSON.parse((await pool.invoke(name, Buffer.from(JSON.stringify(event)))).payload.toString()) as FanoutOut;

  before(async () => {
    pool = new ProcessPoolInvoker({
      logs: 'silent',
      maxPayloadBytes: MAX_PAYLOAD,
      functions: {
        fanout: fn('fanout'),
        fanoutB: fn('fanout', { maxInstances: 2 }),
        sleep: fn('sleep', { maxInstances: 4 }),
        echo: fn('echo', { maxInstances: 2 }),
        sleepShort: fn('sleep', { timeoutMs: 300 }),
        crash: fn('crash'),
        throw: fn('throw'),
        alloc: fn('alloc'),
      },
    });
    // Warm callers and workers, so the timing assertions measure calls rather than cold starts.
    // (Every instance is a Node + tsx process: cold starts dominate this file's run time.)
    await Promise.all([pool.prewarm('sleep'), pool.prewarm('fanout'), pool.prewarm('fanoutB')]);
  });
  after(() => pool.close());

  it('fans out to N workers in parallel on distinct processes', async () => {
    const N = 4;
    const t0 = performance.now();
    const out = await fanout({ calls: Array.from({ length: N }, (_, i) => ({ fn: 'sleep', payload: { ms: 300, tag: i } })) });
    const elapsed = performance.now() - t0;
    const rs = okResults(out);
    const pids = rs.map((r) => r.pid!);
    assert.equal(new Set(pids).size, N, `distinct callee pids: ${pids}`);
    assert.ok(!pids.includes(out.pid) && !pids.includes(process.pid), 'callees are neither the caller nor the test process');
    assert.equal(out.ppid, process.pid, 'the caller is an instance of this pool');
    assert.equal(new Set(rs.map((r) => r.instanceId)).size, N);
    assert.deepEqual(rs.map((r) => r.body.tag), [...Array(N).keys()], 'replies matched to their calls');
    const starts = rs.map((r) => r.body.start as number);
    const ends = rs.map((r) => r.body.end as number);
    assert.ok(Math.max(...starts) < Math.min(...ends), 'all N calls were running at the same time');
    assert.ok(out.ms < 0.6 * N * 300, `${N} × 300 ms on ${N} instances took ${out.ms} ms in the caller (serial: ${N * 300} ms)`);
    assert.ok(elapsed < 1500, `end to end ${elapsed.toFixed(0)} ms`);
    assert.ok(rs.every((r) => !r.coldStart && r.initMs === null), 'prewarmed workers are warm');
    const st = pool.stats();
    assert.equal(st.fanout.nestedCalls, N);
    assert.equal(st.sleep.invocations, N);
  });

  it('relays many concurrent calls from one instance, keeping every InvokeResult field', async () => {
    // 16 calls in flight at once from one caller, onto 2 echo instances (cold starts, then queued).
    const payloads = Array.from({ length: 16 }, (_, i) => `${i}:` + String.fromCharCode(97 + i).repeat(1000 * i));
    const first = okResults(await fanout({ calls: payloads.map((p) => ({ fn: 'echo', payload: p })) }));
    first.forEach((r, i) => {
      assert.equal(r.body, payloads[i]);
      assert.equal(r.sha256, sha(Buffer.from(payloads[i])));
      assert.equal(r.isBuffer, true, 'payload arrives as a Buffer');
      assert.ok(r.durationMs >= 0 && r.durationMs < 1000);
      assert.ok(r.peakRssBytes! > 10 * 1024 * 1024, `peakRssBytes: ${r.peakRssBytes}`);
      assert.match(r.instanceId, /^echo-\d+-/);
    });
    const cold = first.filter((r) => r.coldStart);
    assert.equal(cold.length, 2, 'one cold start per echo instance');
    assert.ok(cold.every((r) => r.initMs! > 0), 'cold starts report initMs');
    assert.ok(first.filter((r) => !r.coldStart).every((r) => r.initMs === null));
    assert.equal(new Set(first.map((r) => r.instanceId)).size, 2, 'limited to maxInstances');

    const second = okResults(await fanout({ calls: [{ fn: 'echo', payload: 'again' }] }));
    assert.equal(second[0].coldStart, false);
    assert.ok(first.some((r) => r.instanceId === second[0].instanceId), 'warm instance reused');
  });

  it('surfaces a callee crash as FunctionCrashedError that the caller can catch', async () => {
    const out = await fanout({ calls: [{ fn: 'crash', payload: 'exit:3' }] });
    const [crashed] = out.results;
    assert.equal(crashed.ok, false);
    const e = crashed as ErrResult;
    assert.equal(e.ctor, 'FunctionCrashedError');
    assert.ok(e.instanceOf.FunctionCrashedError && e.instanceOf.InvokeError && !e.instanceOf.FunctionError);
    assert.equal(e.exitCode, 3);
    assert.equal(e.signal, null);
    assert.equal(e.outOfMemory, false);
    assert.equal(e.functionName, 'crash');
    assert.match(e.instanceId, /^crash-1-/);
    assert.match(e.requestId, /^[0-9a-f-]{36}$/);
    assert.match(e.message, /exited with code 3/);
    assert.match(e.stack, /fanout\.ts/, 'stack points at the nested call site');

    // Uncaught in the caller, the crash becomes the caller's FunctionError.
    await assert.rejects(pool.invoke('fanout', Buffer.from(JSON.stringify({ mode: 'all', calls: [{ fn: 'crash', payload: 'kill' }] }))),
      (err: unknown) => {
        assert.ok(err instanceof FunctionError, String(err));
        assert.equal(err.functionName, 'fanout');
        assert.equal(err.errorType, 'FunctionCrashedError');
        assert.match(err.errorMessage, /killed by signal SIGKILL/);
        return true;
      });
    assert.equal(pool.stats().fanout.crashes, 0, 'the caller itself did not crash');
  });

  it('surfaces a callee error as FunctionError with its details, and other error classes', async () => {
    const out = await fanout({
      calls: [
        { fn: 'throw', payload: 'typed' },
        { fn: 'sleepShort', payload: { ms: 5000 } },
        { fn: 'nope' },
      ],
    });
    const [thrown, timedOut, missing] = out.results as ErrResult[];
    assert.equal(thrown.ctor, 'FunctionError');
    assert.ok(thrown.instanceOf.FunctionError && thrown.instanceOf.InvokeError && !thrown.instanceOf.FunctionCrashedError);
    assert.equal(thrown.errorType, 'TileError');
    assert.equal(thrown.errorMessage, 'tile 3 of layer conv2 is missing');
    assert.deepEqual(thrown.details, { layer: 'conv2', tile: [1, 2], bytes: 1024 });
    assert.match(thrown.remoteStack, /throw\.ts/);
    assert.equal(thrown.message, 'throw: TileError: tile 3 of layer conv2 is missing');
    assert.match(thrown.instanceId, /^throw-/);

    assert.equal(timedOut.ctor, 'FunctionTimeoutError');
    assert.ok(timedOut.instanceOf.FunctionTimeoutError && timedOut.instanceOf.InvokeError);
    assert.equal(timedOut.timeoutMs, 300);
    assert.match(timedOut.message, /timed out after 300 ms/);

    assert.equal(missing.ctor, 'FunctionNotFoundError');
    assert.ok(missing.instanceOf.FunctionNotFoundError);
    assert.equal(missing.functionName, 'nope');
    assert.match(missing.message, /function not found: "nope" \(known: fanout, fanoutB, sleep/);
  });

  it('applies the payload limit to relayed requests and responses', async () => {
    const out = await fanout({
      calls: [
        { fn: 'echo', payload: { $bytes: MAX_PAYLOAD + 1 } },
        { fn: 'echo', payload: { $bytes: MAX_PAYLOAD } },
        { fn: 'alloc', payload: { returnBytes: MAX_PAYLOAD + 1 } },
      ],
    });
    const [tooBig, atLimit, tooBigResponse] = out.results;
    const req = tooBig as ErrResult;
    assert.equal(req.ctor, 'PayloadTooLargeError');
    assert.ok(req.instanceOf.PayloadTooLargeError && req.instanceOf.InvokeError);
    assert.equal(req.direction, 'request');
    assert.equal(req.sizeBytes, MAX_PAYLOAD + 1);
    assert.equal(req.maxBytes, MAX_PAYLOAD);
    assert.equal(req.functionName, 'echo');
    assert.ok(atLimit.ok, 'exactly at the limit passes');
    assert.equal((atLimit as OkResult).sha256, sha(Buffer.alloc(MAX_PAYLOAD, 'x')));
    const res = tooBigResponse as ErrResult;
    assert.equal(res.ctor, 'PayloadTooLargeError');
    assert.equal(res.direction, 'response');
    assert.equal(res.sizeBytes, MAX_PAYLOAD + 1);
    assert.match(res.instanceId, /^alloc-/);
  });

  it('nests two levels deep (a → b → c), all instances in the one pool', async () => {
    const b = { calls: [0, 1].map((i) => ({ fn: 'sleep', payload: { ms: 400, tag: i } })) };
    const a = await fanout({ calls: [{ fn: 'fanoutB', payload: b }, { fn: 'fanoutB', payload: b }] });
    const bs = okResults(a);
    const bOuts = bs.map((r) => r.body as FanoutOut);
    const cs = bOuts.flatMap((o) => okResults(o));
    assert.deepEqual(cs.map((c) => c.body.tag), [0, 1, 0, 1]);
    const pids = [a.pid, ...bOuts.map((o) => o.pid), ...cs.map((c) => c.pid!)];
    assert.equal(new Set(pids).size, 7, `a, 2 × b, 4 × c on distinct processes: ${pids}`);
    for (const o of [a, ...bOuts]) assert.equal(o.ppid, process.pid, 'every level is a child of the pool');
    for (const o of bOuts) {
      const [c0, c1] = okResults(o).map((c) => c.body as { start: number; end: number });
      assert.ok(c0.start < c1.end && c1.start < c0.end, "b's two calls ran in parallel");
    }
    assert.ok(bs.every((r) => r.instanceId.startsWith('fanoutB-')));
    assert.equal(pool.stats().fanoutB.nestedCalls, 4);
  });

  it('lets sub-calls finish and drops their replies when the caller dies', async () => {
    const before = pool.stats();
    await assert.rejects(
      pool.invoke('fanoutB', Buffer.from(JSON.stringify({ dieAfterMs: 50, calls: [0, 1, 2, 3].map(() => ({ fn: 'sleep', payload: { ms: 600 } })) }))),
      (err: unknown) => err instanceof FunctionCrashedError && err.exitCode === 1 && err.functionName === 'fanoutB',
    );
    assert.ok(pool.stats().sleep.busy > 0, 'caller crash reported while its sub-calls still run');
    assert.ok(
      await waitFor(() => pool.stats().fanoutB.nestedRepliesDropped === before.fanoutB.nestedRepliesDropped + 4, 3000),
      'all four replies dropped',
    );
    const st = pool.stats();
    assert.equal(st.sleep.busy, 0);
    assert.equal(st.sleep.invocations, before.sleep.invocations + 4, 'sub-calls ran to completion');
    assert.equal(st.sleep.crashes, 0);
    assert.equal(st.sleep.instancesAlive, 4, 'callees unaffected');
    assert.equal(st.fanoutB.crashes, before.fanoutB.crashes + 1);
    // The pool carries on (on fanoutB's surviving instance).
    const out = await fanout({ calls: [{ fn: 'sleep', payload: { ms: 0 } }] }, 'fanoutB');
    assert.equal(okResults(out)[0].coldStart, false);
  });
});

describe('InvokeError wire form', () => {
  it('roundtrips every class with its fields', () => {
    const cause = new Error('spawn ENOENT');
    const cases: Error[] = [
      new InvokeError('invoker closed', { functionName: 'f', requestId: 'r', instanceId: 'i' }),
      new FunctionNotFoundError('g', { known: ['a', 'b'] }),
      new FunctionCrashedError('died', { functionName: 'f', exitCode: null, signal: 'SIGKILL', outOfMemory: true, cause }),
      new FunctionTimeoutError('slow', { functionName: 'f', requestId: 'r', timeoutMs: 250 }),
      new FunctionError({ functionName: 'f', errorType: 'RangeError', errorMessage: 'bad', details: { x: [1] }, remoteStack: 'RangeError: bad\n  at f' }),
      new PayloadTooLargeError({ functionName: 'f', sizeBytes: 10, maxBytes: 5, direction: 'response' }),
    ];
    for (const e of cases) {
      const wire = JSON.parse(JSON.stringify(serializeInvokeError(e)));
      const back = deserializeInvokeError(wire);
      assert.equal(back.constructor, e.constructor);
      assert.equal(back.message, e.message);
      assert.equal(back.name, e.name);
      const fields = (x: Error) => Object.fromEntries(Object.entries(x).filter(([k]) => k !== 'cause'));
      assert.deepEqual(fields(back), fields(e));
    }
    const crashed = deserializeInvokeError(serializeInvokeError(cases[2])) as FunctionCrashedError;
    assert.equal((crashed.cause as Error).message, 'spawn ENOENT');
    assert.ok(deserializeInvokeError(serializeInvokeError(new TypeError('t'))) instanceof TypeError);
    assert.equal(deserializeInvokeError(serializeInvokeError('str')).message, 'str');
  });
});
