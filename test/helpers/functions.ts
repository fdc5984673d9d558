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
