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
  const fill = (n: number, scale: number) => F.from(Array.from({ length: n }, () => rnd() * scale));
  const layers = widths.slice(1).map((outDim, l) => {
    const inDim = widths[l];
    return {
      inDim,
      outDim,
      weight: fill(outDim * inDim, 1 / Math.sqrt(inDim)),
      bias: fill(outDim, 0.1),
      tanh: l < widths.length - 2,
    };
  });
  return {
    layers,
    inputs: fill(samples * widths[0], 1),
    targets: fill(samples * widths[widths.length - 1], 1),
    samples,
  };
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

export interface MlpSplit {
  stages: number;
  virtualStages: number;
  microbatches: number;
  /** this rank's stage */
  stage: number;
  F: FloatCtor;
  /** every layer's gradients; a stage adds into its own layers' entries only */
  grads: Grads[];
}

/**
 * One pipeline stage's forward and backward for the MLP cut into stages·chunks contiguous slices of layers
 * (chunk c of stage s holds slice c·stages + s), with the batch cut into equal microbatches. The loss of a
 * step is the mean of the microbatch losses, so it equals the whole batch's loss.
 */
export function mlpStageFunctions(problem: MlpProblem, split: MlpSplit, widths: number[]) {
  const { stages: p, virtualStages: v, microbatches: m, stage: s, F, grads } = split;
  const V = p * v;
  const layers = problem.layers;
  if (layers.length % V !== 0) throw new Error(`${layers.length} layers do not split into ${V} slices`);
  if (problem.samples % m !== 0) throw new Error(`${problem.samples} samples do not split into ${m} microbatches`);
  const per = layers.length / V;
  const slice = (vs: number) => Array.from({ length: per }, (_, i) => vs * per + i);
  const b = problem.samples / m;
  const inW = widths[0];
  const outW = widths[widths.length - 1];
  return {
    activationSize: (vs: number) => b * widths[(vs + 1) * per],
    forward(input: Float | null, mb: number, chunk: number) {
      const vs = chunk * p + s;
      let x: Float = vs === 0 ? problem.inputs.subarray(mb * b * inW, (mb + 1) * b * inW) : input!;
      const tapes: LayerTape[] = [];
      for (const l of slice(vs)) {
        const tape = layerForward(layers[l], x, b, F);
        tapes.push(tape);
        x = tape.a;
      }
      if (vs < V - 1) return { output: x, saved: tapes };
      const target = problem.targets.subarray(mb * b * outW, (mb + 1) * b * outW);
      const diff = new F(x.length);
      let loss = 0;
      for (let i = 0; i < x.length; i++) {
        diff[i] = x[i] - target[i];
        loss += (0.5 * diff[i] * diff[i]) / b;
      }
      return { loss, saved: { tapes, diff } };
    },
    backward(gradOutput: Float | null, _mb: number, stashed: { chunk: number; saved: unknown }) {
      const vs = stashed.chunk * p + s;
      let tapes: LayerTape[];
      let g: Float;
      if (vs === V - 1) {
        const saved = stashed.saved as { tapes: LayerTape[]; diff: Float };
        tapes = saved.tapes;
        g = saved.diff.map((d) => d / (b * m));
      } else {
        tapes = stashed.saved as LayerTape[];
        g = gradOutput!;
      }
      const ids = slice(vs);
      for (let i = ids.length - 1; i >= 0; i--) g = layerBackward(layers[ids[i]], tapes[i], g, b, grads[ids[i]], F);
      return g;
    },
  };
}

/** Largest |got - want| / |want| over the given layers (want floored at 1e-9 so zeros do not divide). */
export function worstRelative(
  got: Grads[],
  want: Grads[],
  layerIds: number[] = got.map((_, i) => i),
  scale = 1,
): number {
  let worst = 0;
  for (const l of layerIds) {
    for (const k of ['weight', 'bias'] as const) {
      const a = got[l][k];
      const b = want[l][k];
      for (let i = 0; i < a.length; i++) {
        worst = Math.max(worst, Math.abs(a[i] - scale * b[i]) / Math.max(Math.abs(scale * b[i]), 1e-9));
      }
    }
  }
  return worst;
}
