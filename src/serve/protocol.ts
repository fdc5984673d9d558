/**
 * What crosses a function boundary: the handler's task for the master, the master's for each
 * worker, and their reports back. Every side parses what it receives with these schemas (the
 * functions' entry points their events, the master each worker's reply, the handler the
 * master's), so a reply is never trusted by a cast. Changing a shape here changes the wire format
 * between deployed functions.
 */
import { z } from 'zod';
import { exchangeTrafficSchema } from '../exchange/backend.ts';
import { stageCostSchema } from './cost-report.ts';
import { TRACEPARENT_RE } from './trace.ts';

const requestId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

/** What the handler, master and workers agree on for one request. */
export const requestContextSchema = z.object({
  requestId,
  planKey: z.string().min(1),
  /** Worker instances that may run at once: decides which chains the plan runs as (chainsFor). */
  maxWorkers: z.number().int().positive(),
  batch: z.number().int().positive(),
  /** Epoch ms after which every wait gives up. */
  deadline: z.number().int().positive(),
  /** W3C trace context of the invocation's parent span (src/serve/trace.ts). */
  traceparent: z.string().regex(TRACEPARENT_RE, 'a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)').optional(),
  tracestate: z.string().max(512).optional(),
}).strict();

export const workerTaskSchema = requestContextSchema.extend({
  chain: z.number().int().nonnegative(),
  worker: z.number().int().nonnegative(),
}).strict();
export type WorkerTask = z.infer<typeof workerTaskSchema>;

export const workerReportSchema = z.object({
  chain: z.number().int(),
  worker: z.number().int(),
  /** load: plan and sessions; compute: ORT and reductions; exchange: reading and writing; wait: blocked on a neighbour. */
  ms: z.object({ load: z.number(), compute: z.number(), exchange: z.number(), wait: z.number(), total: z.number() }).strict(),
  sessionsLoaded: z.number().int(),
  bytesRead: z.number(),
  bytesWritten: z.number(),
  storeRequests: z.number().int(),
  storeRetries: z.number().int().nonnegative(),
  /** Traffic through an exchange that is not the object store (Redis); absent otherwise. */
  exchange: exchangeTrafficSchema.optional(),
}).strict();
export type WorkerReport = z.infer<typeof workerReportSchema>;

export const masterTaskSchema = requestContextSchema;
export type MasterTask = z.infer<typeof masterTaskSchema>;

const nn = z.number().nonnegative();

/**
 * One unit of the schedule as the master reports it: the public per-unit cost plus what the
 * handler aggregates (billed durations, worker time by kind, RSS in bytes).
 */
export const unitReportSchema = stageCostSchema.omit({ peakWorkerRssMb: true }).extend({
  /** Worker handler durations, as FC bills them. */
  workerMs: z.array(nn),
  /** Summed over the unit's workers. */
  computeMs: nn,
  exchangeMs: nn,
  waitMs: nn,
  peakWorkerRssBytes: nn,
  /** The workers' traffic through an exchange that is not the object store (Redis). */
  exchange: exchangeTrafficSchema.optional(),
}).strict();
export type UnitReport = z.infer<typeof unitReportSchema>;

export const masterReportSchema = z.object({
  requestId: z.string(),
  units: z.array(unitReportSchema),
  ms: z.object({ loadPlan: nn, total: nn }).strict(),
  master: z.object({ bytesRead: nn, bytesWritten: nn, storeRequests: nn, storeRetries: nn, exchange: exchangeTrafficSchema.optional() }).strict(),
}).strict();
export type MasterReport = z.infer<typeof masterReportSchema>;
