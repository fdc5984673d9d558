/** Classification: top-k with softmax scores, and the Triton classification extension. */
import type { BytesOutput } from './oip.ts';

export interface TopKEntry {
  index: number;
  /** labels[index] when labels were given. */
  label?: string;
  /** Softmax probability over all logits. */
  score: number;
  logit: number;
}

/** Indices of the k largest values, descending (ties: lower index first). */
function topIndices(values: Float32Array, k: number): number[] {
  const n = values.length;
  const kk = Math.max(0, Math.min(Math.floor(k), n));
  if (kk === 0) return [];
  // Partial selection: keep a sorted list of the best kk (k is small; n ~ 1000).
  const best: number[] = [];
  const better = (a: number, b: number) => {
    const va = values[a]!, vb = values[b]!;
    // NaN ranks lowest.
    if (Number.isNaN(va)) return false;
    if (Number.isNaN(vb)) return true;
    return va > vb || (va === vb && a < b);
  };
  for (let i = 0; i < n; i++) {
    if (best.length === kk && !better(i, best[kk - 1]!)) continue;
    let j = best.length < kk ? best.length : kk - 1;
    if (best.length < kk) best.push(i);
    while (j > 0 && better(i, best[j - 1]!)) {
      best[j] = best[j - 1]!;
      j--;
    }
    best[j] = i;
  }
  return best;
}

/** Top-k classes of a logit vector, with softmax probabilities. */
export function topK(logits: Float32Array, k: number, labels?: readonly string[]): TopKEntry[] {
  const idx = topIndices(logits, k);
  if (idx.length === 0) return [];
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return idx.map((i) => {
    const e: TopKEntry = { index: i, score: Math.exp(logits[i]! - max) / sum, logit: logits[i]! };
    if (labels && labels[i] !== undefined) e.label = labels[i];
    return e;
  });
}

/**
 * Triton classification extension: replace an output by a BYTES tensor of
 * "<value>:<index>[:<label>]" strings for the top `count` raw values. For rank
 * ≥ 2 the first dimension is the batch ([batch, count]); rank ≤ 1 gives [count].
 */
export function classificationOutput(name: string, shape: readonly number[], data: Float32Array, count: number, labels?: readonly string[]): BytesOutput {
  const batched = shape.length >= 2;
  const batch = batched ? shape[0]! : 1;
  const classes = batch === 0 ? 0 : data.length / batch;
  const k = Math.min(count, classes);
  const out: string[] = [];
  for (let b = 0; b < batch; b++) {
    const row = data.subarray(b * classes, (b + 1) * classes);
    for (const i of topIndices(row, k)) {
      const label = labels?.[i];
      out.push(`${row[i]!.toFixed(6)}:${i}${label !== undefined ? `:${label}` : ''}`);
    }
  }
  return { name, datatype: 'BYTES', shape: batched ? [batch, k] : [k], data: out };
}
