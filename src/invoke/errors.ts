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

// ---- Wire form: errors crossing a process boundary (nested invocation relay). ----

/**
 * Plain, JSON-safe form of an invocation error, so that an Invoker relaying calls across a
 * process boundary (the instance-side RelayInvoker) can rethrow the same class with the same
 * fields: `deserializeInvokeError(serializeInvokeError(e))` keeps `instanceof` and the fields.
 */
export interface SerializedInvokeError {
  kind:
    | 'InvokeError'
    | 'FunctionNotFoundError'
    | 'FunctionCrashedError'
    | 'FunctionTimeoutError'
    | 'FunctionError'
    | 'PayloadTooLargeError'
    | 'TypeError'
    | 'Error';
  message: string;
  functionName?: string;
  requestId?: string;
  instanceId?: string;
  // FunctionCrashedError
  exitCode?: number | null;
  signal?: string | null;
  outOfMemory?: boolean;
  // FunctionTimeoutError
  timeoutMs?: number;
  // FunctionError
  errorType?: string;
  errorMessage?: string;
  details?: Record<string, unknown>;
  remoteStack?: string;
  // PayloadTooLargeError
  sizeBytes?: number;
  maxBytes?: number;
  direction?: 'request' | 'response';
  /** `cause`, flattened to name/message. */
  cause?: { name: string; message: string };
}

function jsonSafe<T>(v: T): T | undefined {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? undefined : (JSON.parse(s) as T);
  } catch {
    return undefined;
  }
}

/** Never throws. Non-InvokeErrors become `kind: 'TypeError'` (if a TypeError) or `'Error'`. */
export function serializeInvokeError(err: unknown): SerializedInvokeError {
  try {
    if (err instanceof InvokeError) {
      const out: SerializedInvokeError = { kind: 'InvokeError', message: err.message, functionName: err.functionName };
      if (err.requestId !== undefined) out.requestId = err.requestId;
      if (err.instanceId !== undefined) out.instanceId = err.instanceId;
      if (err.cause !== undefined) {
        const c = err.cause as { name?: unknown; message?: unknown } | null;
        out.cause = {
          name: typeof c?.name === 'string' ? c.name : 'Error',
          message: typeof c?.message === 'string' ? c.message : String(err.cause),
        };
      }
      if (err instanceof FunctionNotFoundError) out.kind = 'FunctionNotFoundError';
      else if (err instanceof FunctionCrashedError) {
        Object.assign(out, { kind: 'FunctionCrashedError', exitCode: err.exitCode, signal: err.signal, outOfMemory: err.outOfMemory });
      } else if (err instanceof FunctionTimeoutError) {
        Object.assign(out, { kind: 'FunctionTimeoutError', timeoutMs: err.timeoutMs });
      } else if (err instanceof FunctionError) {
        Object.assign(out, { kind: 'FunctionError', errorType: err.errorType, errorMessage: err.errorMessage });
        const details = err.details === undefined ? undefined : jsonSafe(err.details);
        if (details !== undefined) out.details = details;
        if (err.remoteStack !== undefined) out.remoteStack = err.remoteStack;
      } else if (err instanceof PayloadTooLargeError) {
        Object.assign(out, { kind: 'PayloadTooLargeError', sizeBytes: err.sizeBytes, maxBytes: err.maxBytes, direction: err.direction });
      }
      return out;
    }
    if (err instanceof Error) return { kind: err instanceof TypeError ? 'TypeError' : 'Error', message: String(err.message) };
    return { kind: 'Error', message: String(err) };
  } catch {
    return { kind: 'Error', message: 'unserialisable invocation error' };
  }
}

/**
 * Rebuild the error class serialised by serializeInvokeError, with its fields and exact message.
 * `fallbackFunctionName` fills a missing functionName. The stack is the local one (callers may
 * replace it with their call site).
 */
export function deserializeInvokeError(s: SerializedInvokeError, fallbackFunctionName = ''): Error {
  const functionName = s.functionName ?? fallbackFunctionName;
  const base: InvokeErrorOptions = { functionName };
  if (s.requestId !== undefined) base.requestId = s.requestId;
  if (s.instanceId !== undefined) base.instanceId = s.instanceId;
  if (s.cause !== undefined) {
    const cause = new Error(s.cause.message);
    cause.name = s.cause.name;
    base.cause = cause;
  }
  let err: Error;
  switch (s.kind) {
    case 'FunctionNotFoundError':
      err = new FunctionNotFoundError(functionName, base.cause === undefined ? {} : { cause: base.cause });
      break;
    case 'FunctionCrashedError':
      err = new FunctionCrashedError(s.message, {
        ...base,
        exitCode: s.exitCode ?? null,
        signal: s.signal ?? null,
        outOfMemory: s.outOfMemory ?? false,
      });
      break;
    case 'FunctionTimeoutError':
      err = new FunctionTimeoutError(s.message, { ...base, timeoutMs: s.timeoutMs ?? 0 });
      break;
    case 'FunctionError':
      err = new FunctionError({
        ...base,
        errorType: s.errorType ?? 'Error',
        errorMessage: s.errorMessage ?? s.message,
        ...(s.details !== undefined ? { details: s.details } : {}),
        ...(s.remoteStack !== undefined ? { remoteStack: s.remoteStack } : {}),
      });
      break;
    case 'PayloadTooLargeError':
      err = new PayloadTooLargeError({ ...base, sizeBytes: s.sizeBytes ?? 0, maxBytes: s.maxBytes ?? 0, direction: s.direction ?? 'request' });
      break;
    case 'InvokeError':
      err = new InvokeError(s.message, base);
      break;
    case 'TypeError':
      return new TypeError(s.message);
    default:
      return new Error(s.message);
  }
  err.message = s.message; // keep the exact text (constructors rebuild it from the fields)
  return err;
}
