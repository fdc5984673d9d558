/**
 * Typed HTTP errors for the handler's protocol layer.
 *
 * The JSON body follows KServe/OIP v2 (`{"error": string}`) plus a short
 * machine-readable `code` and any extra `details` fields:
 *   {"error": "input \"x\": expected 12 elements, got 10", "code": "bad_request", "input": "x"}
 */

export interface HttpErrorOptions {
  /** Short machine string, e.g. "bad_request", "unknown_model". Defaults per status. */
  code?: string;
  /** Extra JSON-serialisable fields merged into the body (cannot override `error`/`code`). */
  details?: Record<string, unknown>;
  /** Extra response headers, e.g. `allow` for 405 or `retry-after` for 503. */
  headers?: Record<string, string>;
  cause?: unknown;
}

export interface HttpErrorBody {
  error: string;
  code: string;
  [key: string]: unknown;
}

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(status: number, message: string, options: HttpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`HttpError status must be an integer in 400..599, got ${status}`);
    }
    this.name = new.target.name;
    this.status = status;
    this.code = options.code ?? defaultCode(status);
    this.details = options.details;
    this.headers = options.headers;
  }

  /** The response body: `{error, code, ...details}`. */
  toJSON(): HttpErrorBody {
    return { ...(this.details ?? {}), error: this.message, code: this.code };
  }
}

export function isHttpError(err: unknown): err is HttpError {
  return err instanceof HttpError;
}

const DEFAULT_CODES: Record<number, string> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  500: 'internal',
  502: 'bad_gateway',
  503: 'unavailable',
  504: 'gateway_timeout',
};

function defaultCode(status: number): string {
  return DEFAULT_CODES[status] ?? (status >= 500 ? 'server_error' : 'client_error');
}

export const badRequest = (message: string, options?: HttpErrorOptions) => new HttpError(400, message, options);
export const notFound = (message: string, options?: HttpErrorOptions) => new HttpError(404, message, options);
export const payloadTooLarge = (message: string, options?: HttpErrorOptions) => new HttpError(413, message, options);
export const unsupportedMediaType = (message: string, options?: HttpErrorOptions) => new HttpError(415, message, options);
export const internal = (message: string, options?: HttpErrorOptions) => new HttpError(500, message, options);
export const badGateway = (message: string, options?: HttpErrorOptions) => new HttpError(502, message, options);
export const unavailable = (message: string, options?: HttpErrorOptions) => new HttpError(503, message, options);
export const gatewayTimeout = (message: string, options?: HttpErrorOptions) => new HttpError(504, message, options);

/** 405 with the `allow` header set. */
export function methodNotAllowed(method: string, path: string, allowed: readonly string[], options: HttpErrorOptions = {}): HttpError {
  return new HttpError(405, `method ${method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`, {
    ...options,
    details: { allow: [...allowed], ...options.details },
    headers: { allow: allowed.join(', '), ...options.headers },
  });
}
