// Fitting the cost model's constants to measured latencies: pure, so tests run it on synthetic rows
// and the calibration harness (src/calibrate) runs it on the real stack's.
import type { Plan } from '../plan/schema.ts';
import { predictPlan, type CostProfile } from './model.ts';

/** One measured configuration of the fit: the plan, its settings, and the handler's median latency. */
export interface FitRow { plan: Plan; vcpu: number; memoryMb: number; batch: number; workers: number; measuredMs: number; label: string }

/** The constants the fit sets, and the worst and mean |log(predicted / measured)| it reached. */
export interface FitResult { params: Pick<CostProfile, 'effectiveCores' | 'invokeOverheadMs' | 'stageOverheadMs' | 'throttleRoundMs'>; worstLogError: number; meanLogError: number }

/**
 * Fits four constants of `base` so that predictions match `rows`: the CPU the busy workers get
 * together (`effectiveCores`: they share the machine with the handler, the master, the bench and
 * anything else running; one worker alone runs at the micro-benchmarked speed of its vCPU), the cost of a worker invocation (scheduling, IPC, JSON), the per-tile, per-stage work
 * that does not scale with FLOPs or batch (session call, crops, codec copies), and the wait a
 * fractional-vCPU worker loses per stage to its duty cycle. Least squares of the log ratios, by
 * coordinate search; pure, so tests can run it on synthetic rows.
 */
export function fitProfile(base: CostProfile, rows: FitRow[]): FitResult {
  const predictWith = (q: number[]) => {
    const prof: CostProfile = { ...base, effectiveCores: q[0], invokeOverheadMs: q[1], throttleRoundMs: q[2], stageOverheadMs: q[3] };
    const errs = rows.map((r) => Math.abs(Math.log(predictPlan(r.plan, { profile: prof, vcpu: r.vcpu, memoryMb: r.memoryMb, batch: r.batch, concurrency: r.workers }).latencyMs / r.measuredMs)));
    return { worst: Math.max(...errs), mean: errs.reduce((a, b) => a + b, 0) / errs.length, squares: errs.reduce((a, b) => a + b * b, 0) };
  };
  // Least squares of the log ratios: smooth, so a coordinate search converges.
  const score = (q: number[]) => predictWith(q).squares;
  // A stage cannot wait longer than the whole stopped part of a 100 ms duty-cycle period.
  // Under a CPU-time quota nothing waits for a window: the duty cycle's wait is not fitted.
  const bounds: [number, number][] = [[0.1, base.maxParallelWorkers], [0, 150], base.cpuQuotaPeriodMs === undefined ? [0, 100] : [0, 0], [0, 50]];
  const q = [base.effectiveCores ?? base.maxParallelWorkers, base.invokeOverheadMs, 0, base.stageOverheadMs ?? 0];
  for (let sweep = 0; sweep < 16; sweep++) {
    for (let i = 0; i < q.length; i++) {
      // Golden-section search on one coordinate (the score is unimodal enough in each).
      let [lo, hi] = bounds[i];
      const g = (Math.sqrt(5) - 1) / 2;
      const at = (v: number) => { const t = q.slice(); t[i] = v; return score(t); };
      let a = hi - g * (hi - lo);
      let b = lo + g * (hi - lo);
      let fa = at(a);
      let fb = at(b);
      for (let k = 0; k < 22; k++) {
        if (fa < fb) { hi = b; b = a; fb = fa; a = hi - g * (hi - lo); fa = at(a); } else { lo = a; a = b; fa = fb; b = lo + g * (hi - lo); fb = at(b); }
      }
      const v = (lo + hi) / 2;
      if (at(v) < score(q)) q[i] = v;
    }
  }
  const e = predictWith(q);
  return {
    params: { effectiveCores: +q[0].toFixed(3), invokeOverheadMs: +q[1].toFixed(2), throttleRoundMs: +q[2].toFixed(2), stageOverheadMs: +q[3].toFixed(2) },
    worstLogError: e.worst, meanLogError: e.mean,
  };
}
