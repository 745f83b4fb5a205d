/**
 * The runtime's public types (README's "Runtime API"). The collectives' implementation lives in
 * the native addon (addon/src) behind src/runtime/group.ts; the optimizer and the pipeline executor are
 * written against this interface only.
 */
import type { ScheduleKind } from './pipeline/types.js';

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min' | 'prod';
export type DType = 'float32' | 'float64' | 'int32' | 'int64' | 'bfloat16' | 'float16';
/** Uint16Array buffers carry bf16/fp16 and need an explicit dtype. */
export type HostBuffer = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array;

/** GPU memory the NCCL backend operates on in place (DeviceBuffer satisfies it); the CPU backend refuses it. */
export interface DeviceBufferLike {
  readonly ptr: number;
  readonly dtype: DType;
  readonly length: number;
  readonly device: number;
}

/** What group ops accept: host arrays everywhere, device buffers on the NCCL backend. */
export type CollectiveBuffer = HostBuffer | DeviceBufferLike;

export interface OpOptions {
  /** required for Uint16Array buffers: 'bfloat16' | 'float16' */
  dtype?: DType;
  /** overrides collective_timeout for this op (ms) */
  timeoutMs?: number;
}

export interface GroupOpStats {
  op: string;
  transport: 'self' | 'shm' | 'tcp' | 'hierarchical' | 'nccl';
  algorithm: string;
  count: number;
  bytes: number;
}

export interface Group {
  readonly name: string;
  /** this process's rank inside the group */
  readonly rank: number;
  readonly size: number;
  /** global ranks of the members, in group-rank order */
  readonly ranks: readonly number[];
  allReduce(buf: CollectiveBuffer, opts?: OpOptions & { op?: ReduceOp }): Promise<void>;
  reduceScatter(input: CollectiveBuffer, output: CollectiveBuffer, opts?: OpOptions & { op?: ReduceOp }): Promise<void>;
  allGather(input: CollectiveBuffer, output: CollectiveBuffer, opts?: OpOptions): Promise<void>;
  broadcast(buf: CollectiveBuffer, opts: OpOptions & { root: number }): Promise<void>;
  /** point to point; `peer` is a rank inside this group */
  send(buf: CollectiveBuffer, opts: OpOptions & { peer: number; tag?: number }): Promise<void>;
  recv(buf: CollectiveBuffer, opts: OpOptions & { peer: number; tag?: number }): Promise<void>;
  barrier(opts?: { timeoutMs?: number }): Promise<void>;
}

export interface Groups {
  world: Group;
  data: Group;
  pipeline: Group;
  tensor: Group;
}

export type AllocatableArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array;
export type ArrayConstructorOf<T extends AllocatableArray> = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  BYTES_PER_ELEMENT: number;
};

/** The job settings the launcher passed down: the library's defaults (ShardedAdam, Pipeline) follow them. */
export interface WorkerConfig {
  /** parallelism.zero_stage: ShardedAdam's default stage (0 runs as 1: the same update, states sharded) */
  zeroStage: 0 | 1 | 2;
  /** parallelism.schedule, microbatches and virtual_stages: Pipeline's default schedule */
  schedule: ScheduleKind;
  microbatches: number;
  virtualStages: number;
  /** the attempt: 0, then one more per whole-group restart (TORCHELASTIC_RESTART_COUNT) */
  restartCount: number;
}

export interface Dist {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly nodeRank: number;
  readonly backend: 'cpu' | 'nccl';
  /** nccl: the CUDA device this rank's communicators and DeviceBuffers use (LOCAL_RANK) */
  readonly device?: number;
  readonly groups: Groups;
  /** the job settings from the environment (parallelism.*, the attempt): what the library defaults follow */
  readonly config: WorkerConfig;
  /** A group of the given global ranks; every member must call it, in the same order as other newGroup calls. */
  newGroup(ranks: readonly number[]): Promise<Group>;
  /** A typed array in shared memory: same-host peers read it in place, so large collectives copy nothing. */
  alloc<T extends AllocatableArray>(type: ArrayConstructorOf<T>, length: number): T;
  /** Per group name: the transport and algorithm each op used, how often and how many bytes. */
  stats(): Record<string, GroupOpStats[]>;
  /** Which reduction kernels run: 'avx2' or 'scalar' (DTRAIN_SIMD forces one). */
  readonly simd: string;
  /**
   * How long, in microseconds, a rank waiting on a same-host peer spins before it sleeps until the peer
   * wakes it: 20, or 0 when this host runs more ranks than this process may use CPUs (spinning would
   * steal a peer's core). DTRAIN_SPIN (microseconds) forces it.
   */
  readonly spin: number;
  close(): Promise<void>;
}
