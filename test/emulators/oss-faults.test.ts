import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FaultSpecError, OssFaultInjector, parseFaultSpec } from '../../src/emulators/oss-faults.ts';
import { OssHttpError } from '../../src/emulators/oss-protocol.ts';

const NONE = { error: 0, truncate: 0, corrupt: 0, slow: 0, reset: 0, slowMs: 3000 };
const specErr = (...parts: RegExp[]) => (e: unknown) => e instanceof FaultSpecError && /^OSS_EMULATOR_FAULTS/.test((e as Error).message) && parts.every((p) => p.test((e as Error).message));

describe('parseFaultSpec (OSS_EMULATOR_FAULTS)', () => {
  it('empty, blank and stray commas mean no faults', () => {
    for (const s of ['', '  ', ',', ' , ,']) assert.deepEqual(parseFaultSpec(s), NONE);
  });

  it('accepts name:value and name=value, spaces, exponents and a seed', () => {
    assert.deepEqual(parseFaultSpec(' error : 0.05 , truncate=1e-2,slowMs:250, seed:-7 '), { ...NONE, error: 0.05, truncate: 0.01, slowMs: 250, seed: -7 });
    assert.deepEqual(parseFaultSpec('reset:1'), { ...NONE, reset: 1 });
  });

  it('rejects fractions outside 0..1 and a sum over 1, naming the field', () => {
    assert.throws(() => parseFaultSpec('error:1.5'), specErr(/error:/));
    assert.throws(() => parseFaultSpec('slow:-0.1'), specErr(/slow:/));
    assert.throws(() => parseFaultSpec('error:0.6,reset:0.5'), specErr(/add up to more than 1/));
  });

  it('rejects unknown names, listing the known ones', () => {
    assert.throws(() => parseFaultSpec('latency:0.1'), specErr(/latency/, /known: error, truncate, corrupt, slow, reset/));
  });

  it('rejects non-numbers, missing values, repeats, and a fractional or negative slowMs or seed', () => {
    assert.throws(() => parseFaultSpec('error'), specErr(/"error" is not name:number/));
    assert.throws(() => parseFaultSpec('error:abc'), specErr(/is not name:number/));
    assert.throws(() => parseFaultSpec('error:1-2'), specErr(/is not name:number/));
    assert.throws(() => parseFaultSpec('error:0.1,error:0.2'), specErr(/error is given twice/));
    assert.throws(() => parseFaultSpec('slowMs:1.5'), specErr(/slowMs/));
    assert.throws(() => parseFaultSpec('slowMs:-1'), specErr(/slowMs/));
    assert.throws(() => parseFaultSpec('slowMs:600001'), specErr(/slowMs/));
    assert.throws(() => parseFaultSpec('seed:0.5'), specErr(/seed/));
  });
});

describe('OssFaultInjector', () => {
  it('draws nothing without random faults, and every request with a fraction of 1', () => {
    assert.equal(new OssFaultInjector(undefined).draw(), undefined);
    assert.equal(new OssFaultInjector('').draw(), undefined);
    const all = new OssFaultInjector('corrupt:1,seed:1');
    for (let i = 0; i < 20; i++) assert.equal(all.draw(), 'corrupt');
  });

  it('a seed makes the draws repeatable, and their shares follow the spec', () => {
    const spec = 'error:0.2,truncate:0.1,slow:0.3,seed:42';
    const run = () => { const f = new OssFaultInjector(spec); return Array.from({ length: 4000 }, () => f.draw()); };
    const a = run();
    assert.deepEqual(a, run());
    const share = (k: string | undefined) => a.filter((x) => x === k).length / a.length;
    assert.ok(Math.abs(share('error') - 0.2) < 0.03, `error ${share('error')}`);
    assert.ok(Math.abs(share('slow') - 0.3) < 0.03, `slow ${share('slow')}`);
    assert.ok(Math.abs(share(undefined) - 0.4) < 0.03);
    assert.equal(share('corrupt'), 0);
    assert.equal(share('reset'), 0);
  });

  it('accepts a parsed spec object (validated) and can be replaced or turned off', () => {
    const f = new OssFaultInjector({ ...NONE, slow: 1, slowMs: 5 });
    assert.equal(f.draw(), 'slow');
    assert.equal(f.slowMs, 5);
    assert.throws(() => f.setRandom({ ...NONE, error: 2 }));
    f.setRandom(undefined);
    assert.equal(f.draw(), undefined);
    assert.equal(f.slowMs, 0);
    assert.throws(() => f.setRandom('bogus'), FaultSpecError);
  });

  it('random errors are 503 SlowDown or 500 InternalError', () => {
    const f = new OssFaultInjector('error:1,seed:3');
    const codes = new Set(Array.from({ length: 50 }, () => { const e = f.randomError(); assert.ok(e instanceof OssHttpError); return `${e.status} ${e.code}`; }));
    assert.deepEqual([...codes].sort(), ['500 InternalError', '503 SlowDown']);
  });

  it('damage truncates or flips exactly one byte of a copy, and leaves tiny bodies alone', () => {
    const f = new OssFaultInjector('seed:9');
    const body = Buffer.from('0123456789abcdef');
    const before = Buffer.from(body);
    for (let i = 0; i < 50; i++) {
      const t = f.damage(body, 'truncate')!;
      assert.ok(t.length < body.length && body.subarray(0, t.length).equals(t));
      const c = f.damage(body, 'corrupt')!;
      assert.equal(c.length, body.length);
      assert.equal([...c].filter((b, j) => b !== body[j]).length, 1);
    }
    assert.ok(body.equals(before), 'the original body is untouched');
    assert.equal(f.damage(Buffer.alloc(0), 'corrupt'), undefined);
    assert.equal(f.damage(Buffer.from('x'), 'truncate'), undefined);
    assert.equal(f.damage(Buffer.from('x'), 'corrupt')![0], 'x'.charCodeAt(0) ^ 0xff);
  });

  it('queued faults match by operation, in order, `times` times each, then clear', async () => {
    const f = new OssFaultInjector(undefined);
    f.inject({ operation: 'PutObject', status: 503, code: 'SlowDown', times: 2 });
    f.inject({ damage: 'corrupt' });
    f.inject({ operation: 'GetObject', status: 404 });
    // GetObject skips the PutObject fault and takes the first one for any operation.
    assert.equal(await f.applyQueued('GetObject'), 'corrupt');
    await assert.rejects(f.applyQueued('GetObject'), (e: unknown) => e instanceof OssHttpError && e.status === 404 && e.code === 'InjectedFault' && /injected fault \(GetObject\)/.test(e.message));
    assert.equal(await f.applyQueued('GetObject'), undefined);
    for (let i = 0; i < 2; i++) await assert.rejects(f.applyQueued('PutObject'), (e: unknown) => e instanceof OssHttpError && e.status === 503 && e.code === 'SlowDown');
    assert.equal(await f.applyQueued('PutObject'), undefined);
    f.inject({ status: 500 });
    f.clear();
    assert.equal(await f.applyQueued('DeleteObject'), undefined);
  });

  it('a queued delay is waited for before the fault applies', async () => {
    const f = new OssFaultInjector(undefined);
    f.inject({ delayMs: 60 });
    const t0 = performance.now();
    assert.equal(await f.applyQueued('HeadObject'), undefined);
    assert.ok(performance.now() - t0 >= 55);
  });
});
