/**
 * Synchronous request/response function invocation, as used by the handler →
 * master → worker fan-out. Local implementation: ProcessPoolInvoker (one Node
 * child process per function instance); cloud implementation: FC adapter.
 * Errors are InvokeError subclasses from ./errors.ts.
 */
export interface Invoker {
  /** Invoke `functionName` with `payload` and wait for its response. */
  invoke(functionName: string, payload: Buffer): Promise<InvokeResult>;
  /** Release resources (kill local instances, close connections). */
  close?(): Promise<void>;
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
} from './errors.ts';
