import { z } from 'zod';
import { exchangeTrafficSchema } from '../exchange/backend.ts';

/** The cost breakdown every inference response carries in `parameters.cost`. */
const nn = z.number().nonnegative();

/** One unit of the schedule: a chain of stages run by its workers, or a stage the master runs. */
export const stageCostSchema = z.object({
  id: z.number().int(),
  kind: z.enum(['chain', 'master']),
  /** Plan stage ids the unit covers. */
  stages: z.array(z.number().int()),
  ms: nn,
  invocations: nn,
  /** Invocations sent again after a crash, timeout or throttle (not counted in `invocations`). */
  retries: nn,
  coldStarts: nn,
  /** Slowest instance start among this stage's cold starts (ms). */
  maxColdStartMs: nn,
  maxWorkerMs: nn,
  maxWorkerComputeMs: nn,
  peakWorkerRssMb: nn,
  bytesRead: nn,
  bytesWritten: nn,
  storeRequests: nn,
  /** Store operations sent again after a transient failure (5xx, SlowDown, timeout, reset, bad CRC). */
  storeRetries: nn,
}).strict();
export type StageCost = z.infer<typeof stageCostSchema>;

export const requestCostSchema = z.object({
  requestId: z.string(),
  ms: z.object({ total: nn, storeInput: nn, master: nn, fetchOutput: nn, masterLoadPlan: nn }).strict(),
  stages: z.array(stageCostSchema),
  invocations: z.object({ master: nn, worker: nn, coldStarts: nn, retries: nn }).strict(),
  store: z.object({ requests: nn, bytesRead: nn, bytesWritten: nn, retries: nn }).strict(),
  /** Requests and bytes through the Redis exchange (EXCHANGE=redis): not store traffic, so not in `store`. */
  exchange: exchangeTrafficSchema.optional(),
  /** Worker time summed over invocations: running ORT, moving strips and partials, blocked on a neighbour. */
  workerTime: z.object({ computeMs: nn, exchangeMs: nn, waitMs: nn, exchangeShare: z.number().min(0).max(1) }).strict(),
  peakWorkerRssMb: nn,
  /** Billed compute at FC's published CU prices (src/billing/pricing.ts). */
  billed: z.object({ invocations: nn, vcpuSeconds: nn, gbSeconds: nn, computeUnits: nn, usd: nn }).strict(),
}).strict();
export type RequestCost = z.infer<typeof requestCostSchema>;
