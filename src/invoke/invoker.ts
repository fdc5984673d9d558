/**
 * Synchronous request/response function invocation, as used by the handler →
 * master → worker fan-out. Local implementation: ProcessPoolInvoker (one Node
 * child process per function instance); cloud implementation: FC adapter.
 * Errors are InvokeError subclasses from ./errors.ts.
 */
export interface Invoker {
  /** Invoke `functionName` with `payload` and wait for its response. */
  invoke(functionName: string, payload: Buffer, options?: InvokeOptions): Promise<InvokeResult>;
  /**
   * Invoke `functionName` once per payload, all at once: the calls start together when that
   * many instances are free, or wait together (gang scheduling, for workers that wait for each
   * other). Optional: where the platform throttles rather than queues (FC), plain concurrent
   * invokes cannot deadlock, so callers fall back to them.
   */
  invokeGang?(functionName: string, payloads: Buffer[], options?: Pick<InvokeOptions, 'deadline'>): Promise<InvokeResult>[];
  /** Release resources (kill local instances, close connections). */
  close?(): Promise<void>;
}

export interface InvokeOptions {
  /**
   * The call replaces a failed member of a gang that is running. Where calls queue (the local
   * pool) it goes ahead of gangs still waiting for instances: they wait for the running gang,
   * and the running gang waits for this call. Platforms that throttle instead ignore it.
   */
  urgent?: boolean;
  /**
   * Epoch ms by which the caller needs the answer (the request's deadline): the call gets what is
   * left, never more than the function's own timeout, and fails with FunctionTimeoutError after.
   */
  deadline?: number;
}

export interface InvokeResult {
  /** The function's response body. */
  payload: Buffer;
  /** Identifier of the instance that served the call (stable across warm calls). */
  instanceId: string;
  /** True if this call started the instance. */
  coldStart: boolean;
  /** Handler execution time inside the instance, ms (excludes init and transport). */
  durationMs: number;
  /** Cold starts only: time to start the instance and load the function module, ms. */
  initMs?: number;
  /** Peak resident set size of the instance so far, bytes. */
  peakRssBytes?: number;
}

/** Second argument passed to a function's `handler(event, context)`. */
export interface FunctionContext {
  requestId: string;
  functionName: string;
  instanceId: string;
  memoryLimitMb?: number;
  /**
   * Invoker for calling other functions from inside this one (handler → master → workers).
   * Always set by ProcessPoolInvoker: a relay to the parent pool, so the callee's pool limits,
   * queueing, cold starts, timeouts and crash detection apply, and errors arrive as the same
   * InvokeError subclasses (instanceof works). Calls may run concurrently. The caller's own
   * timeout keeps running while it waits. A function that invokes itself (directly or through
   * others) with every instance busy waits for a free instance, i.e. until its timeout.
   */
  invoker?: Invoker;
}

/** Shape of a function module: `export async function handler(event, context)`. */
export type FunctionHandler = (event: Buffer, context: FunctionContext) => Promise<Buffer | Uint8Array | string>;

export {
  InvokeError,
  FunctionNotFoundError,
  FunctionCrashedError,
  FunctionTimeoutError,
  FunctionError,
  PayloadTooLargeError,
  DEFAULT_MAX_PAYLOAD_BYTES,
  serializeInvokeError,
  deserializeInvokeError,
} from './errors.ts';
export type { SerializedInvokeError } from './errors.ts';
