/**
 * What the bench worker (bench-worker.ts) hands `dtrain bench`: one row per message size, nccl-tests'
 * columns. Rank 0 puts them, as one JSON array, in the job's store under `benchRowsKey`, which the
 * command reads once the job has ended (attempt 0's key: a bench runs without restarts).
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
  time_us: number;
  algbw_GBps: number;
  busbw_GBps: number;
  transport: string;
  algorithm: string;
}

/** the worker's key (its store proxy adds the attempt prefix) */
export const benchRowsKey = 'bench/rows';
