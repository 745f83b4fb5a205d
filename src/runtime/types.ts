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
  /**
   * Gradient reductions started during the backward (ShardedAdam.beginReduction) on this op: their buckets, the
   * time some bucket was in flight, the part of it before the step waited (beside compute), and the wait (ms)
   */
  overlap?: { reductions: number; buckets: number; inFlightMs: number; overlappedMs: number; exposedMs: number };
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
  /** parallelism.zero_stage: ShardedAdam's default stage (0: states replicated, no parameter all-gather, as DDP) */
  zeroStage: 0 | 1 | 2;
  /** parallelism.schedule, microbatches and virtual_stages: Pipeline's default schedule */
  schedule: ScheduleKind;
  microbatches: number;
  virtualStages: number;
  /** DTRAIN_BUCKET_CAP_MB: ShardedAdam's default bucket in MiB, the unit its gradient collectives overlap in */
  bucketCapMb: number;
  /** TORCHELASTIC_RESTART_COUNT: failure restarts so far (membership changes do not count; DTRAIN_ATTEMPT does) */
  restartCount: number;
}

/** One step's progress (dist.report): what `dtrain status` and the monitor show per rank. */
export interface ProgressReport {
  step: number;
  loss?: number;
  /** samples (tokens) this rank processed in this step: samples/s and tokens/s come from them */
  samples?: number;
  tokens?: number;
}

export interface CommitOptions {
  /** a resize requested by the controller: 'exit' (default) exits the process with code 75, 'return' says so */
  onResize?: 'exit' | 'return';
}

export interface CommitResult {
  step: number;
  /** false when the worker has no store (not started by dtrain launch): nothing is recorded */
  recorded: boolean;
  /** the controller asked the job to resize at this commit (seen only with onResize: 'return') */
  resize: boolean;
}

/** Checkpoint commits: which saved step the job resumes from (README's "Checkpoints and elastic training"). */
export interface Checkpoints {
  /**
   * Records that `step` is saved and is where the job resumes: collective over the world, called by every rank
   * once its save of the step is complete. Throws CommitRefusedError on every rank when this process's attempt
   * has ended. When the job resizes, every rank exits with code 75 (RESIZE_EXIT_CODE) after the commit.
   */
  commit(step: number, opts?: CommitOptions): Promise<CommitResult>;
  /** The step of the job's last accepted commit, to resume from; null: none, start fresh. */
  latest(): Promise<number | null>;
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
  /** the job settings from the environment (parallelism.*, the bucket size, the restart count): the library defaults */
  readonly config: WorkerConfig;
  /** A group of the given global ranks; every member must call it, in the same order as other newGroup calls. */
  newGroup(ranks: readonly number[]): Promise<Group>;
  /** A typed array in shared memory: same-host peers read it in place, so large collectives copy nothing. */
  alloc<T extends AllocatableArray>(type: ArrayConstructorOf<T>, length: number): T;
  /** Checkpoint commits through the job's store: commit(step) after a save, latest() to resume. */
  readonly checkpoint: Checkpoints;
  /** Per group name: the transport and algorithm each op used, how often and how many bytes. */
  stats(): Record<string, GroupOpStats[]>;
  /**
   * After each step: its number and optional loss, samples, tokens. Appends one line to the rank's progress
   * file (DTRAIN_PROGRESS_FILE) with the time spent in collectives since the last report; a no-op for a
   * worker started by hand.
   */
  report(progress: ProgressReport): void;
  /** Which reduction kernels run: 'avx2' or 'scalar' (DTRAIN_SIMD forces one). */
  readonly simd: string;
  /**
   * How long, in microseconds, a rank waiting on a same-host peer spins before it sleeps until the peer
   * wakes it: 20, or 0 when this host runs more ranks than this process may use CPUs (spinning would
   * steal a peer's core). DTRAIN_SPIN (microseconds) forces it. Right after waking a sleeping peer a rank
   * spins up to 200 instead (the peer's wake-up takes about 100 on a VM), and it does not spin while the
   * peer last waited on its own CPU (it steps onto another CPU of its affinity mask instead, at most every
   * 10 ms).
   */
  readonly spin: number;
  /** checkpoint_signal (DTRAIN_CHECKPOINT_SIGNAL): what the launcher sends when the scheduler warns of the end */
  readonly checkpointSignal: 'SIGUSR1' | 'SIGUSR2' | 'SIGHUP';
  /** true once the checkpoint signal arrived: save, then leave (the launcher waits shutdown_grace) */
  readonly checkpointRequested: boolean;
  /** Runs `cb` when the checkpoint signal arrives; returns the function that unsubscribes it. */
  onCheckpointSignal(cb: (signal: string) => void): () => void;
  close(): Promise<void>;
}

/** Dist less what init() adds for every backend (the checkpoint signal): what a backend's start builds. */
export type DistCore = Omit<Dist, 'checkpointSignal' | 'checkpointRequested' | 'onCheckpointSignal'>;
