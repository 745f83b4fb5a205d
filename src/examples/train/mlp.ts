/**
 * The example's model: a stack of fully connected layers with ReLU between them and a softmax cross-entropy
 * head, forward and backward computed by the runtime's layer kernels (GEMM, bias + activation). A stage holds a
 * contiguous run of layers whose weights and biases live in ONE flat Float32Array (and the gradients in
 * another), because that is what ShardedAdam shards.
 *
 * Each layer is initialised from its own seeded stream (seed, layer index), so a layer gets the same values
 * whichever stage holds it: the one-process run and the pipelined run start from the same model.
 */
import {
  biasAct,
  biasActBackward,
  linearBackwardInput,
  linearBackwardWeight,
  linearForward as gemmForward,
  softmaxCrossEntropy as softmaxCrossEntropyKernel,
} from 'dtrain';
import { Rng } from './rng.js';

export interface LayerSpec {
  index: number;
  inputs: number;
  outputs: number;
  /** ReLU after this layer (every layer but the head) */
  relu: boolean;
}

export interface ModelSpec {
  inputs: number;
  hidden: number;
  /** number of linear layers, head included */
  layers: number;
  classes: number;
}

export function layerSpecs(m: ModelSpec): LayerSpec[] {
  if (m.layers < 2) throw new RangeError('the model needs at least 2 layers');
  return Array.from({ length: m.layers }, (_, i) => ({
    index: i,
    inputs: i === 0 ? m.inputs : m.hidden,
    outputs: i === m.layers - 1 ? m.classes : m.hidden,
    relu: i !== m.layers - 1,
  }));
}

export function layerParams(l: LayerSpec): number {
  return l.outputs * l.inputs + l.outputs;
}

/** Contiguous layer ranges per stage, as even as possible by count; earlier stages take the remainder. */
export function partitionLayers(layers: number, stages: number): Array<{ first: number; end: number }> {
  if (stages > layers) throw new RangeError(`${stages} pipeline stages cannot split ${layers} layers`);
  const out: Array<{ first: number; end: number }> = [];
  let first = 0;
  for (let s = 0; s < stages; s++) {
    const n = Math.floor(layers / stages) + (s < layers % stages ? 1 : 0);
    out.push({ first, end: first + n });
    first += n;
  }
  return out;
}

interface LayerView {
  spec: LayerSpec;
  /** outputs × inputs, row-major */
  w: Float32Array;
  b: Float32Array;
  gw: Float32Array;
  gb: Float32Array;
}

/** What a stage's forward keeps for its backward: each layer's input and (ReLU layers) its output. */
export interface StageActivations {
  rows: number;
  inputs: Float32Array[];
  outputs: Float32Array[];
}

export class StageModel {
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly layers: LayerView[];

  constructor(
    readonly specs: readonly LayerSpec[],
    seed: number,
  ) {
    const total = specs.reduce((n, l) => n + layerParams(l), 0);
    this.params = new Float32Array(total);
    this.grads = new Float32Array(total);
    let at = 0;
    this.layers = specs.map((spec) => {
      const nw = spec.outputs * spec.inputs;
      const view: LayerView = {
        spec,
        w: this.params.subarray(at, at + nw),
        b: this.params.subarray(at + nw, at + nw + spec.outputs),
        gw: this.grads.subarray(at, at + nw),
        gb: this.grads.subarray(at + nw, at + nw + spec.outputs),
      };
      at += layerParams(spec);
      // torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
      const rng = Rng.fromSeed(seed, 0x1a7e, spec.index);
      const bound = 1 / Math.sqrt(spec.inputs);
      for (let i = 0; i < view.w.length; i++) view.w[i] = (2 * rng.uniform() - 1) * bound;
      for (let i = 0; i < view.b.length; i++) view.b[i] = (2 * rng.uniform() - 1) * bound;
      return view;
    });
  }

  get inputs(): number {
    return this.specs[0].inputs;
  }

  get outputs(): number {
    return this.specs[this.specs.length - 1].outputs;
  }

  forward(x: Float32Array, rows: number): { output: Float32Array; saved: StageActivations } {
    const saved: StageActivations = { rows, inputs: [], outputs: [] };
    let h = x;
    for (const l of this.layers) {
      saved.inputs.push(h);
      h = linearForward(l, h, rows);
      saved.outputs.push(h);
    }
    return { output: h, saved };
  }

  /** Where layer k's weights and bias sit in params and grads. */
  layerRange(k: number): { start: number; end: number } {
    let start = 0;
    for (let i = 0; i < k; i++) start += layerParams(this.specs[i]);
    return { start, end: start + layerParams(this.specs[k]) };
  }

  /**
   * Accumulates into this.grads; returns the gradient of the stage's input. onLayerDone(k) runs as soon as
   * layer k's gradients are computed (last layer first), so their reduction can start during the rest.
   */
  backward(gradOutput: Float32Array, saved: StageActivations, onLayerDone?: (k: number) => void): Float32Array {
    let g = gradOutput;
    for (let k = this.layers.length - 1; k >= 0; k--) {
      const l = this.layers[k];
      g = linearBackward(l, saved.inputs[k], saved.outputs[k], g, saved.rows);
      onLayerDone?.(k);
    }
    return g;
  }
}

function linearForward(l: LayerView, x: Float32Array, rows: number): Float32Array {
  const { inputs, outputs, relu } = l.spec;
  const y = new Float32Array(rows * outputs);
  gemmForward({ x, w: l.w, y, rows, inputs, outputs, transW: true });
  biasAct({ z: y, bias: l.b, act: relu ? 'relu' : 'none', rows, cols: outputs });
  return y;
}

/** Accumulates the layer's gradients; `out` is the forward's output (its sign is ReLU's mask). */
function linearBackward(l: LayerView, x: Float32Array, out: Float32Array, gy: Float32Array, rows: number) {
  const { inputs, outputs, relu } = l.spec;
  const gz = new Float32Array(rows * outputs);
  const act = relu ? 'relu' : 'none';
  biasActBackward({ dy: gy, z: out, dz: gz, dbias: l.gb, act, rows, cols: outputs, accumulate: true });
  linearBackwardWeight({ x, dy: gz, dw: l.gw, rows, inputs, outputs, transW: true, accumulate: true });
  const gx = new Float32Array(rows * inputs);
  linearBackwardInput({ dy: gz, w: l.w, dx: gx, rows, inputs, outputs, transW: true });
  return gx;
}

/**
 * Softmax cross-entropy over `rows` logits: the mean loss, and the gradient of (sum of losses × scale),
 * so a caller averaging over a whole local batch passes scale = 1 / local batch rows.
 */
export function softmaxCrossEntropy(
  logits: Float32Array,
  labels: Int32Array,
  rows: number,
  classes: number,
  scale: number,
): { loss: number; grad: Float32Array } {
  const grad = new Float32Array(rows * classes);
  const loss = softmaxCrossEntropyKernel({ logits, labels, rows, classes, scale, grad });
  return { loss, grad };
}

/** Sum of the per-row losses (for the evaluation, which averages over all ranks' rows itself). */
export function crossEntropySum(logits: Float32Array, labels: Int32Array, rows: number, classes: number): number {
  return softmaxCrossEntropyKernel({ logits, labels, rows, classes }) * rows;
}
