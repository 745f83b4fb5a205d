/**
 * Per-rank memory estimate. Model states with Ψ = params / (pipeline·tensor):
 * 16-bit training keeps 2Ψ params, 2Ψ grads and 12Ψ optimizer state (fp32 master, m, v); fp32 keeps
 * 4Ψ, 4Ψ, 8Ψ. ZeRO-1 divides the optimizer state by data, ZeRO-2 the gradients too. Activations per
 * layer and microbatch follow Korthikanti et al. 2022 (selective recompute off):
 * s·b·h·(10 + 24/t + 5·a·s/(h·t)) bytes, times the layers a rank holds per chunk and the chunks its
 * schedule keeps in flight at the peak. All figures are bytes; GB in messages means 1e9 bytes.
 */
import type { ModelConfig } from '../config/types.js';
import type { MemoryEstimate, ParallelismPlan } from './types.js';

/** The config's model less the GPU's size: what the estimate is of. */
export type ModelShape = Omit<ModelConfig, 'gpu_memory_gb'>;

export const GB = 1e9;

export function canEstimateActivations(m: ModelShape): boolean {
  return m.layers !== undefined && m.hidden !== undefined && m.heads !== undefined && m.seq_len !== undefined;
}

/** The most microbatch-chunks whose activations a pipeline stage holds at once. */
export function peakInFlight(
  par: Pick<ParallelismPlan, 'schedule' | 'pipeline' | 'microbatches' | 'virtual_stages'>,
  stage: number,
): number {
  const { pipeline: p, microbatches: m, virtual_stages: v } = par;
  if (par.schedule === 'gpipe') return m;
  if (par.schedule === 'interleaved-1f1b' && v > 1) {
    // Megatron's interleaved warm-up: (p - stage - 1)·2 + (v - 1)·p forwards, then one more before the first backward.
    return Math.min((p - stage - 1) * 2 + (v - 1) * p + 1, m * v);
  }
  return Math.min(p - stage, m);
}

export function estimateMemory(model: ModelShape, par: ParallelismPlan, stage: number): MemoryEstimate {
  const psi = model.params / (par.pipeline * par.tensor);
  const [paramBytes, gradBytes, optimBytes] = model.dtype === 'fp32' ? [4, 4, 8] : [2, 2, 12];
  const params = paramBytes * psi;
  const grads = (gradBytes * psi) / (par.zero_stage >= 2 ? par.data : 1);
  const optimizer = (optimBytes * psi) / (par.zero_stage >= 1 ? par.data : 1);
  let activations = 0;
  if (canEstimateActivations(model)) {
    const { seq_len: s, micro_batch_size: b, hidden: h, heads: a, layers } = model as Required<ModelShape>;
    const t = par.tensor;
    // The formula counts 16-bit activations (plus 1-byte dropout masks); fp32 roughly doubles it.
    const perLayer = s * b * h * (10 + 24 / t + (5 * a * s) / (h * t)) * (model.dtype === 'fp32' ? 2 : 1);
    const layersPerChunk = Math.ceil(layers / (par.pipeline * par.virtual_stages));
    activations = perLayer * layersPerChunk * peakInFlight(par, stage);
  }
  return { params, grads, optimizer, activations, total: params + grads + optimizer + activations };
}

export function gb(bytes: number): string {
  return (bytes / GB).toFixed(1);
}
