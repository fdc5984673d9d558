import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { costProfileSchema, type CostProfile } from './model.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Loads a profile by name (`local`, `fc`, from profiles/) or from a JSON file path. */
export function loadProfile(nameOrPath: string): CostProfile {
  const path = existsSync(nameOrPath) ? nameOrPath : join(root, 'profiles', `${nameOrPath}.json`);
  if (!existsSync(path)) throw new Error(`unknown cost profile "${nameOrPath}": expected local, fc, or a JSON file`);
  const r = costProfileSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!r.success) throw new Error(`cost profile ${path} is invalid: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

export const localProfile = () => loadProfile('local');
export const fcProfile = () => loadProfile('fc');
