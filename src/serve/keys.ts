/**
 * Object-store key layout. Artifacts are immutable and content-addressed; request data lives
 * under one prefix per request, deleted when the request ends.
 */
export const artifactKeys = {
  plan: (modelSha: string, planName: string) => `artifacts/${modelSha}/plans/${planName}.json`,
  subModel: (subSha: string) => `artifacts/submodels/${subSha}.onnx`,
};

/**
 * Request keys are not per attempt: what is written under them is a pure function of the plan,
 * the input and the tile (ORT on CPU is deterministic for a fixed thread count), and every put
 * replaces the object whole. A retried worker, or a late duplicate of one that timed out,
 * writes the same bytes, so readers never see a mix of attempts.
 */
export const requestPrefix = (requestId: string) => `requests/${requestId}/`;

export const requestKeys = {
  /**
   * A producer's bundle (halo strips and partials for every reader, bundles.ts). Flat in the
   * request's folder, which the handler's input bundle creates before anyone waits in it (the
   * filesystem store's native wait watches that folder).
   */
  bundle: (rid: string, source: string) => `${requestPrefix(rid)}b-${source}`,
  /** A whole (untiled) tensor read by other invocations, e.g. an SE scale vector or a model output. */
  whole: (rid: string, stage: number, outputIndex: number) => `${requestPrefix(rid)}w-s${stage}o${outputIndex}`,
  /** Written by the master when an invocation failed: waiting workers give up at once. */
  abort: (rid: string) => `${requestPrefix(rid)}abort`,
};
