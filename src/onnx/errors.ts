/** Errors raised while reading or interpreting an ONNX model. */
export class ModelError extends Error {
  override name = 'ModelError';
  readonly model?: string;
  constructor(message: string, opts: { model?: string; cause?: unknown } = {}) {
    super(opts.model ? `${opts.model}: ${message}` : message, { cause: opts.cause });
    this.model = opts.model;
  }
}

/** The bytes are not a decodable ONNX ModelProto (truncated, corrupt, or another format). */
export class ModelDecodeError extends ModelError {
  override name = 'ModelDecodeError';
}

/** The model is an ONNX model, but something in it cannot be handled (named node and op). */
export class UnsupportedModelError extends ModelError {
  override name = 'UnsupportedModelError';
  readonly node?: string;
  readonly op?: string;
  constructor(message: string, opts: { model?: string; node?: string; op?: string; cause?: unknown } = {}) {
    super(opts.node ? `node ${opts.node}${opts.op ? ` (${opts.op})` : ''}: ${message}` : message, opts);
    this.node = opts.node;
    this.op = opts.op;
  }
}

/** The requested input shape does not fit the model's declared input. */
export class InputShapeError extends ModelError {
  override name = 'InputShapeError';
  readonly input: string;
  constructor(message: string, opts: { model?: string; input: string; cause?: unknown }) {
    super(`input ${opts.input}: ${message}`, opts);
    this.input = opts.input;
  }
}
