/**
 * The layer kernels for users: one thread (the caller's), fp32, row-major. `gemm` is the general product;
 * the linear* helpers name its three uses in a dense layer Y = X·W (W inputs×outputs) or, with `transW`,
 * Y = X·Wᵀ (W outputs×inputs, torch.nn.Linear's layout).
 */
import {
  layersNative,
  type BiasActArgs,
  type BiasActBackwardArgs,
  type GemmArgs,
  type LayerSimd,
  type SoftmaxCrossEntropyArgs,
} from './native.js';

export function gemm(args: GemmArgs): void {
  layersNative().gemm(args);
}

/** The SIMD path the layer kernels take for `request` (default 'auto'); throws when the CPU lacks it. */
export function layersSimd(request: LayerSimd = 'auto'): 'scalar' | 'avx2' | 'avx512' {
  return layersNative().layersSimd(request);
}

export interface LinearShape {
  rows: number;
  inputs: number;
  outputs: number;
  /** W is stored outputs×inputs (Y = X·Wᵀ) */
  transW?: boolean;
  simd?: LayerSimd;
}

/** y (rows×outputs) = x·W, or += with accumulate. */
export function linearForward(
  a: LinearShape & { x: Float32Array; w: Float32Array; y: Float32Array; accumulate?: boolean },
): void {
  layersNative().gemm({
    a: a.x,
    b: a.w,
    c: a.y,
    m: a.rows,
    n: a.outputs,
    k: a.inputs,
    transB: !!a.transW,
    accumulate: a.accumulate,
    simd: a.simd,
  });
}

/** dx (rows×inputs) = dy·Wᵀ (dy·W with transW), or += with accumulate. */
export function linearBackwardInput(
  a: LinearShape & { dy: Float32Array; w: Float32Array; dx: Float32Array; accumulate?: boolean },
): void {
  layersNative().gemm({
    a: a.dy,
    b: a.w,
    c: a.dx,
    m: a.rows,
    n: a.inputs,
    k: a.outputs,
    transB: !a.transW,
    accumulate: a.accumulate,
    simd: a.simd,
  });
}

/** dW = xᵀ·dy (inputs×outputs; with transW dyᵀ·x, outputs×inputs), or += with accumulate. */
export function linearBackwardWeight(
  a: LinearShape & { x: Float32Array; dy: Float32Array; dw: Float32Array; accumulate?: boolean },
): void {
  const [first, second, m, n] = a.transW ? [a.dy, a.x, a.outputs, a.inputs] : [a.x, a.dy, a.inputs, a.outputs];
  layersNative().gemm({
    a: first,
    b: second,
    c: a.dw,
    m,
    n,
    k: a.rows,
    transA: true,
    accumulate: a.accumulate,
    simd: a.simd,
  });
}

/** z += bias, y = act(z) (y defaults to z). */
export function biasAct(args: BiasActArgs): void {
  layersNative().biasAct(args);
}

/** dz = dy ⊙ act'(z) (dz defaults to dy); dbias = (or +=) its column sums. */
export function biasActBackward(args: BiasActBackwardArgs): void {
  layersNative().biasActBackward(args);
}

/** The mean cross-entropy of softmax(logits) against labels; fills grad when given. */
export function softmaxCrossEntropy(args: SoftmaxCrossEntropyArgs): number {
  return layersNative().softmaxCrossEntropy(args);
}
