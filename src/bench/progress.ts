/**
 * The bench's progress display on stderr: configurations done / total, elapsed, ETA and the
 * current configuration. Everything goes through `createProgress`, so a library bar
 * (e.g. cli-progress) can replace this small one without touching the runner.
 */

export interface Progress {
  start(total: number): void;
  /** `done` configurations finished; `label` is what runs now. */
  update(done: number, label: string): void;
  /** A line printed above the bar. */
  log(line: string): void;
  stop(): void;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** ETA from the mean time per finished configuration (undefined before the first one). */
export function eta(elapsedMs: number, done: number, total: number): number | undefined {
  if (done <= 0) return undefined;
  return (elapsedMs / done) * Math.max(0, total - done);
}

export function renderBar(done: number, total: number, elapsedMs: number, label: string, width = 24): string {
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.round(frac * width);
  const e = eta(elapsedMs, done, total);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${done}/${total} ${String(Math.round(frac * 100)).padStart(3)}% elapsed ${formatDuration(elapsedMs)} ETA ${e === undefined ? '--' : formatDuration(e)}  ${label}`;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = Boolean(stream.isTTY);
  let total = 0;
  let done = 0;
  let label = '';
  let t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const cols = () => (tty ? Math.max(40, (stream.columns ?? 120) - 1) : Infinity);
  const line = () => {
    const s = renderBar(done, total, performance.now() - t0, label);
    return s.length > cols() ? s.slice(0, cols()) : s;
  };
  const draw = () => { if (tty) stream.write(`\r\x1b[2K${line()}`); };
  return {
    start(n) {
      total = n;
      t0 = performance.now();
      if (tty) { timer = setInterval(draw, 1000); timer.unref(); draw(); }
    },
    update(d, l) {
      done = d;
      label = l;
      if (tty) draw();
      else stream.write(`${line()}\n`);
    },
    log(msg) {
      if (tty) stream.write(`\r\x1b[2K${msg}\n`);
      else stream.write(`${msg}\n`);
      draw();
    },
    stop() {
      if (timer) clearInterval(timer);
      if (tty) stream.write(`\r\x1b[2K${line()}\n`);
    },
  };
}
