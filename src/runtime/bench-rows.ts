/**
 * What the bench worker (bench-worker.ts) hands `dtrain bench`: one row per message size, nccl-tests'
 * columns (the time is the mean over every timed op; p50 and p99 beside it). Rank 0 puts them, as one
 * JSON array, in the job's store under `benchRowsKey`, which the command reads once the job has ended
 * (attempt 0's key: a bench runs without restarts).
 */
export type BenchOp = 'all_reduce' | 'reduce_scatter' | 'all_gather' | 'broadcast' | 'sendrecv';

export interface BenchRow {
  op: BenchOp;
  bytes: number;
  count: number;
  type: 'float';
  redop: 'sum' | 'none';
  ranks: number;
  alloc: boolean;
  /** the mean over all timed ops (nccl-tests' time column); bench-stats.ts defines every statistic */
  time_us: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  /** information only: the fastest of 10 chunks of the timed ops */
  best_chunk_us: number;
  /** timed ops */
  ops: number;
  /** CPU time of all ranks' processes (every thread) per op, in microseconds */
  cpu_us_per_op: number;
  algbw_GBps: number;
  busbw_GBps: number;
  transport: string;
  algorithm: string;
}

/** the worker's key (its store proxy adds the attempt prefix) */
export const benchRowsKey = 'bench/rows';
