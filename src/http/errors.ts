/**
 * Typed HTTP errors for the handler's protocol layer.
 *
 * The JSON body follows KServe/OIP v2 (`{"error": string}`) plus a short
 * machine-readable `code` and any extra `details` fields:
 *   {"error": "input \"x\": expected 12 elements, got 10", "code": "bad_request", "input": "x"}
 *
 * `toHttpError` is the one place where errors of the layers below (serve, store, invoke,
 * exchange, planner, model decoding, zod validation) become responses: those layers throw their
 * own typed errors and never import this module.
 */
import { z } from 'zod';
import {
  ArtifactMissingError, DeadlineUnmeetableError, MasterInvocationError, PlanningFailedError, RegistryInvalidError,
  RequestRejectedError, ServeError,
} from '../serve/errors.ts';
import { ObjectNotFoundError, StoreError } from '../store/errors.ts';
import { InvokeError } from '../invoke/errors.ts';
import { ExchangeError, ExchangeTimeoutError } from '../exchange/errors.ts';
import { PlanError } from '../planner/errors.ts';
import { ModelError } from '../onnx/errors.ts';
import { describeIssues } from '../zod-issues.ts';

/** Every machine code a response can carry. */
export const ERROR_CODES = [
  // defaults per status
  'bad_request', 'not_found', 'method_not_allowed', 'payload_too_large', 'unsupported_media_type', 'internal',
  'bad_gateway', 'unavailable', 'gateway_timeout', 'server_error', 'client_error',
  // access and admission
  'unauthorized', 'overloaded', 'deadline_unmeetable', 'invalid_timeout',
  // routing and HTTP framing
  'unknown_route', 'invalid_path', 'unknown_model', 'bad_http_request', 'headers_too_large', 'invalid_header',
  'invalid_parameter', 'invalid_json', 'invalid_request', 'invalid_base64',
  // OIP tensors
  'datatype_mismatch', 'duplicate_input', 'duplicate_output', 'input_too_large', 'invalid_data', 'invalid_datatype',
  'invalid_input_name', 'invalid_shape', 'missing_data', 'shape_mismatch', 'unknown_output',
  // images
  'image_too_large', 'image_type_mismatch', 'images_not_supported', 'invalid_image', 'unsupported_image_type',
  // functions (the local gateway, as FC's trigger answers)
  'function_crashed', 'function_error', 'function_not_found', 'function_payload_too_large', 'function_timeout',
  'invalid_function_result', 'invoke_failed',
  // serving
  'plan_refused', 'artifact_missing', 'registry_invalid', 'store_failed', 'exchange_timeout', 'exchange_failed',
  'plan_failed', 'model_invalid',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface HttpErrorOptions {
  /** Short machine string, e.g. "bad_request", "unknown_model". Defaults per status. */
  code?: ErrorCode;
  /** Extra JSON-serialisable fields merged into the body (cannot override `error`/`code`). */
  details?: Record<string, unknown>;
  /** Extra response headers, e.g. `allow` for 405 or `retry-after` for 503. */
  headers?: Record<string, string>;
  cause?: unknown;
}

export interface HttpErrorBody {
  error: string;
  code: ErrorCode;
  [key: string]: unknown;
}

export class HttpError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
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

const DEFAULT_CODES: Record<number, ErrorCode> = {
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

function defaultCode(status: number): ErrorCode {
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

/** 503 with Retry-After (whole seconds, at least 1): the server refuses now, a later try may pass. */
export function overloaded(message: string, retryAfterMs: number, code: ErrorCode, details: Record<string, unknown> = {}): HttpError {
  const retryAfter = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new HttpError(503, message, { code, headers: { 'retry-after': String(retryAfter) }, details: { ...details, retryAfterSeconds: retryAfter } });
}

/** Structural, so that a ZodError from another copy of zod (a bundle) is still recognised. */
function isZodError(err: unknown): err is z.ZodError {
  return err instanceof z.ZodError || (typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'ZodError' && Array.isArray((err as { issues?: unknown }).issues));
}

/** An error's context fields, without the absent ones. */
const defined = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** The request id, when the error knows it, for the body of an error whose own message is not shown. */
const ridOf = (err: unknown): Record<string, unknown> => (err instanceof ServeError && err.requestId !== undefined ? { requestId: err.requestId } : {});

/**
 * The response for any thrown value. The client's own mistakes (4xx) name what was wrong;
 * failures of the service name the part that failed, without internals (keys, hosts, stacks);
 * anything unexpected is a generic 500.
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (isZodError(err)) {
    return badRequest(`invalid request: ${describeIssues(err.issues)}`, {
      code: 'invalid_request',
      details: { issues: err.issues.slice(0, 50).map((i) => ({ path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)), message: i.message })) },
      cause: err,
    });
  }
  if (err instanceof RequestRejectedError) return badRequest(err.message, { code: err.reason, details: defined(err.details), cause: err });
  if (err instanceof DeadlineUnmeetableError) return overloaded(err.message, err.predictedMs, 'deadline_unmeetable', defined(err.details));
  if (err instanceof MasterInvocationError) return badGateway(err.message, { details: defined(err.details), cause: err });
  if (err instanceof PlanningFailedError) return internal(err.message, { code: err.reason, details: defined(err.details), cause: err });
  if (err instanceof ArtifactMissingError || err instanceof ObjectNotFoundError) {
    return internal('a model artifact is missing from the store: publish the model again', { code: 'artifact_missing', details: ridOf(err), cause: err });
  }
  if (err instanceof RegistryInvalidError) return internal('the model registry in the store is invalid: publish the models again', { code: 'registry_invalid', cause: err });
  if (err instanceof StoreError) return badGateway(`the object store failed (${err.name}); retry later`, { code: 'store_failed', cause: err });
  if (err instanceof ExchangeTimeoutError) return gatewayTimeout('the request ran out of time waiting for its workers', { code: 'exchange_timeout', details: ridOf(err), cause: err });
  if (err instanceof ExchangeError) return badGateway(`the exchange between workers failed (${err.name})`, { code: 'exchange_failed', cause: err });
  if (err instanceof InvokeError) return badGateway(`function invocation failed (${err.name})`, { code: 'invoke_failed', cause: err });
  if (err instanceof PlanError) return internal(`no plan could be made: ${err.message}`, { code: 'plan_failed', cause: err });
  if (err instanceof ModelError) return internal(`the model could not be read: ${err.message}`, { code: 'model_invalid', cause: err });
  return internal('internal server error', { code: 'internal', cause: err });
}
