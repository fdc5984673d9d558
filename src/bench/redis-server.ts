import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Redis } from 'ioredis';

/** A real redis-server in a temp dir on a free loopback port (no persistence), for tests and benchmarks. */
export interface RedisServer {
  url: string;
  port: number;
  /** A client for assertions (DBSIZE, KEYS); closed by stop(). */
  client: Redis;
  stop(): Promise<void>;
}

/** The redis-server binary on PATH (or /usr/bin), undefined if it is not installed. */
export function redisServerPath(): string | undefined {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin']) {
    const p = join(d, 'redis-server');
    try { accessSync(p, constants.X_OK); return p; } catch { /* next */ }
  }
  return undefined;
}

/** Passed to describe/it as `skip` when there is no redis-server: the reason says how to get one. */
export const skipWithoutRedis: string | false = redisServerPath() ? false : 'redis-server is not installed (Debian: apt-get install redis-server; .ci/run does)';

const freePort = () => new Promise<number>((resolve, reject) => {
  const s = createServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => resolve(port));
  });
});

export async function startRedis(): Promise<RedisServer> {
  const bin = redisServerPath();
  if (!bin) throw new Error(skipWithoutRedis as string);
  const dir = await mkdtemp(join(tmpdir(), 'fc-redis-'));
  let lastErr = '';
  // The free port may be taken between the probe and the bind: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const ready = await new Promise<boolean>((resolve) => {
      let out = '';
      const onData = (b: Buffer) => {
        out += b.toString('utf8');
        if (/Ready to accept connections/.test(out)) resolve(true);
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('exit', () => { lastErr = out.slice(-500); resolve(false); });
      setTimeout(() => { lastErr = `no ready line in 10 s: ${out.slice(-500)}`; resolve(false); }, 10_000).unref();
    });
    if (!ready) { await kill(proc); continue; }
    const url = `redis://127.0.0.1:${port}`;
    const client = new Redis(url, { protocol: 2, lazyConnect: false });
    await client.ping();
    return {
      url, port, client,
      async stop() {
        await client.quit().catch(() => client.disconnect());
        await kill(proc);
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`could not start redis-server: ${lastErr}`);
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}
