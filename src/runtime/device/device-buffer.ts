/**
 * Device memory for the NCCL backend: a typed, sized allocation on the GPU selected by LOCAL_RANK (or an
 * explicit device), with copies from and to typed arrays. Group ops accept it where they accept typed
 * arrays. A buffer that is garbage-collected without free() is released by a finalizer, but free() is the
 * contract: GPU memory is too scarce to wait for the collector.
 */
import type { DType, HostBuffer } from '../types.js';
import { loadCudaPart } from './cuda-part.js';

/** The C ABI's dtype codes (addon/cuda/dtrain_cuda.h). */
export const dtypeCode: Record<DType, number> = { float32: 0, float64: 1, int32: 2, int64: 3, bfloat16: 4, float16: 5 };
export const dtypeBytes: Record<DType, number> = {
  float32: 4,
  float64: 8,
  int32: 4,
  int64: 8,
  bfloat16: 2,
  float16: 2,
};

const released = new FinalizationRegistry<number>((ptr) => {
  try {
    loadCudaPart().free(ptr);
  } catch {
    // the process is going away with its context; nothing left to release
  }
});

/** The dtype a host array holds; Uint16Array needs it said (bf16 or fp16). */
export function hostDType(buf: HostBuffer, explicit?: DType): DType {
  if (buf instanceof Float32Array) return 'float32';
  if (buf instanceof Float64Array) return 'float64';
  if (buf instanceof Int32Array) return 'int32';
  if (buf instanceof BigInt64Array) return 'int64';
  if (explicit === 'bfloat16' || explicit === 'float16') return explicit;
  throw new TypeError('a Uint16Array buffer needs an explicit dtype: bfloat16 or float16');
}

/** Where a buffer's memory comes from, which says what free() does. */
export type DeviceMemory =
  /** DeviceBuffer.alloc / from: free() releases it */
  | 'allocated'
  /** DeviceBuffer.fromPointer: other native code owns it; free() only forgets the address */
  | 'wrapped'
  /** DeviceBuffer.importIpc: another process's allocation; free() closes this process's mapping */
  | 'ipc';

/** The bytes of a CUDA IPC handle (addon/cuda/dtrain_cuda.h). */
export const IPC_HANDLE_BYTES = 64;

/** What a DeviceBuffer is, for native code that takes or hands over device memory (DLPack's essentials). */
export interface DeviceBufferDescription {
  /** the device address */
  ptr: number;
  /** the CUDA device ordinal */
  device: number;
  dtype: DType;
  length: number;
  bytes: number;
  /**
   * The stream that orders dtrain's work on the buffer: 0, the legacy default stream, which every blocking
   * stream waits for. Code on a non-blocking stream synchronises first (DeviceBuffer.synchronize()).
   */
  stream: 0;
  memory: DeviceMemory;
}

export class DeviceBuffer {
  #ptr: number;
  readonly #memory: DeviceMemory;
  readonly dtype: DType;
  readonly length: number;
  readonly device: number;

  private constructor(ptr: number, dtype: DType, length: number, device: number, memory: DeviceMemory = 'allocated') {
    this.#ptr = ptr;
    this.#memory = memory;
    this.dtype = dtype;
    this.length = length;
    this.device = device;
    if (memory === 'allocated') released.register(this, ptr, this);
  }

  /**
   * Wraps device memory that other native code owns (no CUDA call is made): free() then only forgets the
   * address. The caller keeps the memory alive and ordered (its stream synchronised) while dtrain uses it.
   */
  static fromPointer(ptr: number, dtype: DType, length: number, opts: { device?: number } = {}): DeviceBuffer {
    if (!Number.isSafeInteger(ptr) || ptr <= 0) throw new RangeError(`ptr must be a positive address, got ${ptr}`);
    if (!Number.isSafeInteger(length) || length < 0)
      throw new RangeError(`length must be a non-negative integer, got ${length}`);
    if (!(dtype in dtypeCode)) throw new TypeError(`unknown dtype ${dtype}`);
    const device = opts.device ?? Number(process.env.LOCAL_RANK ?? 0);
    if (!Number.isSafeInteger(device) || device < 0)
      throw new RangeError(`device must be a non-negative integer, got ${device}`);
    return new DeviceBuffer(ptr, dtype, length, device, 'wrapped');
  }

