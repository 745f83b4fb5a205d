/**
 * Test data and references for the optimizer tests: deterministic pseudo-random arrays and the unsharded
 * AdamW (the same kernel over the whole flat buffer, fed gradients averaged in float64).
 */
import { optimNative, type SimdPath } from '../../src/runtime/optim/native.js';

/** xorshift32 in [-1, 1): the same numbers on every run and every rank that asks for the same seed. */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = (x / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

/** Local gradients of `rank` at `step`: different on every rank, so averaging matters. */
export function localGrads(n: number, rank: number, step: number): Float32Array {
  return randomArray(n, 1000 * step + rank + 7, 0.5 + rank * 0.25);
}

/**
 * Gradients on a 2^-12 grid: their fp32 sums are exact in any order, so a real all-reduce (which sums in
 * fp32, in its own order) averages them to within one rounding of the float64 average used here.
 */
export function quantizedGrads(n: number, rank: number, step: number): Float32Array {
  const g = localGrads(n, rank, step);
  for (let i = 0; i < n; i++) g[i] = Math.round(g[i] * 4096) / 4096;
  return g;
}

export type GradSource = (n: number, rank: number, step: number) => Float32Array;

export function averaged(n: number, world: number, step: number, grads: GradSource = localGrads): Float32Array {
  const sum = new Float64Array(n);
  for (let r = 0; r < world; r++) {
    const g = grads(n, r, step);
    for (let i = 0; i < n; i++) sum[i] += g[i];
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sum[i] / world;
  return out;
}

export interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const HYPER: Hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** Unsharded AdamW for `steps` steps over fp32 params with the group-averaged gradients. */
export function referenceRun(
  p0: Float32Array,
  world: number,
  steps: number,
  h: Hyper = HYPER,
  maxGradNorm?: number,
  grads: GradSource = localGrads,
): Float32Array {
  const n = p0.length;
  const p = p0.slice();
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  const native = optimNative();
  for (let s = 1; s <= steps; s++) {
    const g = averaged(n, world, s, grads);
    let gradScale = 1;
    if (maxGradNorm !== undefined) {
      const norm = Math.sqrt(native.sumSquares({ data: g, dtype: 'float32', simd: 'scalar' }));
      const coef = maxGradNorm / (norm + 1e-6);
      if (coef < 1) gradScale = coef;
    }
    native.adamwStep({
      param: p,
      paramType: 'float32',
      grad: g,
      gradType: 'float32',
      m,
      v,
      ...h,
      step: s,
      gradScale,
      threads: 1,
    });
  }
  return p;
}

/** max |a - b| / max(|b|, floor): relative error with a floor so values near zero do not dominate. */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor);
    if (!(e <= worst)) worst = e; // NaN propagates as the worst
  }
  return worst;
}

/** The AdamW kernel's 16-bit store: with lr = 0 the master is unchanged, so the params are its rounding. */
export function adamwStore(master: Float32Array, dtype: 'float16' | 'bfloat16', simd: SimdPath): Uint16Array {
  const param = new Uint16Array(master.length);
  const zeros = new Float32Array(master.length);
  optimNative().adamwStep({
    param,
    paramType: dtype,
    master: master.slice(),
    grad: zeros,
    gradType: 'float32',
    m: zeros.slice(),
    v: zeros.slice(),
    lr: 0,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    step: 1,
    simd,
  });
  return param;
}
