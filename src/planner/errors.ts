/** Errors raised while building a partition plan. */
export class PlanError extends Error {
  override name = 'PlanError';
  readonly model?: string;
  readonly group?: number;
  constructor(message: string, opts: { model?: string; group?: number; cause?: unknown } = {}) {
    super(`${opts.model ? `${opts.model}: ` : ''}${opts.group !== undefined ? `group ${opts.group}: ` : ''}${message}`, { cause: opts.cause });
    this.model = opts.model;
    this.group = opts.group;
  }
}

/** A grid asks for more tiles along an axis than the group's output map has positions. */
export class GridTooLargeError extends PlanError {
  override name = 'GridTooLargeError';
}

/** A grid spec or cut spec that cannot be parsed or does not fit the model's groups. */
export class PlanSpecError extends PlanError {
  override name = 'PlanSpecError';
}

/** A plan file that does not validate, or does not belong to the model it is used with. */
export class PlanMismatchError extends PlanError {
  override name = 'PlanMismatchError';
}
