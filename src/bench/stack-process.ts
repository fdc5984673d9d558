/**
 * The local stack as `npm start` runs it (scripts/serve.ts): in its own process, so that the
 * bench's client and its monolithic runs do not share the gateway's event loop. In one process,
 * sending a 12.6 MB request and receiving it take turns on one thread.
 */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SERVE = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'scripts/serve.ts');

export interface StackProcess {
  url: string;
  close(): Promise<void>;
}

export async function startStackProcess(env: Record<string, string | undefined>, opts: { readyTimeoutMs?: number } = {}): Promise<StackProcess> {
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined) childEnv[k] = v;
  // The loader comes from execArgv; an inherited NODE_OPTIONS would load it twice.
  delete childEnv.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), SERVE], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => { stderr = (stderr + d).slice(-4000); });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolveUrl, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the stack did not start within ${opts.readyTimeoutMs ?? 120_000} ms: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)), opts.readyTimeoutMs ?? 120_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      const m = /^ready: (\S+)/m.exec(out);
      if (m) { clearTimeout(timer); resolveUrl(m[1]); }
    });
    child.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`the stack exited (${code ?? sig}) before it was ready: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)); });
  }).catch(async (e: unknown) => { child.kill('SIGKILL'); await exited; throw e; });
  child.stdout.resume();
  return {
    url,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // SIGTERM: the stack closes its instances and servers; SIGKILL if it hangs.
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}
