import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fcFaultsSchema, parseFcFaults } from '../../src/emulators/fc-faults.ts';
import { startFcServer } from '../../src/emulators/fc-server.ts';
import { emulatorCredentials } from '../../src/cloud/credentials.ts';

// test/invoke/fc2-invoker.test.ts covers the plain syntax, bounds, unknown names and repeats.
describe('parseFcFaults (FC_EMULATOR_FAULTS) edge cases', () => {
  it('spaces, stray commas, leading-dot and exponent fractions', () => {
    assert.deepEqual(parseFcFaults(' throttle:.5 , ,crash:1e-2 '), { throttle: 0.5, crash: 0.01 });
    assert.deepEqual(parseFcFaults(','), { throttle: 0, crash: 0 });
    assert.deepEqual(parseFcFaults('crash:1'), { throttle: 0, crash: 1 });
  });

  it('rejects negative values, "=" and empty values, quoting the spec', () => {
    for (const spec of ['throttle:-0.1', 'throttle=0.1', 'throttle:', 'throttle:0.1:2']) {
      assert.throws(() => parseFcFaults(spec), (e: Error) => e instanceof TypeError && e.message.startsWith(`FC_EMULATOR_FAULTS=${JSON.stringify(spec)}: `) && /<fault>:<fraction>/.test(e.message), spec);
    }
  });

  it('names a custom source in the error, and the field out of range', () => {
    assert.throws(() => parseFcFaults('crash:1.01', 'faults option'), /^TypeError: faults option="crash:1.01": crash: /);
  });

  it('the object form is strict and defaults to no faults', () => {
    assert.deepEqual(fcFaultsSchema.parse({}), { throttle: 0, crash: 0 });
    assert.equal(fcFaultsSchema.safeParse({ throttle: 0.1, slow: 0.1 }).success, false);
  });

  it('startFcServer refuses a bad spec before listening', async () => {
    await assert.rejects(
      startFcServer({ accountId: '1', region: 'cn-hangzhou', credentials: [emulatorCredentials()], logs: 'silent', functions: {}, faults: 'throttle:7' }),
      (e: Error) => e instanceof TypeError && /FC_EMULATOR_FAULTS="throttle:7": throttle/.test(e.message),
    );
  });
});
