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

/**
 * What a stage's forward keeps for its backward: each layer's input and output (its sign is ReLU's mask). The
 * arrays are the model's own and come back to it when the backward is done (see StageModel.forward).
 */
export interface StageActivations {
  rows: number;
  inputs: Float32Array[];
  outputs: Float32Array[];
}

/** The backward's working arrays for one row count: per layer, its pre-activation and input gradients. */
interface BackwardScratch {
  rows: number;
  gz: Float32Array[];
  gx: Float32Array[];
}

export class StageModel {
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly layers: LayerView[];
  /**
   * Activation sets whose backward has run, for the next forwards: a step allocates nothing once as many sets
   * exist as the schedule keeps in flight (a fresh Float32Array per layer per microbatch made V8's collector
   * the largest CPU cost beside the kernels).
   */
  private readonly spare: StageActivations[] = [];
  private scratch: BackwardScratch | undefined;

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

  /**
   * The output and what the backward needs. Both stay valid until backward(…, saved) returns: the output may be
   * read (sent on, turned into a loss) until then, and a later forward reuses the arrays. A forward never
   * followed by a backward (evaluation) keeps its arrays.
   */
  forward(x: Float32Array, rows: number): { output: Float32Array; saved: StageActivations } {
    const saved = this.takeSpare(rows);
    let h = x;
    for (let k = 0; k < this.layers.length; k++) {
      saved.inputs[k] = h;
      linearForward(this.layers[k], h, rows, saved.outputs[k]);
      h = saved.outputs[k];
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
   * Accumulates into this.grads; returns the gradient of the stage's input (a new array: it leaves the stage),
   * or undefined with inputGrad false (the first stage: nobody reads it, so its product is skipped).
   * onLayerDone(k) runs as soon as layer k's gradients are computed (last layer first), before the product that
   * carries the gradient to layer k-1, so their reduction can start during the rest. `saved` goes back to the
   * model for later forwards.
   */
  backward(
    gradOutput: Float32Array,
    saved: StageActivations,
    onLayerDone?: (k: number) => void,
    inputGrad = true,
  ): Float32Array | undefined {
    const { rows } = saved;
    const scratch = this.scratchFor(rows);
    let g = gradOutput;
    let gx: Float32Array | undefined;
    for (let k = this.layers.length - 1; k >= 0; k--) {
      const l = this.layers[k];
      const gz = scratch.gz[k];
      linearBackwardParams(l, saved.inputs[k], saved.outputs[k], g, gz, rows);
      // layer k's gradients are final here: their reduction starts before the input product, not after it
      onLayerDone?.(k);
      if (k > 0) {
        linearBackwardInputOf(l, gz, scratch.gx[k], rows);
        g = scratch.gx[k];
      } else if (inputGrad) {
        gx = new Float32Array(rows * l.spec.inputs);
        linearBackwardInputOf(l, gz, gx, rows);
      }
    }
    saved.inputs.fill(EMPTY); // the stage's input is the caller's: do not keep it alive
    this.spare.push(saved);
    return gx;
  }

  private takeSpare(rows: number): StageActivations {
    const i = this.spare.findIndex((s) => s.rows === rows);
    if (i >= 0) return this.spare.splice(i, 1)[0];
    return {
      rows,
      inputs: this.layers.map(() => EMPTY),
      outputs: this.layers.map((l) => new Float32Array(rows * l.spec.outputs)),
    };
  }

  /**
   * Layer k's input gradient is layer k-1's output gradient, read only by layer k-1's first kernel, which writes
   * gz[k-1]: so all gx share one array and all gz another.
   */
  private scratchFor(rows: number): BackwardScratch {
    if (this.scratch?.rows === rows) return this.scratch;
    const widest = Math.max(...this.specs.map((l) => Math.max(l.inputs, l.outputs)));
    const gz = new Float32Array(rows * widest);
    const gx = new Float32Array(rows * widest);
    this.scratch = {
      rows,
      gz: this.specs.map((l) => gz.subarray(0, rows * l.outputs)),
      gx: this.specs.map((l) => gx.subarray(0, rows * l.inputs)),
    };
    return this.scratch;
  }
}

const EMPTY = new Float32Array(0);

function linearForward(l: LayerView, x: Float32Array, rows: number, y: Float32Array): void {
  const { inputs, outputs, relu } = l.spec;
  gemmForward({ x, w: l.w, y, rows, inputs, outputs, transW: true });
  biasAct({ z: y, bias: l.b, act: relu ? 'relu' : 'none', rows, cols: outputs });
}

/** Accumulates the layer's gradients and leaves the pre-activation gradient in gz; `out` is the forward's output. */
function linearBackwardParams(
  l: LayerView,
  x: Float32Array,
  out: Float32Array,
  gy: Float32Array,
  gz: Float32Array,
  rows: number,
): void {
  const { inputs, outputs, relu } = l.spec;
  const act = relu ? 'relu' : 'none';
  biasActBackward({ dy: gy, z: out, dz: gz, dbias: l.gb, act, rows, cols: outputs, accumulate: true });
  linearBackwardWeight({ x, dy: gz, dw: l.gw, rows, inputs, outputs, transW: true, accumulate: true });
}

function linearBackwardInputOf(l: LayerView, gz: Float32Array, gx: Float32Array, rows: number): void {
  const { inputs, outputs } = l.spec;
  linearBackwardInput({ dy: gz, w: l.w, dx: gx, rows, inputs, outputs, transW: true });
}

/**
 * Softmax cross-entropy over `rows` logits: the mean loss, and the gradient of (sum of losses × scale),
 * so a caller averaging over a whole local batch passes scale = 1 / local batch rows. `grad` may be the caller's
 * array to reuse (rows × classes).
 */
export function softmaxCrossEntropy(
  logits: Float32Array,
  labels: Int32Array,
  rows: number,
  classes: number,
  scale: number,
  grad: Float32Array = new Float32Array(rows * classes),
): { loss: number; grad: Float32Array } {
  const loss = softmaxCrossEntropyKernel({ logits, labels, rows, classes, scale, grad });
  return { loss, grad };
}

/** Sum of the per-row losses (for the evaluation, which averages over all ranks' rows itself). */
export function crossEntropySum(logits: Float32Array, labels: Int32Array, rows: number, classes: number): number {
  return softmaxCrossEntropyKernel({ logits, labels, rows, classes }) * rows;
}
