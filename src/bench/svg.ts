/**
 * Inline SVG charts for the self-contained report: heatmaps, grouped bar charts, line charts.
 * No xmlns (inline SVG in HTML does not need it, and the report must not contain URLs);
 * `standaloneSvg` adds it for rendering a chart on its own.
 */

export const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
// Viridis stops: perceptually ordered, readable in grey.
const VIRIDIS = ['#440154', '#3b528b', '#21918c', '#5ec962', '#fde725'];

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

export function fmtNum(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 10000) return `${(v / 1000).toFixed(a >= 100000 ? 0 : 1)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

function hex(c: string): [number, number, number] {
  return [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)) as [number, number, number];
}

/** Colour of t in [0, 1] on the viridis ramp. */
export function rampColor(t: number): string {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = hex(VIRIDIS[i]);
  const b = hex(VIRIDIS[i + 1]);
  return `#${a.map((v, k) => Math.round(v + (b[k] - v) * f).toString(16).padStart(2, '0')).join('')}`;
}

function textOn(bg: string): string {
  const [r, g, b] = hex(bg);
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#111' : '#fff';
}

/** Round axis ticks (1, 2, 5 x 10^k steps) from 0 to at least `max`. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

const svgOpen = (w: number, h: number, label: string) =>
  `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(label)}" ${FONT} font-size="12">`;

function title(t: string, w: number): string {
  return `<text x="${w / 2}" y="18" text-anchor="middle" font-size="14" font-weight="600">${esc(t)}</text>`;
}

/** Legend items laid out left to right, wrapping at `maxX`; returns the SVG and its height. */
function legend(items: { name: string; swatch: (x: number, y: number) => string }[], x0: number, y0: number, maxX: number): { svg: string; height: number } {
  if (items.length < 2) return { svg: '', height: 0 };
  let x = x0;
  let y = y0;
  const parts: string[] = [];
  for (const it of items) {
    const iw = 26 + it.name.length * 6.5;
    if (x > x0 && x + iw > maxX) { x = x0; y += 16; }
    parts.push(`${it.swatch(x, y)}<text x="${x + 16}" y="${y + 9}" font-size="11">${esc(it.name)}</text>`);
    x += iw;
  }
  return { svg: parts.join(''), height: y - y0 + 20 };
}

export interface HeatmapSpec {
  title: string;
  rowLabel: string;
  colLabel: string;
  rows: string[];
  cols: string[];
  /** values[r][c]; undefined cells are drawn hatched as "n/a". */
  values: (number | undefined)[][];
  unit?: string;
  fmt?: (v: number) => string;
}

let uid = 0;

