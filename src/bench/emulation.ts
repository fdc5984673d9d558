/**
 * Local emulation of an FC instance's vCPU share, applied from outside to worker processes (and
 * the monolithic baseline process) by pid:
 * - ORT intra-op threads = ceil(vCPU), at most the machine's cores (WORKER_THREADS);
 * - CPU affinity: each instance is pinned (`taskset -a -c -p`) to that many cores, instances
 *   spread round-robin over the machine's cores;
 * - fractional vCPU: a duty cycle, SIGCONT for vcpu/threads of every 100 ms period and SIGSTOP for
 *   the rest (what cpulimit does; FC and CFS quotas also throttle per period). Instances' on-windows
 *   are staggered so that they do not all stop at once.
 * Limits (docs/bench.md): instances still share the machine's cores, so more busy instances than
 * cores run slower than FC instances would; new instances are pinned when `track` next sees them.
 */
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
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

let tasksetChecked: Promise<boolean> | undefined;
/** Whether `taskset` exists and can change this machine's affinities. */
export function tasksetAvailable(): Promise<boolean> {
  tasksetChecked ??= run('taskset', ['-p', String(process.pid)]).then(() => true, () => false);
  return tasksetChecked;
}

export class CpuLimiter {
  private readonly pinned = new Set<number>();
  private readonly throttled = new Map<number, { timer?: NodeJS.Timeout; stopped: boolean }>();
  private seq = 0;
  private stopped = false;
  readonly notes: string[] = [];

  constructor(private readonly shape: CpuShape, private readonly opts: { cores?: number; periodMs?: number; affinity: boolean } = { affinity: true }) {
    process.once('exit', this.onExit);
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
      if (this.shape.duty < 1) this.startThrottle(pid, slot);
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
      signal(pid, 'SIGCONT');
    }
  }

  /** Stops throttling and resumes every process. Idempotent. */
  stop(): void {
    this.stopped = true;
    for (const pid of [...this.throttled.keys()]) this.untrack(pid);
    process.removeListener('exit', this.onExit);
  }

  private readonly onExit = () => {
    for (const pid of this.throttled.keys()) signal(pid, 'SIGCONT');
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
