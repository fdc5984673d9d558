import type { ProcessPoolInvoker } from '../invoke/process-pool.ts';
import { mulberry32 } from '../onnx/builder.ts';

export interface Killer {
  /** Stops killing; resolves with what was killed. */
  stop(): { kills: number; busyKills: number };
}

/**
 * Kills a random live instance of `functionName` (starting, idle or busy) every `everyMs` with
 * SIGKILL, as a machine failure or FC's OOM killer would. The pool notices the exit and the
 * caller's retries do the rest; `busyKills` counts the kills that cut an invocation short.
 */
export function startKiller(pool: ProcessPoolInvoker, functionName: string, everyMs: number, seed = 1): Killer {
  const rand = mulberry32(seed);
  let kills = 0;
  let busyKills = 0;
  const timer = setInterval(() => {
    const alive = (pool.stats()[functionName]?.instances ?? []).filter((i) => i.pid !== undefined && i.state !== 'dead');
    if (!alive.length) return;
    const victim = alive[Math.floor(rand() * alive.length)];
    try {
      process.kill(victim.pid!, 'SIGKILL');
      kills++;
      if (victim.state === 'busy') busyKills++;
    } catch {
      // It exited on its own meanwhile.
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return { kills, busyKills };
    },
  };
}
