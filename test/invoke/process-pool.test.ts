import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  FunctionCrashedError,
  FunctionError,
  FunctionNotFoundError,
  FunctionTimeoutError,
  InvokeError,
  PayloadTooLargeError,
} from '../../src/invoke/errors.ts';
import { ProcessPoolInvoker } from '../../src/invoke/process-pool.ts';

import { fixture, fn, json, sha, waitFor } from '../helpers/functions.ts';
const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // An exited orphan can linger as a zombie if PID 1 does not reap (containers): count it as dead.
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
};

describe('ProcessPoolInvoker', () => {
  let pool: ProcessPoolInvoker;

  before(() => {
    pool = new ProcessPoolInvoker({
      logs: 'silent',
      functions: {
        echo: fn('echo'),
        pid: fn('pid', { maxInstances: 3, memoryLimitMb: 512, env: { FIXTURE_ENV: 'hello' } }),
        sleep4: fn('sleep', { maxInstances: 4 }),
        sleep1: fn('sleep'),
        sleepShort: fn('sleep', { timeoutMs: 400 }),
        crash: fn('crash'),
        throw: fn('throw'),
        initFail: fn('init-fail'),
      },
    });
  });
  after(() => pool.close());

  it('runs each instance in a separate process and passes the context', async () => {
    const results = await Promise.all([0, 1, 2].map(() => pool.invoke('sleep4', Buffer.from('{"ms":150}'))));
    const pids = results.map((r) => json(r.payload).pid as number);
    assert.equal(new Set(pids).size, 3, `distinct pids: ${pids}`);
    assert.ok(!pids.includes(process.pid));
    assert.equal(new Set(results.map((r) => r.instanceId)).size, 3);
    for (const r of results) {
      assert.equal(r.coldStart, true);
      assert.ok(r.initMs! > 0, 'cold start reports initMs');
    }

    const r = await pool.invoke('pid', Buffer.alloc(0));
    const info = json(r.payload);
    assert.equal(info.ppid, process.pid);
    assert.equal(info.context.functionName, 'pid');
    assert.equal(info.context.instanceId, r.instanceId);
    assert.equal(info.context.memoryLimitMb, 512);
    assert.match(info.context.requestId, /^[0-9a-f-]{36}$/);
    assert.equal(info.env, 'hello');
    assert.ok(info.execArgv.includes('--max-old-space-size=512'), 'memory limit passed as V8 heap flag');
    assert.ok(r.peakRssBytes! > 10 * 1024 * 1024, `peakRssBytes looks like bytes: ${r.peakRssBytes}`);
  });

  it('runs up to maxInstances invocations in parallel', async () => {
    // Instances of sleep4 are warm from the previous test (3 of 4); start the 4th.
    await Promise.all([0, 1, 2, 3].map(() => pool.invoke('sleep4', Buffer.from('{"ms":50}'))));
    const t0 = performance.now();
    const results = await Promise.all([0, 1, 2, 3].map((i) => pool.invoke('sleep4', Buffer.from(JSON.stringify({ ms: 300, tag: i })))));
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 1000, `4 × 300 ms on 4 instances took ${elapsed.toFixed(0)} ms`);
    assert.equal(new Set(results.map((r) => r.instanceId)).size, 4);
    assert.ok(results.every((r) => !r.coldStart && r.initMs === undefined));
    assert.equal(pool.stats().sleep4.instancesAlive, 4);
  });

  it('reuses a warm instance for sequential calls', async () => {
    const first = await pool.invoke('echo', Buffer.from('one'));
    const second = await pool.invoke('echo', Buffer.from('two'));
    const third = await pool.invoke('echo', Buffer.from('three'));
    assert.equal(first.coldStart, true);
    assert.ok(first.initMs! > 0);
    assert.equal(second.coldStart, false);
    assert.equal(third.coldStart, false);
    assert.equal(second.instanceId, first.instanceId);
    assert.equal(third.instanceId, first.instanceId);
    assert.equal(third.payload.toString(), 'three');
    assert.ok(second.durationMs >= 0 && second.durationMs < 1000);

    const a = json((await pool.invoke('pid', Buffer.alloc(0))).payload).pid;
    const b = json((await pool.invoke('pid', Buffer.alloc(0))).payload).pid;
    assert.equal(a, b, 'same process serves warm calls');
  });

  it('queues invocations beyond maxInstances in FIFO order', async () => {
    await pool.invoke('sleep1', Buffer.from('{"ms":0}')); // warm up
    const t0 = performance.now();
    const calls = [0, 1, 2, 3].map((i) => pool.invoke('sleep1', Buffer.from(JSON.stringify({ ms: 100, tag: i }))));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(pool.stats().sleep1.queued, 3);
    assert.equal(pool.stats().sleep1.busy, 1);
    const results = await Promise.all(calls);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 380, `serialised on one instance: ${elapsed.toFixed(0)} ms`);
    const infos = results.map((r) => json(r.payload));
    assert.equal(new Set(results.map((r) => r.instanceId)).size, 1);
    assert.deepEqual(infos.map((x) => x.tag), [0, 1, 2, 3]);
    for (let i = 1; i < infos.length; i++) assert.ok(infos[i].start >= infos[i - 1].end, 'one at a time, in order');
    assert.equal(pool.stats().sleep1.instancesAlive, 1);
  });

  it('detects an instance that exits mid-invocation and replaces it', async () => {
    const alive = await pool.invoke('crash', Buffer.from('hi'));
    const pid1 = Number(alive.payload.toString().split(':')[1]);
    await assert.rejects(pool.invoke('crash', Buffer.from('exit:3')), (err: unknown) => {
      assert.ok(err instanceof FunctionCrashedError, String(err));
      assert.equal(err.exitCode, 3);
      assert.equal(err.functionName, 'crash');
      assert.match(err.message, /exited with code 3/);
      return true;
    });
    assert.equal(await waitFor(() => !isAlive(pid1), 2000), true);
    const again = await pool.invoke('crash', Buffer.from('hi'));
    assert.equal(again.coldStart, true, 'replacement instance is a cold start');
    assert.notEqual(again.instanceId, alive.instanceId);
    await assert.rejects(pool.invoke('crash', Buffer.from('kill')), (err: unknown) => {
      assert.ok(err instanceof FunctionCrashedError);
      assert.equal(err.signal, 'SIGKILL');
      assert.match(err.message, /signal SIGKILL/);
      return true;
    });
    await assert.rejects(pool.invoke('crash', Buffer.from('uncaught')), (err: unknown) => {
      assert.ok(err instanceof FunctionCrashedError);
      assert.match(err.message, /boom from a timer/, 'stderr tail included');
      return true;
    });
    assert.ok((await pool.invoke('crash', Buffer.from('hi'))).payload.toString().startsWith('alive:'));
    const st = pool.stats().crash;
    assert.equal(st.crashes, 3);
    assert.equal(st.instancesAlive, 1);
  });

  it('kills an instance that exceeds its timeout', async () => {
    const warm = await pool.invoke('sleepShort', Buffer.from('{"ms":0}'));
    const pid = json(warm.payload).pid;
    const t0 = performance.now();
    await assert.rejects(pool.invoke('sleepShort', Buffer.from('{"ms":5000}')), (err: unknown) => {
      assert.ok(err instanceof FunctionTimeoutError, String(err));
      assert.equal(err.timeoutMs, 400);
      assert.match(err.message, /timed out after 400 ms/);
      return true;
    });
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 390 && elapsed < 2000, `timed out after ${elapsed.toFixed(0)} ms`);
    assert.equal(await waitFor(() => !isAlive(pid), 2000), true, 'timed-out instance process is killed');
    const next = await pool.invoke('sleepShort', Buffer.from('{"ms":10}'));
    assert.equal(next.coldStart, true);
    assert.equal(pool.stats().sleepShort.timeouts, 1);
  });

  it('maps a thrown error to FunctionError and keeps the instance alive', async () => {
    const ok = await pool.invoke('throw', Buffer.from('none'));
    await assert.rejects(pool.invoke('throw', Buffer.from('typed')), (err: unknown) => {
      assert.ok(err instanceof FunctionError, String(err));
      assert.ok(err instanceof InvokeError);
      assert.equal(err.errorType, 'TileError');
      assert.equal(err.errorMessage, 'tile 3 of layer conv2 is missing');
      assert.deepEqual(err.details, { layer: 'conv2', tile: [1, 2], bytes: 1024 });
      assert.match(err.remoteStack ?? '', /throw\.ts/);
      assert.equal(err.instanceId, ok.instanceId);
      assert.match(err.message, /TileError: tile 3/);
      return true;
    });
    await assert.rejects(pool.invoke('throw', Buffer.from('string')), (err: unknown) =>
      err instanceof FunctionError && err.errorType === 'Error' && err.errorMessage === 'plain string thrown');
    await assert.rejects(pool.invoke('throw', Buffer.from('nameless')), (err: unknown) =>
      err instanceof FunctionError && err.errorType === 'NamelessError');
    await assert.rejects(pool.invoke('throw', Buffer.from('circular')), (err: unknown) =>
      err instanceof FunctionError && err.details === undefined && err.errorMessage === 'circular details');
    await assert.rejects(pool.invoke('throw', Buffer.from('context')), (err: unknown) => {
      assert.ok(err instanceof FunctionError);
      assert.equal(err.errorType, 'RangeError');
      assert.deepEqual(err.details, { shape: [1, 3, 224, 224], code: 'E_SHAPE' });
      return true;
    });
    await assert.rejects(pool.invoke('throw', Buffer.from('reject')), (err: unknown) =>
      err instanceof FunctionError && err.errorType === 'TypeError');
    const after = await pool.invoke('throw', Buffer.from('none'));
    assert.equal(after.instanceId, ok.instanceId, 'same instance after errors');
    assert.equal(after.coldStart, false);
    assert.equal(after.payload.toString(), ok.payload.toString());
    assert.equal(pool.stats().throw.errors, 6);
  });

  it('reports a module that fails to load as FunctionError', async () => {
    await assert.rejects(pool.invoke('initFail', Buffer.alloc(0)), (err: unknown) => {
      assert.ok(err instanceof FunctionError, String(err));
      assert.match(err.errorMessage, /initialization failed: cannot load model weights/);
      return true;
    });
    assert.equal(pool.stats().initFail.instancesAlive, 0);
  });

  it('rejects unknown functions', async () => {
    await assert.rejects(pool.invoke('nope', Buffer.alloc(0)), (err: unknown) =>
      err instanceof FunctionNotFoundError && err.functionName === 'nope' && /echo/.test(err.message));
  });

  it('roundtrips a 10 MB binary payload intact', async () => {
    const body = randomBytes(10 * 1024 * 1024);
    const r = await pool.invoke('echo', body);
    assert.equal(r.payload.length, body.length);
    assert.equal(sha(r.payload), sha(body));
    // A view into a larger buffer sends only the view's bytes.
    const view = body.subarray(1000, 1000 + 4096);
    const rv = await pool.invoke('echo', view);
    assert.ok(rv.payload.equals(view));
    // Empty payload.
    assert.equal((await pool.invoke('echo', Buffer.alloc(0))).payload.length, 0);
  });

  it('stats() reports per-function instances, cold starts and invocations', () => {
    const st = pool.stats();
    assert.equal(st.echo.instancesAlive, 1);
    assert.equal(st.echo.coldStarts, 1);
    assert.ok(st.echo.invocations >= 6);
    const inst = st.echo.instances.find((i) => i.state !== 'dead')!;
    assert.ok(inst.pid! > 0);
    assert.ok(inst.peakRssBytes > 0);
    assert.ok(st.echo.maxPeakRssBytes >= inst.peakRssBytes);
    assert.equal(st.crash.instances.filter((i) => i.state === 'dead').length, 3);
  });
});

