/**
 * The layer kernels for users: one thread (the caller's), fp32, row-major. `gemm` is the general product;
 * the linear* helpers name its three uses in a dense layer Y = X·W (W inputs×outputs) or, with `transW`,
 * Y = X·Wᵀ (W outputs×inputs, torch.nn.Linear's layout).
 */
import {
  ACT_CODES,
  layersNative,
  type Activation,
  type BiasActArgs,
  type BiasActBackwardArgs,
  type GemmArgs,
  type LayerSimd,
  type SoftmaxCrossEntropyArgs,
} from './native.js';

export function gemm(g: GemmArgs): void {
  const flags = (g.transA ? 1 : 0) | (g.transB ? 2 : 0) | (g.accumulate ? 4 : 0);
  layersNative().gemm(g.a, g.b, g.c, g.m, g.n, g.k, flags, g.simd);
}

function actCode(act: Activation | undefined): number {
  const name = act ?? 'none';
  const code = Object.hasOwn(ACT_CODES, name) ? ACT_CODES[name] : undefined;
  if (code === undefined) throw new TypeError(`act must be none, relu or gelu, got '${String(act)}'`);
  return code;
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
  gemm({
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
  gemm({
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
  gemm({
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
export function biasAct(a: BiasActArgs): void {
  layersNative().biasAct(a.z, a.bias ?? null, a.y ?? null, actCode(a.act), a.rows, a.cols, a.simd);
}

/** dz = dy ⊙ act'(z) (dz defaults to dy); dbias = (or +=) its column sums. */
export function biasActBackward(a: BiasActBackwardArgs): void {
  const act = actCode(a.act);
  layersNative().biasActBackward(a.dy, a.z, a.dz ?? null, a.dbias ?? null, act, a.rows, a.cols, !!a.accumulate, a.simd);
}

/** The mean cross-entropy of softmax(logits) against labels; fills grad when given. */
export function softmaxCrossEntropy(a: SoftmaxCrossEntropyArgs): number {
  const scale = a.scale ?? 1 / Math.max(a.rows, 1);
  return layersNative().softmaxCrossEntropy(a.logits, a.labels, a.rows, a.classes, scale, a.grad ?? null, a.simd);
}
