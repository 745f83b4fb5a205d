/**
 * The layer kernels on DeviceBuffers: the same calls as on host arrays (kernels.ts dispatches here when its
 * operands are DeviceBuffers). Every check that needs no GPU is made here, before the CUDA part is touched:
 * host and device operands are never mixed, dtypes and lengths match the shape, all operands live on one
 * device. The kernels run on that device's default stream in call order; softmaxCrossEntropy waits for its
 * loss, the others return once enqueued (a later copyTo() sees their results).
 */
import { DeviceBuffer, dtypeCode } from '../device/device-buffer.js';
import { loadCudaPart } from '../device/cuda-part.js';
import type { DType } from '../types.js';
import type { GemmArgs } from './native.js';

type Operand = ArrayBufferView | DeviceBuffer | null | undefined;

function kind(v: Operand): string {
  if (v instanceof DeviceBuffer) return 'a DeviceBuffer';
  return v ? `a ${v.constructor.name}` : 'absent';
}

/**
 * Whether a call runs on the device: every given operand (`names[i]` is `operands[i]`'s) is a DeviceBuffer,
 * or none is. A mix fails with one line naming a host and a device operand. A plain loop: it runs before
 * every CPU kernel call too, whose small products cost microseconds.
 */
export function onDevice(op: string, names: readonly string[], operands: readonly Operand[]): boolean {
  let device = -1;
  let host = -1;
  for (let i = 0; i < operands.length; i++) {
    const v = operands[i];
    if (v === undefined || v === null) continue;
    if (v instanceof DeviceBuffer) {
      if (device < 0) device = i;
    } else if (host < 0) {
      host = i;
    }
  }
  if (device < 0) return false;
  if (host >= 0) {
    throw new TypeError(
      `${op}: ${names[device]} is a DeviceBuffer but ${names[host]} is ${kind(operands[host])}; ` +
        'pass host arrays only or DeviceBuffers only',
    );
  }
  return true;
}

interface Want {
  buf: DeviceBuffer | null | undefined;
  name: string;
  length: number;
  dtypes: readonly DType[];
}

/** Checks dtypes, lengths and the device; returns the device all operands share. */
function check(op: string, wants: Want[]): number {
  let device: number | undefined;
  let first = '';
  for (const w of wants) {
    if (!w.buf) continue;
    if (!w.dtypes.includes(w.buf.dtype))
      throw new TypeError(`${op}: ${w.name} holds ${w.buf.dtype}, expected ${w.dtypes.join(' or ')}`);
    if (w.buf.length !== w.length)
      throw new RangeError(`${op}: ${w.name} has ${w.buf.length} elements, expected ${w.length}`);
    if (device === undefined) {
      device = w.buf.device;
      first = w.name;
    } else if (w.buf.device !== device) {
      throw new RangeError(`${op}: ${first} is on device ${device} but ${w.name} on device ${w.buf.device}`);
    }
  }
  return device ?? 0;
}

function dim(op: string, name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${op}: ${name} must be a non-negative integer`);
  return v;
}

const ptr = (b: DeviceBuffer | null | undefined): number => (b ? b.ptr : 0);

function cudaOn(device: number) {
  const cuda = loadCudaPart();
  cuda.setDevice(device);
  return cuda;
}

/** GemmArgs with every operand on the device (the CPU path's simd choice does not apply). */
export interface DeviceGemm extends Omit<GemmArgs, 'a' | 'b' | 'c' | 'simd'> {
  a: DeviceBuffer;
  b: DeviceBuffer;
  c: DeviceBuffer;
}

/** C (fp32) = op(A)·op(B) through cuBLAS; A and B both float32, or both bfloat16 (fp32 accumulation). */
export function deviceGemm(g: DeviceGemm): void {
  const [m, n, k] = [dim('gemm', 'm', g.m), dim('gemm', 'n', g.n), dim('gemm', 'k', g.k)];
  const inputs = ['float32', 'bfloat16'] as const;
  const device = check('gemm', [
    { buf: g.a, name: 'a', length: m * k, dtypes: inputs },
    { buf: g.b, name: 'b', length: k * n, dtypes: [g.a.dtype] },
    { buf: g.c, name: 'c', length: m * n, dtypes: ['float32'] },
  ]);
  const flags = (g.transA ? 1 : 0) | (g.transB ? 2 : 0) | (g.accumulate ? 4 : 0);
  cudaOn(device).gemm(g.a.ptr, g.b.ptr, g.c.ptr, m, n, k, flags, dtypeCode[g.a.dtype]);
}

export function deviceBiasAct(
  z: DeviceBuffer,
  bias: DeviceBuffer | null,
  y: DeviceBuffer | null,
  act: number,
  rows: number,
  cols: number,
): void {
  const n = dim('biasAct', 'rows', rows) * dim('biasAct', 'cols', cols);
  const f32 = ['float32'] as const;
  const device = check('biasAct', [
    { buf: z, name: 'z', length: n, dtypes: f32 },
    { buf: bias, name: 'bias', length: cols, dtypes: f32 },
    { buf: y, name: 'y', length: n, dtypes: f32 },
  ]);
  cudaOn(device).biasAct(z.ptr, ptr(bias), ptr(y), act, rows, cols);
}

export function deviceBiasActBackward(
  dy: DeviceBuffer,
  z: DeviceBuffer,
  dz: DeviceBuffer | null,
  dbias: DeviceBuffer | null,
  act: number,
  rows: number,
  cols: number,
  accumulate: boolean,
): void {
  const n = dim('biasActBackward', 'rows', rows) * dim('biasActBackward', 'cols', cols);
  const f32 = ['float32'] as const;
  const device = check('biasActBackward', [
    { buf: dy, name: 'dy', length: n, dtypes: f32 },
    { buf: z, name: 'z', length: n, dtypes: f32 },
    { buf: dz, name: 'dz', length: n, dtypes: f32 },
    { buf: dbias, name: 'dbias', length: cols, dtypes: f32 },
  ]);
  cudaOn(device).biasActBackward(dy.ptr, z.ptr, ptr(dz), ptr(dbias), act, rows, cols, accumulate);
}

/** The mean loss; label range is checked on the device (the first bad row is named). */
export function deviceSoftmaxCrossEntropy(
  logits: DeviceBuffer,
  labels: DeviceBuffer,
  rows: number,
  classes: number,
  scale: number,
  grad: DeviceBuffer | null,
): number {
  dim('softmaxCrossEntropy', 'rows', rows);
  if (dim('softmaxCrossEntropy', 'classes', classes) < 1)
    throw new RangeError('softmaxCrossEntropy: classes must be at least 1');
  const device = check('softmaxCrossEntropy', [
    { buf: logits, name: 'logits', length: rows * classes, dtypes: ['float32'] },
    { buf: labels, name: 'labels', length: rows, dtypes: ['int32'] },
    { buf: grad, name: 'grad', length: rows * classes, dtypes: ['float32'] },
  ]);
  return cudaOn(device).softmaxCrossEntropy(logits.ptr, labels.ptr, rows, classes, scale, ptr(grad));
}

/** Loads cuBLAS now (it is otherwise loaded by the first device GEMM); returns the path it came from. */
export function loadCublas(path?: string): string {
  return loadCudaPart().cublasLoad(path);
}
