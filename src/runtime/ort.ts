/**
 * The one module that imports onnxruntime-node: everything else sees plain typed arrays
 * (src/tensor/dtype.ts says which array holds which element type).
 */
import * as ort from 'onnxruntime-node';
import { DTYPES, dtypeOf, type DType, type FloatTensor, type Tensor } from '../tensor/dtype.ts';

export type { DType, FloatTensor, Int64Tensor, Tensor } from '../tensor/dtype.ts';
/** What a session is fed: a tensor of any boundary dtype. */
export type Feed = Tensor;

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
  run(feeds: Record<string, Feed>): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
}

export class InferenceError extends Error {
  override name = 'InferenceError';
  constructor(message: string, readonly model: string, options?: { cause?: unknown }) {
    super(`${model}: ${message}`, options);
  }
}

/** A float32 tensor, or an error naming what it is instead (callers that only do float math). */
export function asFloat32(t: Tensor, what: string): FloatTensor {
  if (t.data instanceof Float32Array) return { dims: t.dims, data: t.data };
  throw new InferenceError(`is ${dtypeOf(t)}, expected float32`, what);
}

function toOrt(name: string, t: Tensor, label: string): ort.Tensor {
  const dtype = dtypeOf(t);
  // onnxruntime-node's binding has no bfloat16 tensor type (its JS Tensor has none either).
  if (dtype === 'bfloat16') throw new InferenceError(`input ${name} is bfloat16, which onnxruntime-node cannot feed`, label);
  return new ort.Tensor(dtype, t.data as ort.Tensor.DataTypeMap[Exclude<DType, 'bfloat16'>], t.dims);
}

function fromOrt(name: string, v: ort.Tensor, label: string): Tensor {
  const dims = v.dims.slice();
  if (!(DTYPES as readonly string[]).includes(v.type)) throw new InferenceError(`output ${name} has type ${v.type}; supported: ${DTYPES.join(', ')}`, label);
  const dtype = v.type as Exclude<DType, 'bfloat16'>;
  if (dtype === 'float16') {
    // Runtimes with Float16Array get one from ORT: keep the bits, as everywhere else.
    const d = v.data as ArrayBufferView;
    const bits = d instanceof Uint16Array ? d : new Uint16Array(d.buffer, d.byteOffset, d.byteLength / 2);
    return { dtype, dims, data: bits };
  }
  return { dtype, dims, data: v.data } as Tensor;
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
      for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(k, v, label);
      let out: ort.InferenceSession.OnnxValueMapType;
      try {
        out = await session.run(ortFeeds);
      } catch (cause) {
        throw new InferenceError(`inference failed: ${(cause as Error).message}`, label, { cause });
      }
      const res: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(out)) res[k] = fromOrt(k, v as ort.Tensor, label);
      return res;
    },
    release: () => session.release(),
  };
}
