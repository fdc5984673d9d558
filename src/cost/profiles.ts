import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { costProfileSchema, predictPlan, type CostProfile, type Prediction, type PredictOptions } from './model.ts';
import { describeIssues } from '../zod-issues.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * A published (or assumed) figure: its range and where it comes from. `source` names a section
 * of ../shared/docs/function-compute.md or an Alibaba Cloud page title, and says "assumption"
 * where no published figure exists.
 */
export const rangedSchema = z.object({
  low: z.number(),
  typical: z.number(),
  high: z.number(),
  source: z.string().min(1),
}).strict().refine((r) => r.low <= r.typical && r.typical <= r.high, { message: 'needs low <= typical <= high' });
export type Ranged = z.infer<typeof rangedSchema>;

/** The numeric parameters of a profile; in a profile file each is a number or a range. */
const NUMERIC = [
  'gflopsPerVcpu', 'threadEfficiency', 'invokeOverheadMs', 'coldStartMs', 'coldStartProbability', 'storeLatencyMs',
  'storeBandwidthMBps', 'sessionLoadMsPerMB', 'sessionHitRate', 'baseRssMb', 'weightRssFactor', 'activationRssFactor',
  'masterGflops', 'requestOverheadMs', 'maxParallelWorkers', 'pollIntervalMs', 'storeRequestsPerSec',
  'storeBucketBandwidthMBps', 'storeUsdPer10kRequests', 'instanceQuota', 'redisLatencyMs', 'redisClientBandwidthMBps',
  'redisBandwidthMBps', 'redisUsdPerHour', 'throttleRoundMs', 'stageOverheadMs', 'effectiveCores', 'cpuQuotaPeriodMs',
] as const satisfies readonly (keyof CostProfile)[];
type NumericKey = (typeof NUMERIC)[number];

/**
 * Parameters where a larger value makes a plan faster or cheaper (throughputs, hit rates,
 * limits); for all others (latencies, overheads, prices, memory factors) smaller is better.
 */
const HIGHER_IS_BETTER = new Set<NumericKey>([
  'gflopsPerVcpu', 'threadEfficiency', 'storeBandwidthMBps', 'sessionHitRate', 'masterGflops', 'storeRequestsPerSec',
  'storeBucketBandwidthMBps', 'redisClientBandwidthMBps', 'redisBandwidthMBps', 'instanceQuota', 'maxParallelWorkers', 'effectiveCores',
]);

const param = z.union([z.number(), rangedSchema]);

/**
 * A profile file: the resolved profile's fields, each numeric one either a plain number (old
 * files, calibrated profiles) or `{low, typical, high, source}`.
 */
export const profileFileSchema = z.object({
  name: z.string(),
  notes: z.string().default(''),
  ...Object.fromEntries(NUMERIC.map((k) => [k, param.optional()])) as Record<NumericKey, z.ZodOptional<typeof param>>,
}).strict();
export type ProfileFile = z.infer<typeof profileFileSchema>;

/** `best`: every parameter at its favourable end; `worst`: at its unfavourable end. */
export type Scenario = 'best' | 'typical' | 'worst';

/** A profile at its typical values, and at both ends of its published ranges. */
export interface ProfileRange {
  typical: CostProfile;
  best: CostProfile;
  worst: CostProfile;
  /** The ranged parameters with their sources. */
  sources: Partial<Record<NumericKey, Ranged>>;
}

export class ProfileError extends Error {
  override name = 'ProfileError';
}

function pick(v: number | Ranged, key: NumericKey, scenario: Scenario): number {
  if (typeof v === 'number') return v;
  if (scenario === 'typical') return v.typical;
  const high = HIGHER_IS_BETTER.has(key) === (scenario === 'best');
  return high ? v.high : v.low;
}

/** The numeric profile for one scenario, validated by the model's schema. */
export function resolveProfile(file: ProfileFile, scenario: Scenario, where = file.name): CostProfile {
  const out: Record<string, unknown> = { name: file.name, notes: file.notes };
  for (const k of NUMERIC) {
    const v = file[k];
    if (v !== undefined) out[k] = pick(v, k, scenario);
  }
  const r = costProfileSchema.safeParse(out);
  if (!r.success) throw new ProfileError(`cost profile ${where} (${scenario}) is invalid: ${describeIssues(r.error.issues)}`);
  return r.data;
}

function readProfileFile(nameOrPath: string): { file: ProfileFile; path: string } {
  const path = existsSync(nameOrPath) ? nameOrPath : join(root, 'profiles', `${nameOrPath}.json`);
  if (!existsSync(path)) throw new ProfileError(`unknown cost profile "${nameOrPath}": expected local, fc, or a JSON file`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ProfileError(`cost profile ${path} is not JSON: ${(e as Error).message}`);
  }
  const r = profileFileSchema.safeParse(json);
  if (!r.success) throw new ProfileError(`cost profile ${path} is invalid: ${describeIssues(r.error.issues)}`);
  return { file: r.data, path };
}

/** Loads a profile by name (`local`, `fc`, from profiles/) or from a JSON file path, at its typical values. */
export function loadProfile(nameOrPath: string): CostProfile {
  const { file, path } = readProfileFile(nameOrPath);
  return resolveProfile(file, 'typical', path);
}

/** Loads a profile with both ends of its ranges (a profile without ranges has best = worst = typical). */
export function loadProfileRange(nameOrPath: string): ProfileRange {
  const { file, path } = readProfileFile(nameOrPath);
  const sources: Partial<Record<NumericKey, Ranged>> = {};
  for (const k of NUMERIC) {
    const v = file[k];
    if (v !== undefined && typeof v !== 'number') sources[k] = v;
  }
  return { typical: resolveProfile(file, 'typical', path), best: resolveProfile(file, 'best', path), worst: resolveProfile(file, 'worst', path), sources };
}

export const localProfile = () => loadProfile('local');
export const fcProfile = () => loadProfile('fc');

/** A prediction at the typical values and at both ends of the profile's ranges. */
export interface RangedPrediction { typical: Prediction; best: Prediction; worst: Prediction }

export function predictRange(plan: Parameters<typeof predictPlan>[0], o: Omit<PredictOptions, 'profile'>, range: ProfileRange): RangedPrediction {
  return {
    typical: predictPlan(plan, { ...o, profile: range.typical }),
    best: predictPlan(plan, { ...o, profile: range.best }),
    worst: predictPlan(plan, { ...o, profile: range.worst }),
  };
}

/** `typical (low-high)` with `digits` decimals; just `typical` when the range is a point. */
export function formatRange(typical: number, low: number, high: number, digits = 0, unit = ''): string {
  const f = (x: number) => x.toFixed(digits);
  const lo = Math.min(low, high);
  const hi = Math.max(low, high);
  return f(lo) === f(hi) ? `${f(typical)}${unit}` : `${f(typical)}${unit} (${f(lo)}-${f(hi)})`;
}
