/**
 * A small tanh MLP with hand-written forward and backward over typed arrays, for checking that a model split
 * into pipeline stages computes the same gradients as the whole model in one piece.
 * Loss: 0.5 · Σ‖y - target‖² / samples (mean over the batch).
 */
export type Float = Float32Array | Float64Array;
export type FloatCtor = Float32ArrayConstructor | Float64ArrayConstructor;

export interface Layer {
  inDim: number;
  outDim: number;
  /** outDim × inDim, row-major */
  weight: Float;
  bias: Float;
  tanh: boolean;
}

export interface Grads {
  weight: Float;
  bias: Float;
}

export interface MlpProblem {
  layers: Layer[];
  inputs: Float; // samples × widths[0]
  targets: Float; // samples × widths[last]
  samples: number;
}

/** Deterministic values in (-1, 1): the tests need the same model on every run, not randomness. */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x / 0x100000000) * 2 - 1;
  };
}

export function makeProblem(widths: number[], samples: number, F: FloatCtor, seed = 7): MlpProblem {
  const rnd = seededRandom(seed);
  const fill = (n: number, scale: number) => F.from({ length: n }, () => rnd() * scale);
  const layers = widths.slice(1).map((outDim, l) => {
    const inDim = widths[l];
    return { inDim, outDim, weight: fill(outDim * inDim, 1 / Math.sqrt(inDim)), bias: fill(outDim, 0.1), tanh: l < widths.length - 2 };
  });
  return { layers, inputs: fill(samples * widths[0], 1), targets: fill(samples * widths[widths.length - 1], 1), samples };
}

export const zeroGrads = (layers: Layer[], F: FloatCtor): Grads[] =>
  layers.map((l) => ({ weight: new F(l.weight.length), bias: new F(l.bias.length) }));

export interface LayerTape {
  x: Float;
  /** the layer's output (after tanh), which is all tanh' needs */
  a: Float;
}

export function layerForward(l: Layer, x: Float, n: number, F: FloatCtor): LayerTape {
  const a = new F(n * l.outDim);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < l.outDim; o++) {
      let z = l.bias[o];
      for (let k = 0; k < l.inDim; k++) z += x[i * l.inDim + k] * l.weight[o * l.inDim + k];
      a[i * l.outDim + o] = l.tanh ? Math.tanh(z) : z;
    }
  }
  return { x, a };
}

/** Adds this batch's parameter gradients into g and returns the gradient of the layer's input. */
export function layerBackward(l: Layer, tape: LayerTape, gradA: Float, n: number, g: Grads, F: FloatCtor): Float {
  const gz = new F(gradA.length);
  for (let i = 0; i < gz.length; i++) gz[i] = l.tanh ? gradA[i] * (1 - tape.a[i] * tape.a[i]) : gradA[i];
  const gx = new F(n * l.inDim);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < l.outDim; o++) {
      const d = gz[i * l.outDim + o];
      g.bias[o] += d;
      for (let k = 0; k < l.inDim; k++) {
        g.weight[o * l.inDim + k] += d * tape.x[i * l.inDim + k];
        gx[i * l.inDim + k] += d * l.weight[o * l.inDim + k];
      }
    }
  }
  return gx;
}

/** The whole model on the whole batch in one piece: the reference the pipeline must match. */
export function referenceGradients(p: MlpProblem, F: FloatCtor): { loss: number; grads: Grads[] } {
  const grads = zeroGrads(p.layers, F);
  const tapes: LayerTape[] = [];
  let x: Float = p.inputs;
  for (const l of p.layers) {
    const t = layerForward(l, x, p.samples, F);
    tapes.push(t);
    x = t.a;
  }
  const diff = new F(x.length);
  let loss = 0;
  for (let i = 0; i < x.length; i++) {
    diff[i] = x[i] - p.targets[i];
    loss += 0.5 * diff[i] * diff[i];
  }
  let g: Float = diff.map((d) => d / p.samples);
  for (let l = p.layers.length - 1; l >= 0; l--) g = layerBackward(p.layers[l], tapes[l], g, p.samples, grads[l], F);
  return { loss: loss / p.samples, grads };
}
