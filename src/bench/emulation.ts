/**
 * Local emulation of an FC instance's vCPU share, applied from outside to worker processes (and
 * the monolithic baseline process) by pid:
 * - ORT intra-op threads = ceil(vCPU), at most the machine's cores (WORKER_THREADS);
 * - CPU affinity: each instance is pinned (`taskset -a -c -p`) to that many cores, instances
 *   spread round-robin over the machine's cores;
 * - fractional vCPU: a CFS bandwidth quota, FC's own mechanism: each instance in its own cpu
 *   cgroup with `vcpu * 100 ms` of CPU time per 100 ms period (cgroup v1 `cpu.cfs_quota_us`, where
 *   this process may create cgroups, as root in a container). An instance runs whenever it has
 *   quota left and is throttled to the period's end once it has used it. Elsewhere, a duty cycle:
 *   SIGCONT for vcpu/threads of every 100 ms period and SIGSTOP for the rest (what cpulimit does),
 *   instances' on-windows staggered. It stops an instance for its off-window even when it was idle
 *   and has used nothing, so short bursty stages wait far longer than under a quota.
 * Limits (docs/bench.md): instances still share the machine's cores, so more busy instances than
 * cores run slower than FC instances would; new instances are pinned when `track` next sees them.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CpuShape {
  /** ORT intra-op threads. */
  threads: number;
  /** Cores each instance is pinned to (0 = no pinning). */
  coresPerInstance: number;
  /** Share of each period an instance may run (1 = never stopped). */
  duty: number;
}

export function cpuShape(vcpu: number, cores = availableParallelism(), opts: { affinity?: boolean; throttle?: boolean } = {}): CpuShape {
  const threads = Math.min(cores, Math.max(1, Math.ceil(vcpu - 1e-9)));
  const duty = opts.throttle === false ? 1 : Math.min(1, vcpu / threads);
  return { threads, coresPerInstance: opts.affinity === false ? 0 : threads, duty };
}

/** How fractional vCPU is enforced: a CFS quota per instance (cgroup), or SIGSTOP/SIGCONT windows. */
export type Throttle = 'cgroup' | 'signals';

const CGROUP_CPU = '/sys/fs/cgroup/cpu';
export const QUOTA_PERIOD_US = 100_000;

/**
 * A cpu cgroup (v1) per instance under one directory of this process's, with a CFS quota.
 * `open` returns undefined where cgroups cannot be made (not root, cgroup v2 only, read-only).
 */
export class CgroupQuotas {
  private readonly groups = new Map<number, string>();
  private constructor(readonly dir: string) {}