export function heatmap(s: HeatmapSpec): string {
  const hatch = `hatch${++uid}`;
  const cw = Math.max(64, Math.min(110, 520 / Math.max(1, s.cols.length)));
  const ch = 34;
  const left = 20 + Math.max(50, 7 * Math.max(...s.rows.map((r) => r.length), 4));
  const top = 48;
  const w = left + cw * s.cols.length + 90;
  const h = top + ch * s.rows.length + 46;
  const vals = s.values.flat().filter((v): v is number => v !== undefined && Number.isFinite(v));
  const lo = vals.length ? Math.min(...vals) : 0;
  const hi = vals.length ? Math.max(...vals) : 1;
  const fmt = s.fmt ?? fmtNum;
  const parts = [svgOpen(w, h, s.title), title(s.title, w)];
  parts.push(`<defs><pattern id="${hatch}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f2f2f2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#ccc" stroke-width="2"/></pattern></defs>`);
  s.cols.forEach((c, j) => parts.push(`<text x="${left + cw * j + cw / 2}" y="${top - 8}" text-anchor="middle">${esc(c)}</text>`));
  s.rows.forEach((r, i) => {
    parts.push(`<text x="${left - 8}" y="${top + ch * i + ch / 2 + 4}" text-anchor="end">${esc(r)}</text>`);
    s.cols.forEach((_, j) => {
      const v = s.values[i]?.[j];
      const x = left + cw * j;
      const y = top + ch * i;
      if (v === undefined || !Number.isFinite(v)) {
        parts.push(`<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="url(#${hatch})"/><text x="${x + cw / 2 - 1}" y="${y + ch / 2 + 4}" text-anchor="middle" fill="#888">n/a</text>`);
        return;
      }
      const bg = rampColor(hi > lo ? (v - lo) / (hi - lo) : 0.5);
      parts.push(`<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="${bg}"><title>${esc(`${s.rows[i]}, ${s.cols[j]}: ${fmt(v)}${s.unit ? ` ${s.unit}` : ''}`)}</title></rect>`);
      parts.push(`<text x="${x + cw / 2 - 1}" y="${y + ch / 2 + 4}" text-anchor="middle" fill="${textOn(bg)}">${esc(fmt(v))}</text>`);
    });
  });
  parts.push(`<text x="${left + (cw * s.cols.length) / 2}" y="${h - 12}" text-anchor="middle" fill="#444">${esc(s.colLabel)}</text>`);
  parts.push(`<text x="14" y="${top + (ch * s.rows.length) / 2}" text-anchor="middle" fill="#444" transform="rotate(-90 14 ${top + (ch * s.rows.length) / 2})">${esc(s.rowLabel)}</text>`);
  // Colour scale.
  const sx = left + cw * s.cols.length + 24;
  const sh = Math.max(60, ch * s.rows.length);
  for (let k = 0; k < 20; k++) parts.push(`<rect x="${sx}" y="${top + (sh * (19 - k)) / 20}" width="14" height="${sh / 20 + 0.5}" fill="${rampColor(k / 19)}"/>`);
  parts.push(`<text x="${sx + 18}" y="${top + 10}" font-size="10">${esc(fmt(hi))}</text><text x="${sx + 18}" y="${top + sh}" font-size="10">${esc(fmt(lo))}</text>`);
  if (s.unit) parts.push(`<text x="${sx}" y="${top - 8}" font-size="10" fill="#444">${esc(s.unit)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

export interface BarSeries { name: string; values: (number | undefined)[]; color?: string; hatch?: boolean }

export interface BarSpec {
  title: string;
  categories: string[];
  series: BarSeries[];
  yLabel?: string;
  fmt?: (v: number) => string;
  /** Draw value labels on the bars (default when there are few bars). */
  labels?: boolean;
  /** Horizontal reference line, e.g. 1.0 for ratios. */
  ref?: { value: number; label: string };
}

export function barChart(s: BarSpec): string {
  const n = s.categories.length;
  const k = Math.max(1, s.series.length);
  const bw = Math.max(8, Math.min(34, 300 / Math.max(1, n * k)));
  const gw = bw * k + 14;
  const rotate = n > 4 && Math.max(...s.categories.map((c) => c.length)) * 6.5 > gw;
  const left = 62;
  const plotH = 200;
  const bottom = rotate ? 20 + Math.min(120, Math.max(...s.categories.map((c) => c.length)) * 5.5) : 44;
  const w = Math.max(360, left + gw * n + 24);
  const leg = legend(s.series.map((se, i) => ({
    name: se.name,
    swatch: (x: number, y: number) => `<rect x="${x}" y="${y}" width="10" height="10" fill="${se.color ?? PALETTE[i % PALETTE.length]}"${se.hatch ? ' fill-opacity="0.45" stroke="#333" stroke-dasharray="2 2"' : ''}/>`,
  })), left, 28, w - 8);
  const top = 30 + leg.height;
  const h = top + plotH + bottom;
  const vals = s.series.flatMap((x) => x.values).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const maxV = Math.max(vals.length ? Math.max(...vals) : 1, s.ref?.value ?? 0);
  const ticks = niceTicks(maxV);
  const top1 = ticks[ticks.length - 1] || 1;
  const y = (v: number) => top + plotH - (Math.max(0, v) / top1) * plotH;
  const fmt = s.fmt ?? fmtNum;
  const labels = s.labels ?? n * k <= 24;
  const parts = [svgOpen(w, h, s.title), title(s.title, w), leg.svg];
  for (const t of ticks) {
    parts.push(`<line x1="${left}" x2="${w - 12}" y1="${y(t)}" y2="${y(t)}" stroke="#e5e5e5"/><text x="${left - 6}" y="${y(t) + 4}" text-anchor="end" font-size="10" fill="#555">${esc(fmt(t))}</text>`);
  }
  if (s.yLabel) parts.push(`<text x="14" y="${top + plotH / 2}" text-anchor="middle" fill="#444" transform="rotate(-90 14 ${top + plotH / 2})">${esc(s.yLabel)}</text>`);
  s.categories.forEach((c, i) => {
    const gx = left + 8 + gw * i;
    s.series.forEach((se, j) => {
      const v = se.values[i];
      const x = gx + bw * j;
      if (v === undefined || !Number.isFinite(v)) {
        parts.push(`<text x="${x + bw / 2}" y="${top + plotH - 3}" text-anchor="middle" font-size="9" fill="#999">–</text>`);
        return;
      }
      const color = se.color ?? PALETTE[j % PALETTE.length];
      parts.push(`<rect x="${x}" y="${y(v)}" width="${bw - 2}" height="${Math.max(0.5, top + plotH - y(v))}" fill="${color}"${se.hatch ? ' fill-opacity="0.45" stroke="#333" stroke-dasharray="2 2"' : ''}><title>${esc(`${c} / ${se.name}: ${fmt(v)}`)}</title></rect>`);
      if (labels) parts.push(`<text x="${x + (bw - 2) / 2}" y="${y(v) - 3}" text-anchor="middle" font-size="9" fill="#333">${esc(fmt(v))}</text>`);
    });
    const cx = gx + (bw * k) / 2;
    const ly = top + plotH + 14;
    parts.push(rotate
      ? `<text x="${cx}" y="${ly}" text-anchor="end" font-size="10" transform="rotate(-35 ${cx} ${ly})">${esc(c)}</text>`
      : `<text x="${cx}" y="${ly}" text-anchor="middle" font-size="11">${esc(c)}</text>`);
  });
  parts.push(`<line x1="${left}" x2="${w - 12}" y1="${top + plotH}" y2="${top + plotH}" stroke="#888"/>`);
  if (s.ref) parts.push(`<line x1="${left}" x2="${w - 12}" y1="${y(s.ref.value)}" y2="${y(s.ref.value)}" stroke="#c00" stroke-dasharray="5 3"/><text x="${w - 14}" y="${y(s.ref.value) - 4}" text-anchor="end" font-size="10" fill="#c00">${esc(s.ref.label)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

export interface LineSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  x: number[];
  series: { name: string; values: (number | undefined)[]; color?: string; dashed?: boolean }[];
  fmt?: (v: number) => string;
}

export function lineChart(s: LineSpec): string {
  const left = 62;
  const plotW = 380;
  const plotH = 200;
  const w = left + plotW + 30;
  const leg = legend(s.series.map((se, i) => ({
    name: se.name,
    swatch: (x: number, y: number) => `<line x1="${x - 2}" x2="${x + 12}" y1="${y + 5}" y2="${y + 5}" stroke="${se.color ?? PALETTE[i % PALETTE.length]}" stroke-width="2"${se.dashed ? ' stroke-dasharray="4 3"' : ''}/>`,
  })), left, 28, w - 8);
  const top = 30 + leg.height;
  const h = top + plotH + 48;
  const vals = s.series.flatMap((x) => x.values).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const ticks = niceTicks(vals.length ? Math.max(...vals) : 1);
  const top1 = ticks[ticks.length - 1] || 1;
  const xs = [...s.x];
  const xmin = Math.min(...xs);
  const xmax = Math.max(...xs);
  const px = (v: number) => left + (xmax > xmin ? ((v - xmin) / (xmax - xmin)) * plotW : plotW / 2);
  const py = (v: number) => top + plotH - (v / top1) * plotH;
  const fmt = s.fmt ?? fmtNum;
  const parts = [svgOpen(w, h, s.title), title(s.title, w), leg.svg];
  for (const t of ticks) parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${py(t)}" y2="${py(t)}" stroke="#e5e5e5"/><text x="${left - 6}" y="${py(t) + 4}" text-anchor="end" font-size="10" fill="#555">${esc(fmt(t))}</text>`);
  for (const v of xs) parts.push(`<text x="${px(v)}" y="${top + plotH + 16}" text-anchor="middle" font-size="11">${esc(String(v))}</text>`);
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#888"/>`);
  s.series.forEach((se, i) => {
    const color = se.color ?? PALETTE[i % PALETTE.length];
    const pts = xs.map((x, j) => [x, se.values[j]] as const).filter((p): p is readonly [number, number] => p[1] !== undefined && Number.isFinite(p[1]));
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${se.dashed ? ' stroke-dasharray="4 3"' : ''} points="${pts.map(([x, v]) => `${px(x).toFixed(1)},${py(v).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, v] of pts) parts.push(`<circle cx="${px(x)}" cy="${py(v)}" r="3.5" fill="${color}"><title>${esc(`${se.name} @ ${x}: ${fmt(v)}`)}</title></circle>`);
  });
  parts.push(`<text x="${left + plotW / 2}" y="${h - 8}" text-anchor="middle" fill="#444">${esc(s.xLabel)}</text>`);
  parts.push(`<text x="14" y="${top + plotH / 2}" text-anchor="middle" fill="#444" transform="rotate(-90 14 ${top + plotH / 2})">${esc(s.yLabel)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

/** A placeholder chart that says why there is nothing to draw. */
export function emptyChart(t: string, message: string): string {
  const w = 420;
  const h = 120;
  return `${svgOpen(w, h, t)}${title(t, w)}<rect x="10" y="30" width="${w - 20}" height="${h - 40}" fill="#fafafa" stroke="#ddd"/><text x="${w / 2}" y="${h / 2 + 10}" text-anchor="middle" fill="#777">${esc(message)}</text></svg>`;
}

/** The chart as a standalone SVG document (for rendering to PNG outside the report). */
export function standaloneSvg(svg: string): string {
  return svg.replace('<svg ', '<svg xmlns="http://www.w3.org/2000/svg" ');
}
