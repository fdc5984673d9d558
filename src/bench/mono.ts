/** Parent side of the monolithic baseline: a forked mono-child.ts process, emulated like a worker. */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { MonoReply, MonoRequest } from './mono-child.ts';

const CHILD = fileURLToPath(new URL('./mono-child.ts', import.meta.url));

export interface MonoRun { times: number[]; output: { dims: number[]; data: Float32Array }; maxRssMb: number }

export class MonoProcess {
  private child: ChildProcess;
  private seq = 0;
  private pending = new Map<number, { resolve: (r: MonoRun) => void; reject: (e: Error) => void }>();
  private exited = false;
  readonly ready: Promise<void>;

  constructor() {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    this.child = fork(CHILD, [], { execArgv: ['--import', import.meta.resolve('tsx')], env, serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (d: string) => { stderr = (stderr + d).slice(-2000); });
    this.ready = new Promise((resolve, reject) => {
      this.child.once('message', () => resolve());
      this.child.once('exit', (code, sig) => reject(new Error(`monolithic process exited (${code ?? sig}) before it was ready: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)));
    });
    this.ready.catch(() => undefined);
    this.child.on('message', (m: MonoReply | { t: 'ready' }) => {
      if (m.t === 'ready') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.t === 'result') p.resolve({ times: m.times, output: m.output, maxRssMb: m.maxRssMb });
      else p.reject(new Error(m.message));
    });
    this.child.on('exit', (code, sig) => {
      this.exited = true;
      const why = new Error(`monolithic process exited (${code ?? sig})${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`);
      for (const p of this.pending.values()) p.reject(why);
      this.pending.clear();
    });
  }

  get pid(): number | undefined { return this.exited ? undefined : this.child.pid; }

  async run(req: Omit<MonoRequest, 't' | 'id'>): Promise<MonoRun> {
    await this.ready;
    if (this.exited) throw new Error('monolithic process has exited');
    const id = ++this.seq;
    return new Promise<MonoRun>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ t: 'run', id, ...req } satisfies MonoRequest);
    });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    try { process.kill(this.child.pid!, 'SIGCONT'); } catch { /* gone */ }
    this.child.kill('SIGKILL');
    await done;
  }
}
