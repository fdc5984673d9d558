/**
 * The one way zod issues are written in an error message, so that a client, a log line and a
 * refused config all name a bad field the same way: `inputs[0].shape[1]: Invalid input: ...`.
 * Neutral ground (no HTTP, no runtime): the core, serve and the HTTP layer may all use it.
 */

/** The part of a zod issue the message needs (zod's own `$ZodIssue` fits). */
export interface IssueLike {
  path: readonly PropertyKey[];
  message: string;
}

/** `["inputs", 0, "shape"]` → `inputs[0].shape`; empty → `root` (`(root)` unless told). */
export function zodPath(path: readonly PropertyKey[], root = '(root)'): string {
  if (path.length === 0) return root;
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
}

/** One line for a list of issues: the first `max`, then how many more. */
export function describeIssues(issues: readonly IssueLike[], opts: { max?: number; root?: string } = {}): string {
  const max = opts.max ?? 10;
  return issues.slice(0, max).map((i) => `${zodPath(i.path, opts.root)}: ${i.message}`).join('; ')
    + (issues.length > max ? `; ... (${issues.length - max} more)` : '');
}
