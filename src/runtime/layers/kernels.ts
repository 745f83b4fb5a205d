/**
 * The layer kernels for users: one thread (the caller's), fp32, row-major. `gemm` is the general product;
 * the linear* helpers name its three uses in a dense layer Y = X·W (W inputs×outputs) or, with `transW`,
 * Y = X·Wᵀ (W outputs×inputs, torch.nn.Linear's layout). Every call takes host arrays or DeviceBuffers
 * (all of one kind): DeviceBuffers run the CUDA kernels (device.ts), host arrays the CPU ones.
 */
import type { DeviceBuffer } from '../device/device-buffer.js';
import { deviceBiasAct, deviceBiasActBackward, deviceGemm, deviceSoftmaxCrossEntropy, onDevice } from './device.js';
import {
  ACT_CODES,
  layersNative,
  type Activation,
  type BiasActArgs,
  type BiasActBackwardArgs,
  type Floats,
  type GemmArgs,
  type LayerSimd,
  type SoftmaxCrossEntropyArgs,
} from './native.js';

const GEMM_OPERANDS = ['a', 'b', 'c'];
const BIAS_ACT_OPERANDS = ['z', 'bias', 'y'];
const BACKWARD_OPERANDS = ['dy', 'z', 'dz', 'dbias'];
const XENT_OPERANDS = ['logits', 'labels', 'grad'];

// After onDevice() said so, every given operand is a DeviceBuffer (or every one a host array).
const dev = (v: Floats | Int32Array): DeviceBuffer => v as DeviceBuffer;
const devOrNull = (v: Floats | undefined): DeviceBuffer | null => (v ?? null) as DeviceBuffer | null;
const host = (v: Floats): Float32Array => v as Float32Array;
const hostOrNull = (v: Floats | undefined): Float32Array | null => (v ?? null) as Float32Array | null;

export function gemm(g: GemmArgs): void {
  // The common case first: GEMM is the call made most often, on the smallest products.
  const allHost = g.a instanceof Float32Array && g.b instanceof Float32Array && g.c instanceof Float32Array;
  if (!allHost && onDevice('gemm', GEMM_OPERANDS, [g.a, g.b, g.c]))
    return deviceGemm({ ...g, a: dev(g.a), b: dev(g.b), c: dev(g.c) });
  const flags = (g.transA ? 1 : 0) | (g.transB ? 2 : 0) | (g.accumulate ? 4 : 0);
  layersNative().gemm(host(g.a), host(g.b), host(g.c), g.m, g.n, g.k, flags, g.simd);
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
export function linearForward(a: LinearShape & { x: Floats; w: Floats; y: Floats; accumulate?: boolean }): void {
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
  a: LinearShape & { dy: Floats; w: Floats; dx: Floats; accumulate?: boolean },
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
  a: LinearShape & { x: Floats; dy: Floats; dw: Floats; accumulate?: boolean },
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
  const act = actCode(a.act);
  if (onDevice('biasAct', BIAS_ACT_OPERANDS, [a.z, a.bias, a.y]))
    return deviceBiasAct(dev(a.z), devOrNull(a.bias), devOrNull(a.y), act, a.rows, a.cols);
  layersNative().biasAct(host(a.z), hostOrNull(a.bias), hostOrNull(a.y), act, a.rows, a.cols, a.simd);
}

/** dz = dy ⊙ act'(z) (dz defaults to dy); dbias = (or +=) its column sums. */
export function biasActBackward(a: BiasActBackwardArgs): void {
  const act = actCode(a.act);
  if (onDevice('biasActBackward', BACKWARD_OPERANDS, [a.dy, a.z, a.dz, a.dbias])) {
    const [dz, dbias] = [devOrNull(a.dz), devOrNull(a.dbias)];
    return deviceBiasActBackward(dev(a.dy), dev(a.z), dz, dbias, act, a.rows, a.cols, !!a.accumulate);
  }
  const [dz, dbias] = [hostOrNull(a.dz), hostOrNull(a.dbias)];
  layersNative().biasActBackward(host(a.dy), host(a.z), dz, dbias, act, a.rows, a.cols, !!a.accumulate, a.simd);
}

/** The mean cross-entropy of softmax(logits) against labels; fills grad when given. */
export function softmaxCrossEntropy(a: SoftmaxCrossEntropyArgs): number {
  const scale = a.scale ?? 1 / Math.max(a.rows, 1);
  if (onDevice('softmaxCrossEntropy', XENT_OPERANDS, [a.logits, a.labels, a.grad]))
    return deviceSoftmaxCrossEntropy(dev(a.logits), dev(a.labels), a.rows, a.classes, scale, devOrNull(a.grad));
  const [logits, labels] = [host(a.logits), a.labels as Int32Array];
  return layersNative().softmaxCrossEntropy(logits, labels, a.rows, a.classes, scale, hostOrNull(a.grad), a.simd);
}
