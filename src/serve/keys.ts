/**
 * Object-store key layout. Artifacts are immutable and content-addressed; request data lives
 * under one prefix per request, deleted when the request ends.
 */
export const artifactKeys = {
  plan: (modelSha: string, planName: string) => `artifacts/${modelSha}/plans/${planName}.json`,
  subModel: (subSha: string) => `artifacts/submodels/${subSha}.onnx`,
};

export const requestPrefix = (requestId: string) => `requests/${requestId}/`;

export const requestKeys = {
  input: (rid: string) => `${requestPrefix(rid)}input`,
  output: (rid: string, i: number) => `${requestPrefix(rid)}output-${i}`,
  /** Piece of a producer's output tensor cut for one consumer tile (or for the master). */
  piece: (rid: string, from: PieceSource, outputIndex: number, to: PieceSink) =>
    `${requestPrefix(rid)}s${from.stage}/${from.tile === undefined ? 'm' : `t${from.tile}`}/o${outputIndex}/${to.tile === undefined ? 'master' : `s${to.stage}-t${to.tile}`}`,
  /** A whole (untiled) tensor a group reads in full, e.g. an SE scale vector. */
  whole: (rid: string, stage: number, outputIndex: number) => `${requestPrefix(rid)}s${stage}/m/o${outputIndex}/whole`,
};

export interface PieceSource { stage: number; tile?: number }
export interface PieceSink { stage: number; tile?: number }
