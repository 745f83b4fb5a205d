/**
 * The worker's side of the environment contract: reads and cross-checks what the agent put in a worker's
 * environment, and derives the ranks of its groups from it.
 */
import type { Groups } from './types.js';

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
  backend: string;
  rendezvousTimeoutMs: number;
  collectiveTimeoutMs: number;
}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new InitError(`${name} is not set: start workers with dtrain launch (or set RANK, WORLD_SIZE, ...)`);
  }
  if (!/^\d+$/.test(raw)) throw new InitError(`${name}=${raw} is not a non-negative integer`);
  return Number(raw);
}

/** "300", "300s", "5m", "1h", "250ms" → milliseconds. */
export function parseDurationMs(raw: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) throw new InitError(`${name}=${raw} is not a duration (e.g. 300, 300s, 5m)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * scale);
}

/** Reads and cross-checks the worker environment. Exported for tests. */
export function readWorkerEnv(env: NodeJS.ProcessEnv = process.env): WorkerEnv {
  const worldSize = intVar(env, 'WORLD_SIZE', 1);
  const rank = intVar(env, 'RANK', worldSize === 1 ? 0 : undefined);
  if (worldSize < 1 || rank >= worldSize) throw new InitError(`RANK=${rank} is outside WORLD_SIZE=${worldSize}`);
  const tensorSize = intVar(env, 'DTRAIN_TENSOR_SIZE', 1);
  const pipelineSize = intVar(env, 'DTRAIN_PIPELINE_SIZE', 1);
  const dataSize = intVar(env, 'DTRAIN_DATA_SIZE', Math.floor(worldSize / (tensorSize * pipelineSize)));
  if (dataSize * tensorSize * pipelineSize !== worldSize)
    throw new InitError(
      `DTRAIN_DATA_SIZE=${dataSize} × DTRAIN_TENSOR_SIZE=${tensorSize} × ` +
        `DTRAIN_PIPELINE_SIZE=${pipelineSize} is not WORLD_SIZE=${worldSize}`,
    );
  const tensor = intVar(env, 'DTRAIN_TENSOR_RANK', rank % tensorSize);
  const data = intVar(env, 'DTRAIN_DATA_RANK', Math.floor(rank / tensorSize) % dataSize);
  const pipeline = intVar(env, 'DTRAIN_PIPELINE_RANK', Math.floor(rank / (tensorSize * dataSize)));
  if (pipeline * dataSize * tensorSize + data * tensorSize + tensor !== rank)
    throw new InitError(
      `RANK=${rank} does not match its coordinates (pipeline ${pipeline}, data ${data}, tensor ${tensor}) ` +
        `in Megatron order`,
    );
  const store = env.DTRAIN_STORE ?? '';
  if (worldSize > 1 && !store)
    throw new InitError('DTRAIN_STORE is not set: workers reach the store through their agent (dtrain launch)');
  return {
    rank,
    worldSize,
    localRank: intVar(env, 'LOCAL_RANK', 0),
    nodeRank: intVar(env, 'DTRAIN_NODE_RANK', intVar(env, 'GROUP_RANK', 0)),
    data: { rank: data, size: dataSize },
    pipeline: { rank: pipeline, size: pipelineSize },
    tensor: { rank: tensor, size: tensorSize },
    store,
    backend: env.DTRAIN_BACKEND ?? 'cpu',
    rendezvousTimeoutMs: parseDurationMs(env.DTRAIN_RENDEZVOUS_TIMEOUT ?? '60s', 'DTRAIN_RENDEZVOUS_TIMEOUT'),
    collectiveTimeoutMs: parseDurationMs(env.DTRAIN_COLLECTIVE_TIMEOUT ?? '300s', 'DTRAIN_COLLECTIVE_TIMEOUT'),
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
