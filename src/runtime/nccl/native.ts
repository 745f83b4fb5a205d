/**
 * Typed access to the addon's NCCL bindings (addon/src/cuda_loader/nccl_bindings.cc). Every function that
 * can wait on other ranks returns a promise settled from the communicator's own thread.
 */
import { loadCudaPart } from '../device/cuda-part.js';

/** Op codes of nccl_bindings.cc's ncclRun. */
export const ncclOpKind = { allReduce: 0, reduceScatter: 1, allGather: 2, broadcast: 3, send: 4, recv: 5 } as const;
export type NcclOpName = keyof typeof ncclOpKind;

/** The C ABI's error codes as the bindings name them on rejected promises (`err.code`). */
export type NcclErrorCode = 'ETIMEOUT' | 'ENCCL' | 'ECUDA' | 'EARG' | 'EUNKNOWN';

export interface NcclNative {
  ncclLoad(path?: string): { version: number; path: string };
  ncclUniqueId(): Buffer;
  /** resolves to the new communicator's handle once every rank joined */
  ncclCommInit(id: Buffer, nranks: number, rank: number, device: number, timeoutMs: number): Promise<number>;
  ncclCommSplit(parent: number, color: number, key: number): Promise<number>;
  ncclCommDestroy(handle: number): Promise<number>;
  ncclRun(
    handle: number,
    kind: number,
    sendPtr: number,
    recvPtr: number,
    count: number,
    dtype: number,
    arg: number,
    hostIn: ArrayBufferView | null,
    hostOut: ArrayBufferView | null,
    /** send/recv: travels in the message's envelope and is checked by the receiver */
    tag?: number,
  ): Promise<number>;
  setDevice(device: number): void;
}

export function ncclNative(): NcclNative {
  return loadCudaPart() as unknown as NcclNative;
}
