import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { planModel } from '../../src/planner/plan.ts';
import { monolithic } from '../../src/exec/verify.ts';
import { compareTensors, randomTensor } from '../../src/tensor/random.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { FunctionCrashedError, FunctionError, FunctionNotFoundError, FunctionTimeoutError, InvokeError } from '../../src/invoke/errors.ts';
import { FcApiError, FcAuthError } from '../../src/invoke/fc-errors.ts';
import { retryableInvoke, withRetries } from '../../src/invoke/retry.ts';
import type { RequestResult } from '../../src/serve/backend.ts';
import { InProcessStack } from '../helpers/in-process.ts';
import { randomCase } from '../helpers/random-models.ts';

describe('which invocation failures are retried', () => {
  const o = { functionName: 'worker' };
  const cases: [string, unknown, boolean][] = [
    ['a crash (OOM included)', new FunctionCrashedError('killed', { ...o, outOfMemory: true }), true],
    ['a timeout', new FunctionTimeoutError('late', { ...o, timeoutMs: 10 }), true],
    ['FC throttling (429)', new FcApiError('busy', { ...o, code: 'ResourceThrottled', statusCode: 429 }), true],
    ['an FC internal error (503)', new FcApiError('oops', { ...o, code: 'ServiceUnavailable', statusCode: 503 }), true],
    ['a transport failure', new InvokeError('socket hang up', o), true],
    ['a function that threw', new FunctionError({ ...o, errorType: 'TypeError', errorMessage: 'x' }), false],
    ['an unknown function', new FunctionNotFoundError('nope', { known: [] }), false],
    ['bad credentials', new FcAuthError('denied', { ...o, code: 'SignatureNotMatch', statusCode: 403 }), false],
    ['a bad request to FC', new FcApiError('bad', { ...o, code: 'InvalidArgument', statusCode: 400 }), false],
    ['a plain error', new Error('bug'), false],
  ];
  for (const [what, e, expected] of cases) it(`${what}: ${expected ? 'retried' : 'not retried'}`, () => assert.equal(retryableInvoke(e), expected));

  it('stops after the retry budget, and before a backoff would pass the deadline', async () => {
    let calls = 0;
    const crash = () => { calls++; return Promise.reject(new FunctionCrashedError('killed', o)); };
    await assert.rejects(withRetries(crash, { retries: 2, minMs: 1, maxMs: 2 }, { deadline: Date.now() + 10_000, retryable: retryableInvoke }), FunctionCrashedError);
    assert.equal(calls, 3);
    calls = 0;
    await assert.rejects(withRetries(crash, { retries: 5, minMs: 1000, maxMs: 1000 }, { deadline: Date.now() + 500, retryable: retryableInvoke }), FunctionCrashedError);
    assert.equal(calls, 1);
  });
});

describe('a worker whose instance dies is replaced, and only its tile is recomputed', () => {
  // SE blocks on a 2x2 grid: one chain of 4 workers exchanging strips and partials at every stage.
  const c = randomCase(4242, { shape: [1, 3, 21, 19], maxOps: 3, minSide: 5, se: 1, minReductions: 2 });
  const { plan } = planModel(c.bytes, { inputShape: c.shape, grid: { rows: 2, cols: 2 }, cuts: 'none' });
  const chain = plan.chains.find((ch) => ch.stages.length >= 3 && ch.workers === 4)!;
  const x = randomTensor(c.shape, 7);

  async function expectEqual(res: RequestResult, ctx: string) {
    const ref = await monolithic(c.bytes, x, plan.input.name);
    for (const o of plan.outputs) {
      const d = compareTensors(ref[o.name], res.outputs[o.name]);
      assert.ok(d.maxAbsDiff <= 1e-4 * Math.max(1, d.maxRef), `${ctx}: ${o.name} maxAbsDiff ${d.maxAbsDiff}`);
    }
  }
  const retries = (r: RequestResult) => r.report.units.reduce((a, u) => a + u.retries, 0);

  for (const when of ['before', 'after'] as const) {
    it(`a crash ${when === 'before' ? 'at the start' : 'after all its strips were written (a late duplicate)'}: the answer is exact and one retry is reported`, async () => {
      const st = new InProcessStack(new MemoryStore());
      st.crashWorker = (t, attempt) => (t.chain === chain.id && t.worker === 2 && attempt === 1 ? when : undefined);
      try {
        const res = await st.run(await st.publish(c.bytes, plan), x, `crash-${when}`);
        await expectEqual(res, `crash ${when}`);
        assert.equal(retries(res), 1);
        const ran = st.workerEvents.filter((e) => e.chain === chain.id);
        // The three others ran once: nothing but the lost tile was recomputed.
        for (const w of [0, 1, 3]) assert.equal(ran.filter((e) => e.worker === w).length, 1, JSON.stringify(ran));
        assert.equal(ran.filter((e) => e.worker === 2).length, 2);
        assert.deepEqual(await st.store.list('requests/'), []);
      } finally { await st.close(); }
    });
  }

  it('a tile that keeps crashing fails the request once the retries run out, naming the chain and the tile, and leaves nothing', async () => {
    const st = new InProcessStack(new MemoryStore());
    st.crashWorker = (t) => (t.chain === chain.id && t.worker === 3 ? 'before' : undefined);
    try {
      const t0 = performance.now();
      await assert.rejects(st.run(await st.publish(c.bytes, plan), x, 'crash-always', 20_000), (e: Error) => {
        assert.match(e.message, new RegExp(`chain ${chain.id} stage ${chain.stages[0]} tile 3: worker failed \\(after 5 retries in this chain\\): injected crash`));
        return true;
      });
      assert.ok(performance.now() - t0 < 5000, 'the failure took the deadline');
      assert.equal(st.workerEvents.filter((e) => e.chain === chain.id && e.worker === 3).length, 6);
      assert.deepEqual(await st.store.list('requests/'), []);
    } finally { await st.close(); }
  });
});
