/**
 * The FC emulator's injected faults (FC_EMULATOR_FAULTS): `throttle` refuses a fraction of
 * invocations with 429 ResourceThrottled; `crash` SIGKILLs the instance serving a fraction of them.
 */
import { z } from 'zod';
import type { InvokeResult } from '../invoke/invoker.ts';
import { describeIssues } from '../zod-issues.ts';
import type { ProcessPoolInvoker } from '../invoke/process-pool.ts';

/** Fractions of invocations that get each fault. */
export const fcFaultsSchema = z.object({
  throttle: z.number().min(0).max(1).default(0),
  crash: z.number().min(0).max(1).default(0),
}).strict();
export type FcFaults = z.infer<typeof fcFaultsSchema>;

/** `throttle:0.05,crash:0.01` (the FC_EMULATOR_FAULTS syntax); an empty string means none. */
export const fcFaultsSpecSchema = z.string().transform((spec, ctx) => {
  const out: Record<string, number> = {};
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z]+):([0-9]*\.?[0-9]+(?:e-?\d+)?)$/i.exec(part);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not <fault>:<fraction> (e.g. throttle:0.05,crash:0.01)` });
      return z.NEVER;
    }
    if (Object.hasOwn(out, m[1])) {
      ctx.addIssue({ code: 'custom', message: `fault ${m[1]} given twice` });
      return z.NEVER;
    }
    out[m[1]] = Number(m[2]);
  }
  return out;
}).pipe(fcFaultsSchema);

/** Parse FC_EMULATOR_FAULTS; the error names the variable and what was wrong. */
export function parseFcFaults(spec: string | undefined, what = 'FC_EMULATOR_FAULTS'): FcFaults {
  const r = fcFaultsSpecSchema.safeParse(spec ?? '');
  if (!r.success) throw new TypeError(`${what}=${JSON.stringify(spec)}: ${describeIssues(r.error.issues, { root: '(spec)' })}`);
  return r.data;
}

/**
 * Crash fault: SIGKILL the instance running this call, a few ms into it. The pool does not say
 * which instance took a call, so the victim is a busy instance of the function that was not
 * busy before the call: the call's own when it runs alone, and one call's either way.
 */
export function busyInstances(pool: ProcessPoolInvoker, functionName: string) {
  return (pool.stats()[functionName]?.instances ?? []).filter((i) => i.state === 'busy' && i.pid !== undefined);
}
export function killMidCall(
  pool: ProcessPoolInvoker, functionName: string, call: Promise<InvokeResult>, before: Set<string>, random: () => number, onKill: () => void,
): void {
  const busyNow = () => busyInstances(pool, functionName);
  let settled = false;
  call.then(() => { settled = true; }, () => { settled = true; });
  const deadline = Date.now() + 30_000;
  const poll = () => {
    if (settled || Date.now() > deadline) return;
    const busy = busyNow();
    const victim = busy.find((i) => !before.has(i.instanceId)) ?? (busy.length === before.size ? undefined : busy[0]);
    if (!victim) {
      setTimeout(poll, 5).unref();
      return;
    }
    setTimeout(() => {
      if (settled) return;
      try {
        process.kill(victim.pid!, 'SIGKILL');
        onKill();
      } catch {
        /* already gone */
      }
    }, Math.floor(random() * 10)).unref();
  };
  setTimeout(poll, 1).unref();
}
