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
