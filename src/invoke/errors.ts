/** Typed errors raised by Invoker implementations. */

/** FC's synchronous-invocation payload limit (request and response), 32 MB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;

export interface InvokeErrorOptions {
  functionName: string;
  cause?: unknown;
  requestId?: string;
  instanceId?: string;
}

/** Base class of every invocation failure. */
export class InvokeError extends Error {
  readonly functionName: string;
  readonly requestId: string | undefined;
  readonly instanceId: string | undefined;

  constructor(message: string, options: InvokeErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.functionName = options.functionName;
    this.requestId = options.requestId;
    this.instanceId = options.instanceId;
  }
}

/** No function with that name is configured/deployed. */
export class FunctionNotFoundError extends InvokeError {
  constructor(functionName: string, options: { cause?: unknown; known?: string[] } = {}) {
    const known = options.known ? ` (known: ${options.known.join(', ') || 'none'})` : '';
    super(`function not found: ${JSON.stringify(functionName)}${known}`, { functionName, cause: options.cause });
  }
}

/** The instance died during the invocation (crash, process.exit, signal, out-of-memory kill). */
export class FunctionCrashedError extends InvokeError {
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** True when the instance was killed for exceeding its memory limit. */
  readonly outOfMemory: boolean;

  constructor(
    message: string,
    options: InvokeErrorOptions & { exitCode?: number | null; signal?: string | null; outOfMemory?: boolean },
  ) {
    super(message, options);
    this.exitCode = options.exitCode ?? null;
    this.signal = options.signal ?? null;
    this.outOfMemory = options.outOfMemory ?? false;
  }
}

/** The invocation (or instance initialisation) exceeded the function's timeout; the instance was killed. */
export class FunctionTimeoutError extends InvokeError {
  readonly timeoutMs: number;

  constructor(message: string, options: InvokeErrorOptions & { timeoutMs: number }) {
    super(message, options);
    this.timeoutMs = options.timeoutMs;
  }
}

/** The function's handler threw (or its module failed to load). The instance stays alive for handler errors. */
export class FunctionError extends InvokeError {
  /** Remote error name, e.g. "TypeError" or a custom class name. */
  readonly errorType: string;
  readonly errorMessage: string;
  /** JSON-serialisable extra fields of the remote error (its `details`/`context`/`code`), if any. */
  readonly details: Record<string, unknown> | undefined;
  /** Remote stack trace, if available. */
  readonly remoteStack: string | undefined;

  constructor(
    options: InvokeErrorOptions & {
      errorType: string;
      errorMessage: string;
      details?: Record<string, unknown>;
      remoteStack?: string;
    },
  ) {
    super(`${options.functionName}: ${options.errorType}: ${options.errorMessage}`, options);
    this.errorType = options.errorType;
    this.errorMessage = options.errorMessage;
    this.details = options.details;
    this.remoteStack = options.remoteStack;
  }
}

/** Request or response payload exceeds the configured maximum. */
export class PayloadTooLargeError extends InvokeError {
  readonly sizeBytes: number;
  readonly maxBytes: number;
  readonly direction: 'request' | 'response';

  constructor(options: InvokeErrorOptions & { sizeBytes: number; maxBytes: number; direction: 'request' | 'response' }) {
    super(
      `${options.direction} payload of ${options.functionName} is ${options.sizeBytes} bytes, over the limit of ${options.maxBytes} bytes`,
      options,
    );
    this.sizeBytes = options.sizeBytes;
    this.maxBytes = options.maxBytes;
    this.direction = options.direction;
  }
}
