/**
 * How the FC emulator answers when something fails: API errors (FC 3.0 `{Code, Message}`, FC 2.0
 * `{ErrorCode, ErrorMessage}`), and a failed invocation reported as FC does (200 with
 * `x-fc-error-type`, FC's own message for timeouts and crashes).
 */
import {
  FunctionCrashedError,
  FunctionError,
  FunctionNotFoundError,
  FunctionTimeoutError,
  PayloadTooLargeError,
} from '../invoke/errors.ts';
import type { ProcessPoolInvoker } from '../invoke/process-pool.ts';

/** An FC API error: HTTP status and FC error code. */
export class FcApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** How FC reports a failed invocation (200 + x-fc-error-type); undefined for errors it reports otherwise. */
export function functionFailure(pool: ProcessPoolInvoker, functionName: string, err: unknown, elapsedMs: number):
  | { body: Record<string, unknown>; instanceId?: string; kind?: string }
  | undefined {
  const peakMb = (instanceId: string | undefined) => {
    const inst = instanceId ? pool.stats()[functionName]?.instances.find((i) => i.instanceId === instanceId) : undefined;
    return inst ? (inst.peakRssBytes / (1024 * 1024)).toFixed(2) : '0';
  };
  if (err instanceof FunctionError) {
    const body: Record<string, unknown> = {
      errorMessage: err.errorMessage,
      errorType: err.errorType,
      stackTrace: err.remoteStack ? err.remoteStack.split('\n') : [],
    };
    if (err.details !== undefined) body.details = err.details;
    return { body, instanceId: err.instanceId };
  }
  if (err instanceof FunctionTimeoutError) {
    const secs = Number((err.timeoutMs / 1000).toFixed(3));
    return {
      kind: 'timeout',
      instanceId: err.instanceId,
      body: {
        errorMessage: `Function timed out after ${secs} seconds (maxMemoryUsage: ${peakMb(err.instanceId)}MB)`,
        timeoutMs: err.timeoutMs,
        detail: err.message,
      },
    };
  }
  if (err instanceof FunctionCrashedError) {
    return {
      kind: 'crash',
      instanceId: err.instanceId,
      body: {
        errorMessage: `Process exited unexpectedly before completing request (duration: ${Math.round(elapsedMs)}ms, ` +
          `maxMemoryUsage: ${peakMb(err.instanceId)}MB): ${err.message}`,
        exitCode: err.exitCode,
        signal: err.signal,
        outOfMemory: err.outOfMemory,
      },
    };
  }
  if (err instanceof PayloadTooLargeError && err.direction === 'response') {
    return {
      kind: 'response-too-large',
      instanceId: err.instanceId,
      body: {
        errorMessage: `response payload size ${err.sizeBytes} exceeds maximum allowed size (${err.maxBytes} bytes)`,
        sizeBytes: err.sizeBytes,
        maxBytes: err.maxBytes,
      },
    };
  }
  if (err instanceof PayloadTooLargeError) {
    throw new FcApiError(413, 'EntityTooLarge', `payload size exceeds maximum allowed size (${err.maxBytes} bytes)`);
  }
  if (err instanceof FunctionNotFoundError) throw new FcApiError(404, 'FunctionNotFound', `function '${functionName}' does not exist`);
  return undefined;
}
