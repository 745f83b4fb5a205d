/**
 * The optimizer's view of the native addon (addon/src/optim/init.cc): typed signatures of its kernels.
 * Loaded lazily so importing the runtime does not require a built addon until an optimizer is made.
 */
import { addonPath, loadAddon } from '../addon.js';

export type KernelDType = 'float32' | 'bfloat16' | 'float16';
export type SimdPath = 'auto' | 'scalar' | 'avx2';

/** One AdamW step's hyperparameters, as the CPU kernel and the GPU one (device/adamw.ts) take them. */
export interface AdamwHyperparams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** the step number after incrementing: 1 on the first update */
  step: number;
  /** gradients are multiplied by this first (global-norm clipping); 1 for none */
  gradScale?: number;
}

export interface AdamwStepArgs extends AdamwHyperparams {
  param: Float32Array | Uint16Array;
  paramType: KernelDType;
  master?: Float32Array;
  grad: Float32Array | Uint16Array;
  gradType: KernelDType;
  m: Float32Array;
  v: Float32Array;
  simd?: SimdPath;
  /** 0 or absent: OMP_NUM_THREADS */
  threads?: number;
}

export interface OptimNative {
  adamwStep(args: AdamwStepArgs): void;
  sumSquares(args: { data: Float32Array | Uint16Array; dtype: KernelDType; simd?: SimdPath; threads?: number }): number;
  convertElements(args: {
    src: Float32Array | Uint16Array;
    srcType: KernelDType;
    dst: Float32Array | Uint16Array;
    dstType: KernelDType;
  }): void;
  /** the path a step takes for this request ('auto' follows DTRAIN_SIMD, then the CPU) */
  adamwSimd(request?: SimdPath): 'scalar' | 'avx2';
  /** threads a step uses for this request (0 or absent: OMP_NUM_THREADS, else 1) */
  adamwThreads(request?: number): number;
  streamLoop(args: { p: Float32Array; g: Float32Array; m: Float32Array; v: Float32Array }): void;
}

let cached: OptimNative | undefined;

export function optimNative(): OptimNative {
  if (cached) return cached;
  const addon = loadAddon() as Partial<OptimNative>;
  if (typeof addon.adamwStep !== 'function') throw new Error(`${addonPath()} has no optimizer kernels: rebuild it`);
  cached = addon as OptimNative;
  return cached;
}
