/** Errors of the distributed runtime (handler, master, worker). */
export class ServeError extends Error {
  override name = 'ServeError';
  readonly requestId?: string;
  constructor(message: string, opts: { requestId?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.requestId = opts.requestId;
  }
  /** Identifiers that survive the trip across a function boundary (FunctionError.details). */
  get details(): Record<string, unknown> {
    return { requestId: this.requestId };
  }
}

/** A tile object that is not in our format or fails its checksum. */
export class TileFormatError extends ServeError {
  override name = 'TileFormatError';
  readonly key: string;
  constructor(message: string, opts: { key: string; requestId?: string; cause?: unknown }) {
    super(`${opts.key}: ${message}`, opts);
    this.key = opts.key;
  }
  override get details() { return { ...super.details, key: this.key }; }
}

/** A worker invocation failed (crashed, timed out, threw): names the chain, its first stage and the tile. */
export class WorkerFailedError extends ServeError {
  override name = 'WorkerFailedError';
  readonly stage: number;
  readonly tile: number;
  readonly chain?: number;
  constructor(message: string, opts: { stage: number; tile: number; chain?: number; requestId?: string; cause?: unknown }) {
    super(`${opts.chain === undefined ? '' : `chain ${opts.chain} `}stage ${opts.stage} tile ${opts.tile}: ${message}`, opts);
    this.stage = opts.stage;
    this.tile = opts.tile;
    this.chain = opts.chain;
  }
  override get details() { return { ...super.details, stage: this.stage, tile: this.tile, chain: this.chain }; }
}

/** The master failed to run a request (its own stage, or a worker failure it reports). */
export class MasterFailedError extends ServeError {
  override name = 'MasterFailedError';
}

/** A plan or sub-model artifact is missing from the store: the model was not published. */
export class ArtifactMissingError extends ServeError {
  override name = 'ArtifactMissingError';
  readonly key: string;
  constructor(message: string, opts: { key: string; cause?: unknown }) {
    super(`${message} (${opts.key})`, opts);
    this.key = opts.key;
  }
  override get details() { return { ...super.details, key: this.key }; }
}

/**
 * The request does not fit the model (its shape, dtype, or a model without a plan): the client
 * must change it. `reason` is the machine code the HTTP layer answers with (src/http/errors.ts).
 */
export class RequestRejectedError extends ServeError {
  override name = 'RequestRejectedError';
  readonly reason: 'bad_request' | 'shape_mismatch';
  readonly context: Record<string, unknown>;
  constructor(message: string, opts: { reason?: 'bad_request' | 'shape_mismatch'; context?: Record<string, unknown>; requestId?: string; cause?: unknown } = {}) {
    super(message, opts);
    this.reason = opts.reason ?? 'bad_request';
    this.context = opts.context ?? {};
  }
  override get details() { return { ...super.details, ...this.context }; }
}

/** The plan predicts more time than the request has left: retry later or with a longer deadline. */
export class DeadlineUnmeetableError extends ServeError {
  override name = 'DeadlineUnmeetableError';
  readonly predictedMs: number;
  readonly leftMs: number;
  constructor(message: string, opts: { predictedMs: number; leftMs: number; requestId?: string }) {
    super(message, opts);
    this.predictedMs = opts.predictedMs;
    this.leftMs = opts.leftMs;
  }
  override get details() { return { ...super.details, predictedMs: Math.round(this.predictedMs), leftMs: this.leftMs }; }
}

/** Invoking the master failed: its function threw (`context` carries what it reported) or the invocation did. */
export class MasterInvocationError extends ServeError {
  override name = 'MasterInvocationError';
  readonly context: Record<string, unknown>;
  constructor(message: string, opts: { requestId: string; context?: Record<string, unknown>; cause?: unknown }) {
    super(message, opts);
    this.context = opts.context ?? {};
  }
  override get details() { return { ...super.details, ...this.context }; }
}

/**
 * No plan could be made, or checked against monolithic ORT, for a model served without a
 * committed plan: `plan_refused` when the check found a mismatch.
 */
export class PlanningFailedError extends ServeError {
  override name = 'PlanningFailedError';
  readonly reason: 'internal' | 'plan_refused';
  readonly context: Record<string, unknown>;
  constructor(message: string, opts: { reason?: 'internal' | 'plan_refused'; context?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts);
    this.reason = opts.reason ?? 'internal';
    this.context = opts.context ?? {};
  }
  override get details() { return { ...super.details, ...this.context }; }
}

/** The registry object in the store is not a registry (written by another version, or damaged). */
export class RegistryInvalidError extends ServeError {
  override name = 'RegistryInvalidError';
  readonly key: string;
  constructor(message: string, opts: { key: string; cause?: unknown }) {
    super(`${opts.key}: ${message}`, opts);
    this.key = opts.key;
  }
  override get details() { return { ...super.details, key: this.key }; }
}
