/**
 * Loads the native addon (build/Release/dtrain_native.node) once and gives typed access to its
 * collectives part (addon/src/collectives/init.cc). Loaded lazily: importing 'dtrain' works without a
 * built addon until init() needs it.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

/**
 * DTRAIN_ADDON names another build (a debug or sanitizer build); else two levels up from src/runtime
 * (tests) and dist/runtime (built) is the package root.
 */
export function addonPath(): string {
  if (process.env.DTRAIN_ADDON) return process.env.DTRAIN_ADDON;
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'Release', 'dtrain_native.node');
}

export function collectivesNative(): CollectivesNative {
  if (cached) return cached;
  const path = addonPath();
  if (!existsSync(path)) throw new Error(`dtrain native addon not built (${path}): run npm run build:addon`);
  const addon = createRequire(import.meta.url)(path) as { collectives?: CollectivesNative };
  if (!addon.collectives) throw new Error(`${path} has no collectives: rebuild it with npm run build:addon`);
  cached = addon.collectives;
  return cached;
}
