import { createRequire } from 'node:module';

/**
 * The few OpenCV calls DB post-processing makes, typed. OpenCV.js (WebAssembly) is the library
 * PaddleOCR's own post-processing calls (findContours, minAreaRect, fillPoly), so boxes match
 * the reference. It takes about a second and ~100 MB to start, so it is loaded on first use,
 * only by instances that serve a text detector.
 */
export interface Mat { rows: number; cols: number; data: Uint8Array; data32S: Int32Array; delete(): void }
export interface MatVector { size(): number; get(i: number): Mat; push_back(m: Mat): void; delete(): void }
export interface RotatedRect { center: { x: number; y: number }; size: { width: number; height: number }; angle: number }
export interface OpenCv {
  Mat: new (rows?: number, cols?: number, type?: number) => Mat;
  MatVector: new () => MatVector;
  Scalar: new (...v: number[]) => unknown;
  CV_8UC1: number;
  CV_32SC2: number;
  RETR_LIST: number;
  CHAIN_APPROX_SIMPLE: number;
  matFromArray(rows: number, cols: number, type: number, data: ArrayLike<number>): Mat;
  findContours(image: Mat, contours: MatVector, hierarchy: Mat, mode: number, method: number): void;
  minAreaRect(points: Mat): RotatedRect;
  fillPoly(img: Mat, pts: MatVector, color: unknown): void;
  RotatedRect: { points(r: RotatedRect): { x: number; y: number }[] };
}

let loading: Promise<{ cv: OpenCv }> | undefined;

/**
 * Resolves with `{ cv }`, never with the module itself: Emscripten modules are thenables
 * whose `then` hands back the module, so resolving a promise with one never settles.
 */
export function openCv(): Promise<{ cv: OpenCv }> {
  loading ??= new Promise((resolve) => {
    // A CommonJS UMD build: required, not imported, so bundlers keep it one module.
    const cv = createRequire(import.meta.url)('@techstark/opencv-js') as OpenCv & { onRuntimeInitialized?: () => void };
    if (typeof cv.Mat === 'function') resolve({ cv });
    else cv.onRuntimeInitialized = () => resolve({ cv });
  });
  return loading;
}