  static open(root = CGROUP_CPU): CgroupQuotas | undefined {
    const dir = join(root, `fc-tiled-cnn-bench-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    try {
      readFileSync(join(root, 'cpu.cfs_quota_us'), 'utf8');
      mkdirSync(dir);
    } catch {
      return undefined;
    }
    return new CgroupQuotas(dir);
  }

  /** Moves `pid` (all its threads) into its own group with `cores` of CPU time per period. */
  limit(pid: number, cores: number): void {
    const g = join(this.dir, `p${pid}`);
    mkdirSync(g, { recursive: true });
    writeFileSync(join(g, 'cpu.cfs_period_us'), String(QUOTA_PERIOD_US));
    writeFileSync(join(g, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(cores * QUOTA_PERIOD_US))));
    writeFileSync(join(g, 'cgroup.procs'), String(pid));
    this.groups.set(pid, g);
  }

  /** Gives `pid` back the machine (it returns to the root group) and removes its group. */
  release(pid: number): void {
    const g = this.groups.get(pid);
    if (!g) return;
    this.groups.delete(pid);
    try { writeFileSync(join(this.dir, '..', 'cgroup.procs'), String(pid)); } catch { /* exited */ }
    try { rmdirSync(g); } catch { /* a task that was exiting is still listed: close() removes the group */ }
  }

  /** Releases every instance and removes this process's directory. Idempotent. */
  close(): void {
    for (const pid of [...this.groups.keys()]) this.release(pid);
    let left: string[] = [];
    try { left = readdirSync(this.dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { /* gone */ }
    for (const name of left) try { rmdirSync(join(this.dir, name)); } catch { /* still has a task */ }
    try { rmdirSync(this.dir); } catch { /* gone */ }
  }
}

let tasksetChecked: Promise<boolean> | undefined;
/** Whether `taskset` exists and can change this machine's affinities. */
export function tasksetAvailable(): Promise<boolean> {
  tasksetChecked ??= run('taskset', ['-p', String(process.pid)]).then(() => true, () => false);
  return tasksetChecked;
}

export class CpuLimiter {
  private readonly pinned = new Set<number>();
  private readonly throttled = new Map<number, { timer?: NodeJS.Timeout; stopped: boolean }>();
  private readonly quotas: CgroupQuotas | undefined;
  private seq = 0;
  private stopped = false;
  readonly notes: string[] = [];

  constructor(private readonly shape: CpuShape, private readonly opts: { cores?: number; periodMs?: number; affinity: boolean; throttle?: Throttle } = { affinity: true }) {
    if (shape.duty < 1 && opts.throttle !== 'signals') {
      this.quotas = CgroupQuotas.open();
      if (!this.quotas) this.notes.push('cpu cgroups cannot be created here (root and cgroup v1 needed): fractional vCPU is a SIGSTOP/SIGCONT duty cycle, not a CFS quota');
    }
    process.once('exit', this.onExit);
  }

  /** How fractional vCPU is enforced on this machine (undefined: not throttled). */
  get throttle(): Throttle | undefined {
    return this.shape.duty >= 1 ? undefined : this.quotas ? 'cgroup' : 'signals';
  }

  /** Pins and starts throttling every pid not seen before; forgets pids that are gone. */
  async track(pids: Iterable<number | undefined>): Promise<void> {
    if (this.stopped) return;
    const live = new Set<number>();
    for (const pid of pids) if (pid !== undefined) live.add(pid);
    for (const pid of [...this.throttled.keys()]) if (!live.has(pid)) this.untrack(pid);
    for (const pid of [...this.pinned]) if (!live.has(pid)) this.pinned.delete(pid);
    for (const pid of live) {
      if (this.pinned.has(pid) || this.throttled.has(pid)) continue;
      const slot = this.seq++;
      this.pinned.add(pid);
      if (this.opts.affinity && this.shape.coresPerInstance > 0) await this.pin(pid, slot);
      if (this.shape.duty < 1) {
        if (this.quotas) this.limitByQuota(pid);
        else this.startThrottle(pid, slot);
      }
    }
  }

  private async pin(pid: number, slot: number): Promise<void> {
    if (!(await tasksetAvailable())) {
      if (!this.notes.length) this.notes.push('taskset is not available: CPU affinity not emulated');
      return;
    }
    const cores = this.opts.cores ?? availableParallelism();
    const k = Math.min(cores, this.shape.coresPerInstance);
    const list = Array.from({ length: k }, (_, i) => (slot * k + i) % cores).sort((a, b) => a - b).join(',');
    try {
      await run('taskset', ['-a', '-c', '-p', list, String(pid)]);
    } catch (e) {
      // The process may have exited meanwhile; anything else is worth a note.
      if (isAlive(pid)) this.notes.push(`taskset on pid ${pid} failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }

  private limitByQuota(pid: number): void {
    try {
      this.quotas!.limit(pid, this.shape.duty * this.shape.threads);
      this.throttled.set(pid, { stopped: false });
    } catch (e) {
      if (isAlive(pid)) this.notes.push(`cpu quota for pid ${pid} failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }

  private startThrottle(pid: number, slot: number): void {
    const period = this.opts.periodMs ?? 100;
    const on = Math.max(1, this.shape.duty * period);
    const off = Math.max(1, period - on);
    const st: { timer?: NodeJS.Timeout; stopped: boolean } = { stopped: false };
    this.throttled.set(pid, st);
    const cycle = () => {
      if (!this.throttled.has(pid)) return;
      if (!signal(pid, 'SIGCONT')) return void this.throttled.delete(pid);
      st.stopped = false;
      st.timer = setTimeout(() => {
        if (!this.throttled.has(pid)) return;
        if (!signal(pid, 'SIGSTOP')) return void this.throttled.delete(pid);
        st.stopped = true;
        st.timer = setTimeout(cycle, off);
        st.timer.unref();
      }, on);
      st.timer.unref();
    };
    // Stagger on-windows across instances.
    const offset = ((slot * period) / 4) % period;
    st.timer = setTimeout(cycle, offset);
    st.timer.unref();
  }

  private untrack(pid: number): void {
    const st = this.throttled.get(pid);
    if (st) {
      clearTimeout(st.timer);
      this.throttled.delete(pid);
      if (this.quotas) this.quotas.release(pid);
      else signal(pid, 'SIGCONT');
    }
  }

  /** Stops throttling and resumes every process. Idempotent. */
  stop(): void {
    this.stopped = true;
    for (const pid of [...this.throttled.keys()]) this.untrack(pid);
    this.quotas?.close();
    process.removeListener('exit', this.onExit);
  }

  private readonly onExit = () => {
    if (this.quotas) this.quotas.close();
    else for (const pid of this.throttled.keys()) signal(pid, 'SIGCONT');
  };
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
