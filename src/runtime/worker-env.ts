/**
 * The worker's side of the environment contract (the table in worker-env-table.ts): reads and cross-checks
 * what the agent put in a worker's environment, and derives the ranks of its groups from it.
 */
import { parseDuration } from '../config/duration.js';
import type { ScheduleKind } from './pipeline/types.js';
import type { Groups, WorkerConfig } from './types.js';
import { AUTO, workerEnvVar } from './worker-env-table.js';

/** The environment is missing or inconsistent: the worker was not started by dtrain (or torchrun). */
export class InitError extends Error {
  override name = 'InitError';
}

export interface WorkerEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  nodeRank: number;
  data: { rank: number; size: number };
  pipeline: { rank: number; size: number };
  tensor: { rank: number; size: number };
  store: string;
  /** DTRAIN_PROGRESS_FILE: where dist.report() appends (undefined: started by hand) */
  progressFile?: string;
  backend: string;
  rendezvousTimeoutMs: number;
  collectiveTimeoutMs: number;
  /** Where the peer listener binds: DTRAIN_SOCKET_IFNAME (NCCL_SOCKET_IFNAME's grammar), else the
   * interface routing to MASTER_ADDR (the addon's choosePeerAddress decides). */
  peerAddress: { ifname: string; masterAddr: string };
  /** DTRAIN_FLIGHT_RECORDER: the file the addon records the last collectives in ('': anonymous memory) */
  flightRecorder: string;
  config: WorkerConfig;
}

/** The raw text of a contract variable, or its table default when unset (undefined: none). */
function raw(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const text = env[name];
  return text === undefined || text === '' ? workerEnvVar(name).default : text;
}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback?: number): number {
  const text = env[name] === undefined || env[name] === '' ? undefined : env[name];
  const value = text ?? (fallback === undefined ? workerEnvVar(name).default : String(fallback));
  if (value === undefined)
    throw new InitError(`${name} is not set: start workers with dtrain launch (or set RANK, WORLD_SIZE, ...)`);
  if (!/^\d+$/.test(value)) throw new InitError(`${name}=${value} is not a non-negative integer`);
  return Number(value);
}

/** One of the values the table allows (the config's enum). */
function choiceVar(env: NodeJS.ProcessEnv, name: string): string {
  const kind = workerEnvVar(name).kind;
  const value = raw(env, name) ?? '';
  if (typeof kind === 'object' && !kind.oneOf.includes(value))
    throw new InitError(`${name}=${value} is not one of ${kind.oneOf.join(', ')}`);
  return value;
}

/** A duration in the config's grammar (config/duration.ts) → milliseconds. */
export function parseDurationMs(text: string, name: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new InitError(`${name}=${text} is not a duration (e.g. 300, 90s, 5m, 1h30m)`);
  return ms;
}

function durationVar(env: NodeJS.ProcessEnv, name: string): number {
  return parseDurationMs(raw(env, name) ?? '', name);
}

/** The job settings alone (no rank checks): what ShardedAdam and Pipeline default to. */
export function readWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  return {
    zeroStage: Number(choiceVar(env, 'DTRAIN_ZERO_STAGE')) as 0 | 1 | 2,
    schedule: choiceVar(env, 'DTRAIN_SCHEDULE') as ScheduleKind,
    microbatches: countVar(env, 'DTRAIN_MICROBATCHES'),
    virtualStages: countVar(env, 'DTRAIN_VIRTUAL_STAGES'),
    bucketCapMb: countVar(env, 'DTRAIN_BUCKET_CAP_MB'),
    restartCount: intVar(env, 'TORCHELASTIC_RESTART_COUNT'),
  };
}

/** A count, held to at least 1 where the table says `positive`. */
function countVar(env: NodeJS.ProcessEnv, name: string): number {
  const n = intVar(env, name);
  if (n < 1 && workerEnvVar(name).kind === 'positive') throw new InitError(`${name}=${n} must be at least 1`);
  return n;
}