  /**
   * Maps a buffer another process on this node exported (exportIpc), without a copy. free() closes the
   * mapping; the exporter keeps the memory alive until then.
   */
  static importIpc(handle: Uint8Array, dtype: DType, length: number, opts: { device?: number } = {}): DeviceBuffer {
    if (!(handle instanceof Uint8Array) || handle.length !== IPC_HANDLE_BYTES)
      throw new TypeError(`an IPC handle is a Uint8Array of ${IPC_HANDLE_BYTES} bytes`);
    const { cuda, device } = DeviceBuffer.#onDevice(dtype, length, opts);
    return new DeviceBuffer(cuda.ipcImport(handle), dtype, length, device, 'ipc');
  }

  /** The address, device, dtype, size and ordering stream, for handing the buffer to other native code. */
  describe(): DeviceBufferDescription {
    const { ptr, device, dtype, length, bytes } = this;
    return { ptr, device, dtype, length, bytes, stream: 0, memory: this.#memory };
  }

  /**
   * A CUDA IPC handle another process on this node opens with DeviceBuffer.importIpc. Only memory dtrain
   * allocated can be exported. Synchronises first, so the importer sees every write made so far.
   */
  exportIpc(): Uint8Array {
    if (this.#memory !== 'allocated')
      throw new TypeError(`only a buffer dtrain allocated can be exported, this one is ${this.#memory}`);
    const cuda = loadCudaPart();
    cuda.setDevice(this.device);
    cuda.synchronize();
    return cuda.ipcExport(this.ptr);
  }

  /** Waits for all of dtrain's work on this buffer's device (kernels and copies on the default stream). */
  synchronize(): this {
    const cuda = loadCudaPart();
    cuda.setDevice(this.device);
    cuda.synchronize();
    return this;
  }

  static alloc(dtype: DType, length: number, opts: { device?: number } = {}): DeviceBuffer {
    const { cuda, device } = DeviceBuffer.#onDevice(dtype, length, opts);
    return new DeviceBuffer(cuda.malloc(length * dtypeBytes[dtype]), dtype, length, device);
  }

  /** Checks a new buffer's dtype and length, then makes its device (default LOCAL_RANK) current. */
  static #onDevice(dtype: DType, length: number, opts: { device?: number }) {
    if (!Number.isSafeInteger(length) || length < 0)
      throw new RangeError(`length must be a non-negative integer, got ${length}`);
    if (!(dtype in dtypeCode)) throw new TypeError(`unknown dtype ${dtype}`);
    const device = opts.device ?? Number(process.env.LOCAL_RANK ?? 0);
    const cuda = loadCudaPart();
    cuda.setDevice(device);
    return { cuda, device };
  }

  /** A device copy of a host array (dtype from the array, or `dtype` for Uint16Array). */
  static from(host: HostBuffer, opts: { dtype?: DType; device?: number } = {}): DeviceBuffer {
    const buf = DeviceBuffer.alloc(hostDType(host, opts.dtype), host.length, opts);
    buf.copyFrom(host);
    return buf;
  }

  get bytes(): number {
    return this.length * dtypeBytes[this.dtype];
  }

  /** The device address, for the addon's NCCL calls. */
  get ptr(): number {
    if (this.#ptr === 0) throw new Error('DeviceBuffer used after free()');
    return this.#ptr;
  }

  copyFrom(host: HostBuffer): this {
    this.#checkHost(host);
    loadCudaPart().copy('h2d', this.ptr, host);
    return this;
  }

  copyTo<T extends HostBuffer>(host: T): T {
    this.#checkHost(host);
    loadCudaPart().copy('d2h', this.ptr, host);
    return host;
  }

  fill(value: number): this {
    loadCudaPart().fill(this.ptr, dtypeCode[this.dtype], this.length, value);
    return this;
  }

  free(): void {
    if (this.#ptr === 0) return;
    if (this.#memory === 'allocated') {
      released.unregister(this);
      loadCudaPart().free(this.#ptr);
    } else if (this.#memory === 'ipc') {
      loadCudaPart().ipcClose(this.#ptr);
    }
    this.#ptr = 0;
  }

  #checkHost(host: HostBuffer): void {
    if (host.length !== this.length)
      throw new RangeError(`host array has ${host.length} elements, the device buffer ${this.length}`);
    const hostType = host instanceof Uint16Array ? this.dtype : hostDType(host);
    if (hostType !== this.dtype || (host instanceof Uint16Array && dtypeBytes[this.dtype] !== 2))
      throw new TypeError(`host array holds ${hostType}, the device buffer ${this.dtype}`);
  }
}
