import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { HttpError, toHttpError, ERROR_CODES } from '../../src/http/errors.ts';
import {
  ArtifactMissingError, DeadlineUnmeetableError, MasterFailedError, MasterInvocationError, PlanningFailedError, RegistryInvalidError,
  RequestRejectedError,
} from '../../src/serve/errors.ts';
import { ObjectNotFoundError, StoreTimeoutError } from '../../src/store/errors.ts';
import { FunctionCrashedError } from '../../src/invoke/errors.ts';
import { ExchangeAbortedError, ExchangeTimeoutError } from '../../src/exchange/errors.ts';
import { PlanError } from '../../src/planner/errors.ts';
import { describeIssues, zodPath } from '../../src/zod-issues.ts';

const body = (e: HttpError) => JSON.parse(JSON.stringify(e.toJSON())) as Record<string, unknown>;

describe('toHttpError: the one mapper from errors to responses', () => {
  it('passes HttpErrors through unchanged', () => {
    const e = new HttpError(404, 'no such model', { code: 'unknown_model' });
    assert.equal(toHttpError(e), e);
  });

  it("maps serve's client errors to 400 with their code and context", () => {
    const shape = toHttpError(new RequestRejectedError('model m: input H = 7 is not a multiple of 32', { reason: 'shape_mismatch', context: { H: 7 } }));
    assert.equal(shape.status, 400);
    assert.deepEqual(body(shape), { H: 7, error: 'model m: input H = 7 is not a multiple of 32', code: 'shape_mismatch' });
    const dtype = toHttpError(new RequestRejectedError('input x is int8, this model\'s plan needs float32', { requestId: 'r1', context: { input: 'x', expected: 'float32', given: 'int8' } }));
    assert.deepEqual(body(dtype), { requestId: 'r1', input: 'x', expected: 'float32', given: 'int8', error: 'input x is int8, this model\'s plan needs float32', code: 'bad_request' });
  });

  it('maps an unmeetable deadline to 503 with Retry-After', () => {
    const e = toHttpError(new DeadlineUnmeetableError('request cannot finish within its deadline', { requestId: 'r1', predictedMs: 2400.4, leftMs: 100 }));
    assert.equal(e.status, 503);
    assert.equal(e.headers?.['retry-after'], '3');
    assert.deepEqual(body(e), { requestId: 'r1', predictedMs: 2400, leftMs: 100, retryAfterSeconds: 3, error: 'request cannot finish within its deadline', code: 'deadline_unmeetable' });
  });

  it('maps a failed master to 502 naming what the master reported', () => {
    const e = toHttpError(new MasterInvocationError('inference failed in the master: WorkerFailedError: chain 0 stage 0 tile 3: crash', { requestId: 'r1', context: { stage: 0, tile: 3 } }));
    assert.equal(e.status, 502);
    assert.deepEqual(body(e), { requestId: 'r1', stage: 0, tile: 3, error: 'inference failed in the master: WorkerFailedError: chain 0 stage 0 tile 3: crash', code: 'bad_gateway' });
  });

  it('maps planning failures to 500 with their message (plan_refused for a guard mismatch)', () => {
    assert.deepEqual(body(toHttpError(new PlanningFailedError('model m: no plan for 64x64: too small'))), { error: 'model m: no plan for 64x64: too small', code: 'internal' });
    assert.equal(toHttpError(new PlanningFailedError('stage 2 differs', { reason: 'plan_refused', context: { stage: 2 } })).code, 'plan_refused');
  });

  it('names the failing part for store, exchange, invoke, planner and artifact errors, without their internals', () => {
    const cases: Array<[unknown, number, string]> = [
      [new ArtifactMissingError('model not found in the store', { key: 'artifacts/abc/model.onnx' }), 500, 'artifact_missing'],
      [new ObjectNotFoundError('artifacts/abc/plans/p.json'), 500, 'artifact_missing'],
      [new RegistryInvalidError('models: expected array', { key: 'artifacts/registry.json' }), 500, 'registry_invalid'],
      [new StoreTimeoutError('GET https://bucket.internal/x timed out', { key: 'x' }), 502, 'store_failed'],
      [new ExchangeTimeoutError('no strip before the deadline', { key: 'requests/r1/b' }), 504, 'exchange_timeout'],
      [new ExchangeAbortedError('aborted', { key: 'requests/r1/abort' }), 502, 'exchange_failed'],
      [new FunctionCrashedError('killed', { functionName: 'worker' }), 502, 'invoke_failed'],
      [new PlanError('grid too large', { model: 'm' }), 500, 'plan_failed'],
    ];
    for (const [err, status, code] of cases) {
      const e = toHttpError(err);
      assert.equal(e.status, status, String(err));
      assert.equal(e.code, code, String(err));
      assert.doesNotMatch(e.message, /bucket\.internal|requests\/r1|artifacts\//, 'no keys or hosts reach the client');
    }
  });

  it('maps zod validation errors to 400 invalid_request listing the issues', () => {
    const r = z.object({ inputs: z.array(z.object({ shape: z.array(z.number().int()) })) }).safeParse({ inputs: [{ shape: [1, 2.5] }] });
    assert.ok(!r.success);
    const e = toHttpError(r.error);
    assert.equal(e.status, 400);
    assert.equal(e.code, 'invalid_request');
    assert.match(e.message, /^invalid request: inputs\[0\]\.shape\[1\]: /);
    assert.deepEqual((body(e).issues as Array<{ path: unknown[] }>)[0].path, ['inputs', 0, 'shape', 1]);
  });

  it('gives anything else a generic 500, never its message', () => {
    for (const err of [new Error('segfault at /secret/path'), new MasterFailedError('invalid master report: x'), 'a string', undefined]) {
      const e = toHttpError(err);
      assert.equal(e.status, 500);
      assert.deepEqual(body(e), { error: 'internal server error', code: 'internal' });
    }
  });

  it('codes are one typed list without duplicates', () => {
    assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
  });
});

describe('describeIssues: the one zod-issue formatter', () => {
  it('writes paths as in code and caps the list', () => {
    assert.equal(zodPath([]), '(root)');
    assert.equal(zodPath([], '(env)'), '(env)');
    assert.equal(zodPath(['inputs', 0, 'shape']), 'inputs[0].shape');
    const issues = Array.from({ length: 12 }, (_, i) => ({ path: ['a', i], message: 'bad' }));
    assert.equal(describeIssues(issues.slice(0, 2)), 'a[0]: bad; a[1]: bad');
    assert.match(describeIssues(issues), /a\[9\]: bad; \.\.\. \(2 more\)$/);
  });
});
