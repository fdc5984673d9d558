import { z } from 'zod';
import { dtypeSchema } from '../tensor/dtype.ts';

/**
 * Version of the plan format; bump on any incompatible change, and upgrade the old version in
 * `upgradePlanJson` when that can be done without loss. 3: `tile.params` became `tile.pads`.
 */
export const PLAN_VERSION = 3;

const int = z.number().int();
const nat = int.nonnegative();

/** A rectangle on a feature map: rows `[y0, y1)`, columns `[x0, x1)`. */
export const regionSchema = z.object({ y0: int, y1: int, x0: int, x1: int }).strict();
export type Region = z.infer<typeof regionSchema>;

/** `dtype`: the element type of a tensor crossing a stage boundary (absent means float32). */
export const tensorInfoSchema = z.object({ name: z.string().min(1), shape: z.array(nat), dtype: dtypeSchema.optional() }).strict();

/** JSON has no -Infinity; MaxPool borders are filled with it. */
export const fillSchema = z.union([z.number(), z.literal('-inf')]);

/**
 * A run-time Pad inserted into a group's sub-model. Its per-tile value is
 * `[top, left, bottom, right]`: positive values pad with `fill` (image borders), negative values
 * crop (a tensor computed over a larger region than this consumer needs).
 */
export const runtimePadSchema = z.discriminatedUnion('use', [
  /** `mode`: a model Pad's reflect/edge border (absent: constant `fill`); its crop sides are cropped first. */
  z.object({ use: z.literal('input'), name: z.string(), node: nat, input: nat, tensor: z.string(), fill: fillSchema, mode: z.enum(['reflect', 'edge']).optional() }).strict(),
  z.object({ use: z.literal('output'), name: z.string(), tensor: z.string() }).strict(),
  /** Crops an op's own output back inside the map (ConvTranspose computes past the borders). */
  z.object({ use: z.literal('crop'), name: z.string(), node: nat, tensor: z.string() }).strict(),
  /** AveragePool divisor mask: ones over the tile input, padded by mask1 (fill 1) then mask2 (fill 0). */
  z.object({ use: z.enum(['mask1', 'mask2']), name: z.string(), node: nat, tensor: z.string() }).strict(),
]);
export type RuntimePad = z.infer<typeof runtimePadSchema>;

export const tileSchema = z.object({
  index: nat,
  row: nat,
  col: nat,
  /** Regions of the group's spatial inputs this tile reads (halo included, clipped to the map). */
  inputs: z.array(z.object({ tensor: z.string(), region: regionSchema }).strict()),
  /** Where this tile's outputs land in each group output map. */
  outputs: z.array(z.object({ tensor: z.string(), region: regionSchema }).strict()),
  /**
   * This tile's values for the group's runtime pads (`runtimePads`, by name): `[top, left,
   * bottom, right]` pads, crops and masks, fed to the shared sub-model as inputs.
   */
  pads: z.record(z.string(), z.tuple([int, int, int, int])),
  flops: z.number().nonnegative(),
  /** Largest input+output activation bytes of any one op in this tile (at the plan's batch size). */
  peakBytes: nat,
}).strict();
export type Tile = z.infer<typeof tileSchema>;

const subModelInfo = z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: nat, opset: nat }).strict();

export const groupStageSchema = z.object({
  kind: z.literal('group'),
  id: nat,
  label: z.string(),
  /** Indices into the model's graph.node (names are optional in ONNX). */
  nodes: z.array(nat).min(1),
  grid: z.object({ rows: int.positive(), cols: int.positive() }).strict(),
  inputs: z.array(tensorInfoSchema.extend({ spatial: z.boolean() }).strict()),
  outputs: z.array(tensorInfoSchema),
  runtimePads: z.array(runtimePadSchema),
  tiles: z.array(tileSchema).min(1),
  flops: z.object({ full: z.number().nonnegative(), tiles: z.number().nonnegative(), redundancy: z.number().nonnegative() }).strict(),
  bytes: z.object({ weights: nat, tileInputs: nat, tileOutputs: nat, fullInput: nat }).strict(),
  subModel: subModelInfo,
}).strict();
export type GroupStage = z.infer<typeof groupStageSchema>;

/**
 * A global reduction over H and W (GlobalAveragePool, GlobalMaxPool, ReduceMean/Max/Sum over
 * axes 2,3). Inside a chain each worker reduces the cell it owns, never its halo, and the
 * partials (C floats per image) are combined in worker order.
 */
export const reductionSchema = z.object({
  node: nat,
  op: z.enum(['sum', 'mean', 'max']),
  input: z.string(),
  output: z.string(),
  keepdims: z.boolean(),
}).strict();
export type Reduction = z.infer<typeof reductionSchema>;