describe('ProcessPoolInvoker limits', () => {
  it('kills an instance whose RSS exceeds memoryLimitMb (synchronous spike)', async () => {
    const pool = new ProcessPoolInvoker({ logs: 'silent', functions: { alloc: fn('alloc', { memoryLimitMb: 200 }) } });
    try {
      const small = await pool.invoke('alloc', Buffer.from('{"mb":10}'));
      assert.ok(small.peakRssBytes! < 200 * 1024 * 1024);
      await assert.rejects(pool.invoke('alloc', Buffer.from('{"mb":300}')), (err: unknown) => {
        assert.ok(err instanceof FunctionCrashedError, String(err));
        assert.equal(err.outOfMemory, true);
        assert.match(err.message, /out of memory/);
        return true;
      });
      const st = pool.stats().alloc;
      assert.equal(st.oomKills, 1);
      assert.equal(st.instancesAlive, 0);
      const again = await pool.invoke('alloc', Buffer.from('{"mb":1}'));
      assert.equal(again.coldStart, true);
    } finally {
      await pool.close();
    }
  });

  it('kills an instance whose memory grows past the limit during the call', async () => {
    const pool = new ProcessPoolInvoker({ logs: 'silent', functions: { alloc: fn('alloc', { memoryLimitMb: 200 }) } });
    try {
      const t0 = performance.now();
      // Would take ~3 s to finish; the watchdog should stop it well before.
      await assert.rejects(pool.invoke('alloc', Buffer.from('{"mb":600,"chunkMb":10,"delayMs":50}')), (err: unknown) => {
        assert.ok(err instanceof FunctionCrashedError, String(err));
        assert.match(err.message, /out of memory/);
        return true;
      });
      assert.ok(performance.now() - t0 < 2900, 'killed mid-invocation');
    } finally {
      await pool.close();
    }
  });

  it('enforces the payload limit on requests and responses', async () => {
    const pool = new ProcessPoolInvoker({
      logs: 'silent',
      maxPayloadBytes: 1024 * 1024,
      functions: { echo: fn('echo'), alloc: fn('alloc') },
    });
    try {
      await assert.rejects(pool.invoke('echo', Buffer.alloc(1024 * 1024 + 1)), (err: unknown) => {
        assert.ok(err instanceof PayloadTooLargeError);
        assert.equal(err.direction, 'request');
        assert.equal(err.maxBytes, 1024 * 1024);
        return true;
      });
      assert.equal(pool.stats().echo.instancesAlive, 0, 'rejected before any instance started');
      assert.equal((await pool.invoke('echo', Buffer.alloc(1024 * 1024))).payload.length, 1024 * 1024);
      await assert.rejects(pool.invoke('alloc', Buffer.from(JSON.stringify({ returnBytes: 2 * 1024 * 1024 }))), (err: unknown) =>
        err instanceof PayloadTooLargeError && err.direction === 'response');
      assert.equal(pool.stats().alloc.instancesAlive, 1, 'instance survives an oversized response');
    } finally {
      await pool.close();
    }
  });

  it('defaults the payload limit to 32 MB', async () => {
    const pool = new ProcessPoolInvoker({ logs: 'silent', functions: { echo: fn('echo') } });
    try {
      await assert.rejects(pool.invoke('echo', Buffer.alloc(32 * 1024 * 1024 + 1)), PayloadTooLargeError);
    } finally {
      await pool.close();
    }
  });
});

