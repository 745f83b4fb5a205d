/**
 * Typed access to the native addon's collectives part (addon/src/collectives/init.cc), loaded by
 * addon.ts. Lazily: importing 'dtrain' works without a built addon until init() needs it.
 */
import { addonPath, loadAddon } from './addon.js';
import type { HostBuffer } from './types.js';

/** The wire codes the addon uses (addon/src/collectives/dtype.h). */
export const dtypeCode = { float32: 0, float64: 1, int32: 2, int64: 3, bfloat16: 4, float16: 5 } as const;
export const reduceOpCode = { sum: 0, avg: 1, max: 2, min: 3, prod: 4 } as const;

export interface NativeGroupInfo {
  handle: number;
  rank: number;
  kind: 'self' | 'shm' | 'tcp' | 'hierarchical';
}

export interface NativeOpStat {
  op: string;
  transport: string;
  algorithm: string;
  count: number;
  bytes: number;
}

/** Ops return undefined when they completed inline, else a promise settled by the progress thread. */
type Settled = Promise<void> | undefined;

/**
 * What Group ops return for an op that completed inline (on the calling thread, before returning): one settled
 * promise for all, so awaiting it is one tick, and a caller timing its ops can tell it ran nothing in flight.
 */
export const completedInline: Promise<void> = Promise.resolve();

export interface CollectivesNative {
  init(opts: {
    rank: number;
    worldSize: number;
    nodeRank: number;
    store: string;
    rendezvousTimeoutMs: number;
    collectiveTimeoutMs: number;
    socketIfname: string;
    masterAddr: string;
    /** DTRAIN_FLIGHT_RECORDER ('': record in anonymous memory) */
    flightRecorder: string;
  }): void;
  newGroup(name: string, ranks: number[]): NativeGroupInfo;
  allReduce(handle: number, buf: HostBuffer, dtype: number, op: number, timeoutMs: number): Settled;
  reduceScatter(
    handle: number,
    input: HostBuffer,
    output: HostBuffer,
    dtype: number,
    op: number,
    timeoutMs: number,
  ): Settled;
  allGather(handle: number, input: HostBuffer, output: HostBuffer, dtype: number, timeoutMs: number): Settled;
  broadcast(handle: number, buf: HostBuffer, dtype: number, root: number, timeoutMs: number): Settled;
  barrier(handle: number, timeoutMs: number): Settled;
  send(handle: number, buf: HostBuffer, dtype: number, peer: number, tag: number, timeoutMs: number): Promise<void>;
  recv(handle: number, buf: HostBuffer, dtype: number, peer: number, tag: number, timeoutMs: number): Promise<void>;
  stats(handle: number): NativeOpStat[];
  alloc(bytes: number): ArrayBuffer;
  close(): void;
  /** Tells same-host peers this process is exiting (they fail their waits on it at once). */
  exiting(): void;
  simdPath(): 'avx2' | 'scalar';
  spinBudget(): number;
  reduceLocal(out: HostBuffer, inputs: HostBuffer[], dtype: number, op: number): void;
}

let cached: CollectivesNative | undefined;

export function collectivesNative(): CollectivesNative {
  if (cached) return cached;
  const addon = loadAddon() as { collectives?: CollectivesNative };
  if (!addon.collectives) throw new Error(`${addonPath()} has no collectives: rebuild it with npm run build:addon`);
  cached = addon.collectives;
  return cached;
}
