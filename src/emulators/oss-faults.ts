/**
 * Faults the OSS emulator injects: queued ones (`injectFault`) for exact tests, and random ones
 * for whole runs (the `OSS_EMULATOR_FAULTS` spec).
 */
import { z } from 'zod';
import { mulberry32 } from '../onnx/builder.ts';
import { OssHttpError, type OssOperation } from './oss-protocol.ts';
import { describeIssues } from '../zod-issues.ts';

const rate = z.number().min(0).max(1);

/**
 * Random faults, as fractions of authenticated requests (one draw per request, so the kinds
 * are exclusive and their sum is at most 1):
 * - `error`: a 5xx (503 SlowDown or 500 InternalError, half each);
 * - `truncate`: PutObject receives, or GetObject sends, a body cut short (a GET's
 *   Content-Length is shortened to match, so only the client's own length or CRC check sees it);
 * - `corrupt`: one byte flipped in the body PutObject receives or GetObject sends;
 * - `slow`: a delay of `slowMs` (default 3000) before the request is handled;
 * - `reset`: the connection is closed without an answer (nothing is done).
 * Truncate and corrupt touch object bodies only; other operations are left alone (their XML
 * has no checksum a client could use, and on real OSS it travels over TLS).
 * `seed` makes the draws repeatable.
 */
export const faultSpecSchema = z.object({
  error: rate.default(0),
  truncate: rate.default(0),
  corrupt: rate.default(0),
  slow: rate.default(0),
  reset: rate.default(0),
  slowMs: z.number().int().min(0).max(600_000).default(3000),
  seed: z.number().int().optional(),
}).strict().refine((f) => f.error + f.truncate + f.corrupt + f.slow + f.reset <= 1, { message: 'the fractions add up to more than 1' });
export type FaultSpec = z.infer<typeof faultSpecSchema>;
export type FaultKind = 'error' | 'truncate' | 'corrupt' | 'slow' | 'reset';

export class FaultSpecError extends Error {
  override name = 'FaultSpecError';
}

/**
 * Parses `OSS_EMULATOR_FAULTS`: comma-separated `name:value` pairs, e.g.
 * `error:0.05,truncate:0.01,corrupt:0.01,slow:0.02,slowMs:2000,seed:7`. Empty means no faults.
 */
export function parseFaultSpec(text: string): FaultSpec {
  const fields: Record<string, number> = {};
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    const m = /^([A-Za-z]+)\s*[:=]\s*(-?[0-9.eE+-]+)$/.exec(part);
    if (!m || !Number.isFinite(Number(m[2]))) throw new FaultSpecError(`OSS_EMULATOR_FAULTS: ${JSON.stringify(part)} is not name:number (e.g. error:0.05,truncate:0.01,corrupt:0.01,slow:0.02)`);
    if (m[1] in fields) throw new FaultSpecError(`OSS_EMULATOR_FAULTS: ${m[1]} is given twice`);
    fields[m[1]] = Number(m[2]);
  }
  const r = faultSpecSchema.safeParse(fields);
  if (!r.success) {
    throw new FaultSpecError(`OSS_EMULATOR_FAULTS ${JSON.stringify(text)}: ${describeIssues(r.error.issues, { root: '(spec)' })} (known: error, truncate, corrupt, slow, reset as fractions 0..1; slowMs; seed)`);
  }
  return r.data;
}


/** A fault to inject: make matching requests fail with an OSS error and/or respond late. */
export interface OssFault {
  /** Only requests for this operation (default: any operation). */
  operation?: OssOperation;
  /** How many requests to affect (default 1). */
  times?: number;
  /** Delay before handling (or failing) the request. */
  delayMs?: number;
  /** Fail with this HTTP status and OSS error code (e.g. 503 SlowDown). */
  status?: number;
  code?: string;
  message?: string;
  /** Damage the body PutObject receives or GetObject sends (see FaultSpec's truncate and corrupt). */
  damage?: 'truncate' | 'corrupt';
}

export type BodyDamage = 'truncate' | 'corrupt';

/** The fault state of one server: the queue of exact faults and the random-fault generator. */
export class OssFaultInjector {
  private readonly queued: Array<Required<Pick<OssFault, 'times'>> & OssFault> = [];
  private randomFaults: { spec: FaultSpec; random: () => number } | undefined;

  constructor(faults: FaultSpec | string | undefined) {
    this.setRandom(faults);
  }

  setRandom(f: FaultSpec | string | undefined): void {
    const spec = typeof f === 'string' ? parseFaultSpec(f) : f === undefined ? undefined : faultSpecSchema.parse(f);
    this.randomFaults = spec ? { spec, random: spec.seed === undefined ? Math.random : mulberry32(spec.seed) } : undefined;
  }

  inject(fault: OssFault): void {
    this.queued.push({ ...fault, times: fault.times ?? 1 });
  }

  clear(): void {
    this.queued.length = 0;
  }

  /** One draw per request: which random fault (if any) hits it. */
  draw(): FaultKind | undefined {
    if (!this.randomFaults) return undefined;
    const { spec, random } = this.randomFaults;
    let r = random();
    for (const kind of ['error', 'truncate', 'corrupt', 'slow', 'reset'] as const) {
      if (r < spec[kind]) return kind;
      r -= spec[kind];
    }
    return undefined;
  }

  /** The 5xx a random `error` fault answers with (503 SlowDown or 500 InternalError, half each). */
  randomError(): OssHttpError {
    return this.random() < 0.5
      ? new OssHttpError(503, 'SlowDown', 'Please reduce your request rate (injected fault).')
      : new OssHttpError(500, 'InternalError', 'We encountered an internal error, please try again (injected fault).');
  }

  /** The delay of a random `slow` fault. */
  get slowMs(): number {
    return this.randomFaults?.spec.slowMs ?? 0;
  }

  /** A copy of `body` cut short or with one byte flipped (bodies of one byte or none are left alone when cutting). */
  damage(body: Buffer, kind: BodyDamage): Buffer | undefined {
    if (body.length === 0 || (kind === 'truncate' && body.length < 2)) return undefined;
    if (kind === 'truncate') return Buffer.from(body.subarray(0, Math.floor(this.random() * body.length)));
    const copy = Buffer.from(body);
    copy[Math.floor(this.random() * copy.length)] ^= 0xff;
    return copy;
  }

  /** Applies the first queued fault matching `operation`; returns the body damage it asks for. */
  async applyQueued(operation: OssOperation): Promise<BodyDamage | undefined> {
    const i = this.queued.findIndex((f) => f.operation === undefined || f.operation === operation);
    if (i < 0) return undefined;
    const f = this.queued[i];
    if (--f.times <= 0) this.queued.splice(i, 1);
    if (f.delayMs) await new Promise((r) => setTimeout(r, f.delayMs));
    if (f.status !== undefined) {
      throw new OssHttpError(f.status, f.code ?? 'InjectedFault', f.message ?? `injected fault (${operation})`);
    }
    return f.damage;
  }

  private random(): number {
    return (this.randomFaults?.random ?? Math.random)();
  }
}
