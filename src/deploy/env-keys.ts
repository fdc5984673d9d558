/**
 * The environment variable names a zod env schema knows: the keys of every object schema inside
 * it, through intersections, pipes, unions and wrappers (optional, default, ...). Used to check
 * that s.yaml sets no variable the configuration would silently ignore.
 */
import { envSchema } from '../config.ts';

interface ZodLike { _zod?: { def?: Record<string, unknown> } }

export function schemaKeys(schema: unknown, seen = new Set<unknown>()): Set<string> {
  const keys = new Set<string>();
  const walk = (s: unknown) => {
    if (!s || typeof s !== 'object' || seen.has(s)) return;
    seen.add(s);
    const def = (s as ZodLike)._zod?.def;
    if (!def) return;
    if (def.type === 'object' && def.shape && typeof def.shape === 'object') {
      for (const k of Object.keys(def.shape)) keys.add(k);
      return;
    }
    for (const field of ['left', 'right', 'in', 'out', 'innerType', 'schema']) walk(def[field]);
    if (Array.isArray(def.options)) for (const o of def.options) walk(o);
  };
  walk(schema);
  return keys;
}

/** Every variable `loadConfig` reads. */
export function configEnvKeys(): Set<string> {
  return schemaKeys(envSchema);
}
