/**
 * RFC 4180 CSV: fields holding a comma, a double quote, CR or LF, or leading/trailing spaces are
 * quoted, and quotes inside are doubled. Lines end with LF (every CSV reader accepts it).
 * Missing values are empty fields.
 */

export type Cell = string | number | boolean | null | undefined;

export function csvField(v: Cell): string {
  if (v === undefined || v === null) return '';
  let s: string;
  if (typeof v === 'number') s = Number.isFinite(v) ? formatNumber(v) : '';
  else s = String(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Up to 6 significant decimals, no exponent for ordinary magnitudes, no trailing zeros. */
export function formatNumber(x: number): string {
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-6 || a >= 1e15)) return x.toExponential(6).replace(/\.?0+e/, 'e');
  const digits = a >= 1000 ? 3 : a >= 1 ? 4 : 6;
  return x.toFixed(digits).replace(/\.?0+$/, '');
}

export interface CsvColumn<R> { header: string; get: (row: R) => Cell }

export function toCsv<R>(rows: readonly R[], columns: readonly CsvColumn<R>[]): string {
  const lines = [columns.map((c) => csvField(c.header)).join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvField(c.get(r))).join(','));
  return lines.join('\n') + '\n';
}

/** A small RFC 4180 parser (quoted fields, doubled quotes, embedded newlines), for tests and fixtures. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const endField = () => { row.push(field); field = ''; };
  const endRow = () => { endField(); rows.push(row); row = []; };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      field += c; i++; continue;
    }
    if (c === '"' && field === '') { quoted = true; i++; continue; }
    if (c === ',') { endField(); i++; continue; }
    if (c === '\r' && text[i + 1] === '\n') { endRow(); i += 2; continue; }
    if (c === '\n') { endRow(); i++; continue; }
    field += c; i++;
  }
  if (field !== '' || row.length) endRow();
  return rows;
}
