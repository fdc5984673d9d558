/**
 * Errors specific to the Function Compute adapter (FcInvoker). They extend InvokeError, so code
 * that handles "any invocation failure" keeps working; code that cares can tell an FC API refusal
 * (bad credentials, throttling, server error) apart from a failing function.
 */
import { InvokeError } from './errors.ts';
import type { InvokeErrorOptions } from './errors.ts';

export interface FcApiErrorOptions extends InvokeErrorOptions {
  /** FC error code from the `{Code, Message, RequestId}` body, e.g. "SignatureNotMatch". */
  code: string;
  /** HTTP status of the FC API response. */
  statusCode: number;
}

/**
 * The FC API refused the InvokeFunction request itself (4xx/5xx with an FC error body) for a
 * reason no other InvokeError subclass covers: throttling (429 ResourceExhausted/…Throttling),
 * bad arguments, FC internal errors. The function did not run (or its outcome is unknown).
 */
export class FcApiError extends InvokeError {
  readonly code: string;
  readonly statusCode: number;

  constructor(message: string, options: FcApiErrorOptions) {
    super(message, options);
    this.code = options.code;
    this.statusCode = options.statusCode;
  }
}

/**
 * Authentication/authorization failure (HTTP 401/403): InvalidAccessKeyId, SignatureNotMatch,
 * InvalidSecurityToken (missing/wrong/expired STS token), RequestTimeTooSkewed, AccessDenied, ….
 * The message names the FC error code. Retrying with the same credentials will not help.
 */
export class FcAuthError extends FcApiError {}
