/** Shared by the invoker tests: fixture function modules and small payload helpers. */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { LocalFunctionConfig } from '../../src/invoke/process-pool.ts';

export const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/functions/${name}.ts`, import.meta.url));
export const fn = (name: string, extra: Partial<LocalFunctionConfig> = {}): LocalFunctionConfig => ({
  entry: fixture(name),
  maxInstances: 1,
  timeoutMs: 10_000,
  ...extra,
});
export const json = (b: Buffer) => JSON.parse(b.toString());
export const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Polls `cond` every 20 ms for up to `ms`; returns its final value. */
export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}
