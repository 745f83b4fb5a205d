/**
 * The fused AdamW step on the GPU (addon/cuda/adamw.cu) over DeviceBuffers: torch.optim.AdamW semantics,
 * the per-element math shared with the CPU kernel (addon/src/optim/adamw_math.h). fp32 params are updated
 * in place; bf16/fp16 params are rewritten as the rounded image of an fp32 master copy. The optimizer's
 * state (m, v, master) and the gradients are fp32.
 */
import { DeviceBuffer, dtypeCode } from './device-buffer.js';
import { loadCudaPart } from './cuda-part.js';
import type { AdamwHyperparams } from '../optim/native.js';

export interface DeviceAdamwArgs extends AdamwHyperparams {
  param: DeviceBuffer;
  /** required when param is bfloat16 or float16 */
  master?: DeviceBuffer;
  grad: DeviceBuffer;
  m: DeviceBuffer;
  v: DeviceBuffer;
}

interface AdamwNative {
  adamwStep(
    params: number,
    dtype: number,
    master: number,
    grads: number,
    m: number,
    v: number,
    n: number,
    hp: object,
  ): void;
}

export function deviceAdamwStep(a: DeviceAdamwArgs): void {
  const n = a.param.length;
  const fp32: [string, DeviceBuffer | undefined][] = [
    ['grad', a.grad],
    ['m', a.m],
    ['v', a.v],
    ['master', a.master],
  ];
  for (const [name, b] of fp32) {
    if (!b) continue;
    if (b.dtype !== 'float32') throw new TypeError(`deviceAdamwStep: ${name} must be float32, got ${b.dtype}`);
    if (b.length !== n) throw new RangeError(`deviceAdamwStep: ${name} has ${b.length} elements, param ${n}`);
    if (b.device !== a.param.device)
      throw new RangeError(`deviceAdamwStep: ${name} is on device ${b.device}, param on ${a.param.device}`);
  }
  if (a.param.dtype !== 'float32' && a.param.dtype !== 'bfloat16' && a.param.dtype !== 'float16')
    throw new TypeError(`deviceAdamwStep: param must be float32, bfloat16 or float16, got ${a.param.dtype}`);
  if (a.param.dtype !== 'float32' && !a.master)
    throw new TypeError(`deviceAdamwStep: ${a.param.dtype} params need an fp32 master copy`);
  if (!Number.isInteger(a.step) || a.step < 1)
    throw new RangeError(`deviceAdamwStep: step must be an integer >= 1, got ${a.step}`);
  (loadCudaPart() as unknown as AdamwNative).adamwStep(
    a.param.ptr,
    dtypeCode[a.param.dtype],
    a.master?.ptr ?? 0,
    a.grad.ptr,
    a.m.ptr,
    a.v.ptr,
    n,
    {
      lr: a.lr,
      beta1: a.beta1,
      beta2: a.beta2,
      eps: a.eps,
      weightDecay: a.weightDecay,
      step: a.step,
      gradScale: a.gradScale ?? 1,
    },
  );
}