describe('ProcessPoolInvoker lifecycle', () => {
  it('close() kills instances and rejects pending and queued calls', async () => {
    const pool = new ProcessPoolInvoker({ logs: 'silent', functions: { sleep: fn('sleep') } });
    const r = await pool.invoke('sleep', Buffer.from('{"ms":0}'));
    const pid = json(r.payload).pid;
    const running = assert.rejects(pool.invoke('sleep', Buffer.from('{"ms":5000}')), (err: unknown) =>
      err instanceof InvokeError && /closed while sleep was running/.test(err.message));
    const queued = assert.rejects(pool.invoke('sleep', Buffer.from('{"ms":0}')), (err: unknown) =>
      err instanceof InvokeError && /closed before sleep could run/.test(err.message));
    await new Promise((res) => setTimeout(res, 50));
    const t0 = performance.now();
    await pool.close();
    assert.ok(performance.now() - t0 < 2000, 'close() does not wait for running calls');
    await running;
    await queued;
    assert.equal(isAlive(pid), false);
    await assert.rejects(pool.invoke('sleep', Buffer.from('{}')), /closed/);
  });

  it('prewarm() starts instances whose first call is warm', async () => {
    const pool = new ProcessPoolInvoker({ logs: 'silent', functions: { sleep: fn('sleep', { maxInstances: 2 }), bad: fn('init-fail') } });
    try {
      await pool.prewarm('sleep');
      assert.equal(pool.stats().sleep.instancesAlive, 2);
      const rs = await Promise.all([0, 1].map(() => pool.invoke('sleep', Buffer.from('{"ms":0}'))));
      assert.ok(rs.every((r) => !r.coldStart));
      assert.equal(new Set(rs.map((r) => r.instanceId)).size, 2);
      await assert.rejects(pool.prewarm('bad', 1), (err: unknown) => err instanceof FunctionError && /cannot load/.test(err.message));
    } finally {
      await pool.close();
    }
  });

  it('validates the configuration', () => {
    assert.throws(() => new ProcessPoolInvoker({ functions: { x: { entry: 'relative.ts', maxInstances: 1, timeoutMs: 1 } } }), /absolute/);
    assert.throws(() => new ProcessPoolInvoker({ functions: { x: { entry: '/no/such/file.ts', maxInstances: 1, timeoutMs: 1 } } }), /does not exist/);
    assert.throws(() => new ProcessPoolInvoker({ functions: { x: fn('echo', { maxInstances: 0 }) } }), /maxInstances/);
  });

  it('instances die when the parent process is killed', async () => {
    const poolUrl = new URL('../../src/invoke/process-pool.ts', import.meta.url).href;
    const script = `
      import { ProcessPoolInvoker } from ${JSON.stringify(poolUrl)};
      const pool = new ProcessPoolInvoker({ functions: { pid: { entry: ${JSON.stringify(fixture('pid'))}, maxInstances: 1, timeoutMs: 10000 } } });
      const r = await pool.invoke('pid', Buffer.alloc(0));
      process.stdout.write(JSON.parse(r.payload.toString()).pid + '\\n');
      setInterval(() => {}, 1000); // stay alive until killed
    `;
    const parent = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let errOut = '';
    parent.stdout.on('data', (d) => (out += d));
    parent.stderr.on('data', (d) => (errOut += d));
    try {
      assert.ok(await waitFor(() => out.includes('\n'), 10_000), `child pid reported (stderr: ${errOut})`);
      const childPid = Number(out.trim());
      assert.ok(isAlive(childPid));
      parent.kill('SIGKILL');
      assert.ok(await waitFor(() => !isAlive(childPid), 3000), 'orphaned instance exits');
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('ProcessPoolInvoker gangs and urgent calls', () => {
  it('a call with a deadline gets what is left of it, queue time included, not the function timeout', async () => {
    const pool = new ProcessPoolInvoker({ logs: 'silent', functions: { s: fn('sleep', { maxInstances: 1, timeoutMs: 10_000 }) } });
    try {
      await pool.prewarm('s');
      const busy = pool.invoke('s', Buffer.from('{"ms":300}'));
      const t0 = performance.now();
      // Queued behind `busy` for ~300 ms, then 300 ms left of its 600 ms.
      await assert.rejects(pool.invoke('s', Buffer.from('{"ms":5000}'), { deadline: Date.now() + 600 }), (err: unknown) => {
        assert.ok(err instanceof FunctionTimeoutError, String(err));
        return true;
      });
      const ms = performance.now() - t0;
      assert.ok(ms >= 550 && ms < 2500, `gave up after ${Math.round(ms)} ms with a 600 ms deadline`);
      await busy;
    } finally {
      await pool.close();
    }
  });

  it('an urgent call (a replacement for a dead gang member) starts ahead of a gang still waiting for instances', async () => {
    const pool = new ProcessPoolInvoker({ functions: { s: fn('sleep', { maxInstances: 2 }) } });
    try {
      await pool.prewarm('s');
      const busy = pool.invoke('s', Buffer.from('{"ms":600,"tag":"busy"}'));
      // The gang needs both instances, so it waits for `busy`; a plain call would queue behind it.
      const gang = pool.invokeGang('s', [0, 1].map((i) => Buffer.from(JSON.stringify({ ms: 0, tag: `g${i}` }))));
      const plain = pool.invoke('s', Buffer.from('{"ms":0,"tag":"plain"}'));
      const urgent = json((await pool.invoke('s', Buffer.from('{"ms":0,"tag":"urgent"}'), { urgent: true })).payload);
      const busyEnd = json((await busy).payload).end as number;
      assert.ok(urgent.end <= busyEnd, `the urgent call ended at ${urgent.end}, after the busy one (${busyEnd})`);
      const gangStart = Math.min(...(await Promise.all(gang)).map((r) => json(r.payload).start as number));
      assert.ok(gangStart >= busyEnd - 5, 'the gang started only when both instances were free');
      assert.ok(json((await plain).payload).start >= gangStart - 5, 'a plain call keeps its place behind the gang');
    } finally {
      await pool.close();
    }
  });
});
