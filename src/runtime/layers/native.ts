/**
 * The layers' view of the native addon (addon/src/layers/init.cc): typed signatures of its kernels.
 * Loaded lazily so importing the runtime does not require a built addon until a kernel is called.
 */
import { addonPath, loadAddon } from '../addon.js';
import type { DeviceBuffer } from '../device/device-buffer.js';

/** A SIMD path request: 'auto' follows DTRAIN_SIMD, then the CPU (AVX-512F, else AVX2 + FMA, else scalar). */
export type LayerSimd = 'auto' | 'scalar' | 'avx2' | 'avx512';
export type Activation = 'none' | 'relu' | 'gelu';
/** A float operand: a host array, or a DeviceBuffer (then every operand of the call is one; see device.ts). */
export type Floats = Float32Array | DeviceBuffer;

export interface GemmArgs {
  /** op(A) is m×k; stored k×m when transA. On the device, a and b may both be bfloat16 (fp32 accumulation). */
  a: Floats;
  /** op(B) is k×n; stored n×k when transB */
  b: Floats;
  /** m×n, row-major */
  c: Floats;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  /** c += op(A)·op(B) instead of c = op(A)·op(B) */
  accumulate?: boolean;
  /** the CPU path; ignored on the device */
  simd?: LayerSimd;
}

export interface BiasActArgs {
  /** rows×cols pre-activation; the bias is added in place */
  z: Floats;
  bias?: Floats;
  /** act(z + bias); default: z itself (in place) */
  y?: Floats;
  act?: Activation;
  rows: number;
  cols: number;
  /** the CPU path; ignored on the device */
  simd?: LayerSimd;
}

export interface BiasActBackwardArgs {
  dy: Floats;
  /** the forward's pre-activation (for ReLU its output serves as well) */
  z: Floats;
  /** dy ⊙ act'(z); default: dy itself (in place) */
  dz?: Floats;
  /** the column sums of dz */
  dbias?: Floats;
  act?: Activation;
  rows: number;
  cols: number;
  /** dbias += instead of dbias = */
  accumulate?: boolean;
  /** the CPU path; ignored on the device */
  simd?: LayerSimd;
}

export interface SoftmaxCrossEntropyArgs {
  /** rows×classes */
  logits: Floats;
  /** one class in [0, classes) per row */
  labels: Int32Array | DeviceBuffer;
  rows: number;
  classes: number;
  /** grad = (softmax − one-hot) × scale; default 1 / rows (the gradient of the mean loss) */
  scale?: number;
  grad?: Floats;
  /** the CPU path; ignored on the device */
  simd?: LayerSimd;
}

/** The addon's positional calls (the object forms above are kernels.ts's: named lookups cost more in C++). */
export interface LayersNative {
  /** flags: 1 transA, 2 transB, 4 accumulate */
  gemm(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    m: number,
    n: number,
    k: number,
    flags: number,
    simd?: LayerSimd,
  ): void;
  /** act: ACT_CODES */
  biasAct(
    z: Float32Array,
    bias: Float32Array | null,
    y: Float32Array | null,
    act: number,
    rows: number,
    cols: number,
    simd?: LayerSimd,
  ): void;
  biasActBackward(
    dy: Float32Array,
    z: Float32Array,
    dz: Float32Array | null,
    dbias: Float32Array | null,
    act: number,
    rows: number,
    cols: number,
    accumulate: boolean,
    simd?: LayerSimd,
  ): void;
  /** the mean loss over rows */
  softmaxCrossEntropy(
    logits: Float32Array,
    labels: Int32Array,
    rows: number,
    classes: number,
    scale: number,
    grad: Float32Array | null,
    simd?: LayerSimd,
  ): number;
  layersSimd(request?: LayerSimd): 'scalar' | 'avx2' | 'avx512';
}

/** The addon's activation codes (addon/src/layers/init.cc). */
export const ACT_CODES: Readonly<Record<Activation, number>> = { none: 0, relu: 1, gelu: 2 };

let cached: LayersNative | undefined;

export function layersNative(): LayersNative {
  if (cached) return cached;
  const addon = loadAddon() as Partial<LayersNative>;
  if (typeof addon.gemm !== 'function') throw new Error(`${addonPath()} has no layer kernels: rebuild it`);
  cached = addon as LayersNative;
  return cached;
}
