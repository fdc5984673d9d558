import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CgroupQuotas, CpuLimiter, cpuShape } from '../../src/bench/emulation.ts';

/** CPU time (ms) a process has used: utime + stime from /proc/<pid>/stat, in clock ticks of 10 ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The process's cgroup (v1) in the cpu hierarchy, from /proc/<pid>/cgroup. */
function cpuCgroup(pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => /^\d+:([^:]*,)?cpu(,[^:]*)?:/.test(l));
  return line!.slice(line!.lastIndexOf(':') + 1);
}

/** Periods in which the group ran out of quota (cpu.stat nr_throttled). */
function throttledPeriods(group: string): number {
  return Number(/^nr_throttled (\d+)$/m.exec(readFileSync(join('/sys/fs/cgroup/cpu', group, 'cpu.stat'), 'utf8'))?.[1] ?? 0);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quotas = CgroupQuotas.open();
quotas?.close();

describe('vCPU emulation by CFS quota', () => {
  it('a busy process limited to 0.25 of a core uses at most a quarter of the wall time, and is throttled', { skip: quotas ? false : 'cpu cgroups cannot be created here', timeout: 20_000 }, async () => {
    const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    const limiter = new CpuLimiter(cpuShape(0.25, 2), { affinity: false });
    try {
      assert.equal(limiter.throttle, 'cgroup');
      await limiter.track([child.pid]);
      const group = cpuCgroup(child.pid!);
      assert.match(group, /^\/fc-tiled-cnn-bench-\d+-\w+\/p\d+$/);
      await sleep(200);
      const c0 = cpuMs(child.pid!);
      const t0 = performance.now();
      await sleep(1500);
      // Other load on the machine can only lower the share: the quota is an upper bound, and the
      // kernel's own count of throttled periods shows it at work.
      const share = (cpuMs(child.pid!) - c0) / (performance.now() - t0);
      assert.ok(share < 0.35, `share ${share.toFixed(2)}`);
      assert.ok(throttledPeriods(group) > 0);
      // Released, it is back in the root group, and its group is gone.
      limiter.stop();
      assert.equal(cpuCgroup(child.pid!), '/');
      assert.ok(!existsSync(join('/sys/fs/cgroup/cpu', group)));
    } finally {
      limiter.stop();
      child.kill('SIGKILL');
    }
    assert.equal(limiter.notes.length, 0, limiter.notes.join('; '));
  });

  it('leaves no cgroup behind, and signals remain the fallback', () => {
    const q = CgroupQuotas.open();
    if (q) {
      const dir = q.dir;
      assert.ok(existsSync(dir));
      q.close();
      assert.ok(!existsSync(dir));
    }
    const l = new CpuLimiter(cpuShape(0.5, 2), { affinity: false, throttle: 'signals' });
    assert.equal(l.throttle, 'signals');
    l.stop();
    const whole = new CpuLimiter(cpuShape(1, 2), { affinity: false });
    assert.equal(whole.throttle, undefined);
    whole.stop();
  });
});
