/** Errors of the exchange between a chain's workers. */
export class ExchangeError extends Error {
  override name = 'ExchangeError';
  readonly key: string;
  constructor(message: string, opts: { key: string; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.key = opts.key;
  }
}

/** A neighbour's strip or partial did not arrive before the deadline. */
export class ExchangeTimeoutError extends ExchangeError {
  override name = 'ExchangeTimeoutError';
}

/** Another invocation of the request failed, so waiting is pointless. */
export class ExchangeAbortedError extends ExchangeError {
  override name = 'ExchangeAbortedError';
}