export const masterStageSchema = z.object({
  kind: z.literal('master'),
  id: nat,
  label: z.string(),
  nodes: z.array(nat).min(1),
  inputs: z.array(tensorInfoSchema.extend({ shape: z.array(nat).optional() }).strict()),
  outputs: z.array(tensorInfoSchema.extend({ shape: z.array(nat).optional() }).strict()),
  /** Why these nodes are not tiled (first reason per op type). */
  reasons: z.record(z.string(), z.string()),
  flops: z.number().nonnegative(),
  subModel: subModelInfo,
  /**
   * Set when the stage reads feature maps only through global reductions: inside a chain the
   * workers run it (partials, then `branch` on the combined vectors), and no map is gathered.
   * `branch` is the rest of the stage as a model (absent when the reductions are all it does).
   */
  reduce: z.object({
    reductions: z.array(reductionSchema).min(1),
    branch: subModelInfo.extend({ nodes: z.array(nat).min(1), inputs: z.array(z.string()), outputs: z.array(z.string()) }).strict().optional(),
  }).strict().optional(),
}).strict();
export type MasterStage = z.infer<typeof masterStageSchema>;

export const stageSchema = z.discriminatedUnion('kind', [groupStageSchema, masterStageSchema]);
export type Stage = z.infer<typeof stageSchema>;

/**
 * Consecutive stages one worker invocation per tile runs end to end, keeping its tile's
 * activations in memory: groups sharing a grid, and the reduction stages between them. Only
 * halo strips and reduction partials move between its workers, which must all run at once
 * when the chain has more than one stage.
 */
export const chainSchema = z.object({
  id: nat,
  stages: z.array(nat).min(1),
  workers: int.positive(),
}).strict();
export type Chain = z.infer<typeof chainSchema>;

export const planSchema = z.object({
  version: z.literal(PLAN_VERSION),
  model: z.object({ name: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: nat, opset: nat }).strict(),
  input: tensorInfoSchema,
  outputs: z.array(tensorInfoSchema),
  stages: z.array(stageSchema).min(1),
  chains: z.array(chainSchema),
  /** Widest co-scheduled chain the planner was allowed (the worker function's maximum instances). */
  maxWorkers: int.positive(),
  /** What the cost model predicted for this plan (recorded by the automatic planner). */
  prediction: z.object({
    profile: z.string(),
    objective: z.enum(['latency', 'cost']),
    vcpu: z.number().positive(),
    workerMemoryMb: z.number().positive(),
    concurrency: nat,
    batch: nat,
    sloMs: z.number().positive().optional(),
    latencyMs: z.number().nonnegative(),
    workerPeakMb: z.number().nonnegative(),
    invocations: nat,
    storeRequests: nat,
    storeBytes: nat,
    computeUnits: z.number().nonnegative(),
    usdPer1000: z.number().nonnegative(),
  }).strict().optional(),
  summary: z.object({
    groups: nat,
    chains: nat,
    tiles: nat,
    masterStages: nat,
    /** Monolithic FLOPs of the tiled part, the tiles' FLOPs, and their ratio. */
    flops: z.number().nonnegative(),
    tileFlops: z.number().nonnegative(),
    redundancy: z.number().nonnegative(),
    masterFlops: z.number().nonnegative(),
    subModelBytes: nat,
  }).strict(),
}).strict();
export type Plan = z.infer<typeof planSchema>;

/** Key of a reduction stage's branch model in a plan's sub-model map (stage ids are >= 0). */
export const branchKey = (stageId: number) => -1 - stageId;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Plan JSON of an older format brought to the current one, before it is parsed. Version 2
 * differs only in the name of the tiles' runtime pads (`params`), so plans published, or cached
 * per shape, by older code keep loading, with the same sub-models (their hashes do not depend on
 * the field name), and no store has to be republished. Anything else is returned as it is.
 */
export function upgradePlanJson(json: unknown): unknown {
  if (!isRecord(json) || json.version !== 2 || !Array.isArray(json.stages)) return json;
  const tile = (t: unknown) => {
    if (!isRecord(t) || !('params' in t)) return t;
    const { params, ...rest } = t;
    return { ...rest, pads: params };
  };
  const stages = json.stages.map((s: unknown) => (isRecord(s) && Array.isArray(s.tiles) ? { ...s, tiles: s.tiles.map(tile) } : s));
  return { ...json, version: PLAN_VERSION, stages };
}

/** Why plan JSON cannot be read for its version (after `upgradePlanJson`), or undefined. */
export function planVersionProblem(json: unknown): string | undefined {
  if (!isRecord(json) || json.version === PLAN_VERSION || json.version === undefined) return undefined;
  return `plan format version ${JSON.stringify(json.version)} is not supported: this code reads version ${PLAN_VERSION} (and upgrades version 2)`;
}

export const planJsonSchema = () => z.toJSONSchema(planSchema);
