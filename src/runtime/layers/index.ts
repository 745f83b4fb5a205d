// Layer kernels (GEMM, fused bias + activation, softmax cross-entropy) for users and the example trainer, on host
// arrays or DeviceBuffers.
export {
  gemm,
  layersSimd,
  linearForward,
  linearBackwardInput,
  linearBackwardWeight,
  biasAct,
  biasActBackward,
  softmaxCrossEntropy,
} from './kernels.js';
export type { LinearShape } from './kernels.js';
export { loadCublas } from './device.js';
export type {
  Activation,
  BiasActArgs,
  BiasActBackwardArgs,
  Floats,
  GemmArgs,
  LayerSimd,
  SoftmaxCrossEntropyArgs,
} from './native.js';