/** Reads and cross-checks the worker environment. Exported for tests. */
export function readWorkerEnv(env: NodeJS.ProcessEnv = process.env): WorkerEnv {
  const worldSize = intVar(env, 'WORLD_SIZE');
  const rank = intVar(env, 'RANK', worldSize === 1 ? 0 : undefined);
  if (worldSize < 1 || rank >= worldSize) throw new InitError(`RANK=${rank} is outside WORLD_SIZE=${worldSize}`);
  const tensorSize = intVar(env, 'DTRAIN_TENSOR_SIZE');
  const pipelineSize = intVar(env, 'DTRAIN_PIPELINE_SIZE');
  const dataSize = intVar(env, 'DTRAIN_DATA_SIZE', Math.floor(worldSize / (tensorSize * pipelineSize)));
  if (dataSize * tensorSize * pipelineSize !== worldSize)
    throw new InitError(
      `DTRAIN_DATA_SIZE=${dataSize} × DTRAIN_TENSOR_SIZE=${tensorSize} × DTRAIN_PIPELINE_SIZE=${pipelineSize} ` +
        `is not WORLD_SIZE=${worldSize}`,
    );
  const tensor = intVar(env, 'DTRAIN_TENSOR_RANK', rank % tensorSize);
  const data = intVar(env, 'DTRAIN_DATA_RANK', Math.floor(rank / tensorSize) % dataSize);
  const pipeline = intVar(env, 'DTRAIN_PIPELINE_RANK', Math.floor(rank / (tensorSize * dataSize)));
  if (pipeline * dataSize * tensorSize + data * tensorSize + tensor !== rank)
    throw new InitError(
      `RANK=${rank} does not match its coordinates (pipeline ${pipeline}, data ${data}, tensor ${tensor}) ` +
        'in Megatron order',
    );
  const store = env.DTRAIN_STORE ?? '';
  if (worldSize > 1 && !store)
    throw new InitError('DTRAIN_STORE is not set: workers reach the store through their agent (dtrain launch)');
  return {
    rank,
    worldSize,
    localRank: intVar(env, 'LOCAL_RANK'),
    nodeRank: intVar(env, 'DTRAIN_NODE_RANK', intVar(env, 'GROUP_RANK')),
    data: { rank: data, size: dataSize },
    pipeline: { rank: pipeline, size: pipelineSize },
    tensor: { rank: tensor, size: tensorSize },
    store,
    ...(raw(env, 'DTRAIN_PROGRESS_FILE') ? { progressFile: raw(env, 'DTRAIN_PROGRESS_FILE') } : {}),
    backend: choiceVar(env, 'DTRAIN_BACKEND'),
    rendezvousTimeoutMs: durationVar(env, 'DTRAIN_RENDEZVOUS_TIMEOUT'),
    collectiveTimeoutMs: durationVar(env, 'DTRAIN_COLLECTIVE_TIMEOUT'),
    config: readWorkerConfig(env),
    peerAddress: { ifname: raw(env, 'DTRAIN_SOCKET_IFNAME') ?? '', masterAddr: env.MASTER_ADDR ?? '' },
    // a plan's env copied by hand still holds AUTO: no file then, as when unset
    flightRecorder: env.DTRAIN_FLIGHT_RECORDER === AUTO ? '' : (raw(env, 'DTRAIN_FLIGHT_RECORDER') ?? ''),
  };
}

/** The global ranks of this rank's world, data, pipeline and tensor groups, in group-rank order. */
export function groupRanks(w: WorkerEnv): Record<keyof Groups, number[]> {
  const dp = w.data.size,
    tp = w.tensor.size,
    pp = w.pipeline.size;
  const at = (p: number, d: number, t: number) => p * dp * tp + d * tp + t;
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  return {
    world: range(w.worldSize),
    data: range(dp).map((d) => at(w.pipeline.rank, d, w.tensor.rank)),
    pipeline: range(pp).map((p) => at(p, w.data.rank, w.tensor.rank)),
    tensor: range(tp).map((t) => at(w.pipeline.rank, w.data.rank, t)),
  };
}
