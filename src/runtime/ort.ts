/**
 * The one module that imports onnxruntime-node: everything else sees plain typed arrays.
 */
import * as ort from 'onnxruntime-node';

export interface FloatTensor { dims: number[]; data: Float32Array }
export interface Int64Tensor { dims: number[]; data: BigInt64Array }
export type Feed = FloatTensor | Int64Tensor;

export interface SessionOptions {
  /** Intra-op threads (FC vCPU emulation); ORT's default uses every core. */
  threads?: number;
  /**
   * ORT's CPU arena keeps each session's peak activations allocated for reuse. A worker holds
   * one session per group, so arenas multiply its memory; without them memory returns to the
   * allocator after each run (measured: same speed on all but the largest tiles).
   */
  memArena?: boolean;
}

export interface ModelSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, Feed>): Promise<Record<string, FloatTensor>>;
  release(): Promise<void>;
}

export class InferenceError extends Error {
  override name = 'InferenceError';
  constructor(message: string, readonly model: string, options?: { cause?: unknown }) {
    super(`${model}: ${message}`, options);
  }
}

export async function createSession(bytes: Uint8Array, label: string, opts: SessionOptions = {}): Promise<ModelSession> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: opts.threads ?? 0,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      enableCpuMemArena: opts.memArena ?? true,
    });
  } catch (cause) {
    throw new InferenceError(`cannot load model: ${(cause as Error).message}`, label, { cause });
  }
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) {
        ortFeeds[k] = v.data instanceof BigInt64Array ? new ort.Tensor('int64', v.data, v.dims) : new ort.Tensor('float32', v.data, v.dims);
      }
      let out: ort.InferenceSession.OnnxValueMapType;
      try {
        out = await session.run(ortFeeds);
      } catch (cause) {
        throw new InferenceError(`inference failed: ${(cause as Error).message}`, label, { cause });
      }
      const res: Record<string, FloatTensor> = {};
      for (const [k, v] of Object.entries(out)) {
        const t = v as ort.Tensor;
        if (t.type !== 'float32') throw new InferenceError(`output ${k} has type ${t.type}; only float32 outputs are supported`, label);
        res[k] = { dims: t.dims.slice(), data: t.data as Float32Array };
      }
      return res;
    },
    release: () => session.release(),
  };
}
