// Layer kernels (GEMM, fused bias + activation, softmax cross-entropy) for users and the example trainer.
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
export type {
  Activation,
  BiasActArgs,
  BiasActBackwardArgs,
  GemmArgs,
  LayerSimd,
  SoftmaxCrossEntropyArgs,
} from './native.js';
