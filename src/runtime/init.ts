/**
 * init(): the worker's entry to the runtime. Reads the environment the agent gives every worker
 * (shared/design.md, "Worker environment"), connects to the agent's store proxy and builds the world,
 * data, pipeline and tensor groups from the rank's plan coordinates (Megatron order, tensor fastest:
 * rank = pipeline·(data·tensor) + data·tensor_size + tensor). Which ranks share a host comes from
 * DTRAIN_NODE_RANK only, never from host names.
 */
import { NativeGroup } from './group.js';
import { collectivesNative } from './native.js';
import type { Group, GroupOpStats, Groups } from './types.js';

/** The environment is missing or inconsistent: the worker was not started by dtrain (or torchrun). */
export class InitError extends Error {
  override name = 'InitError';
}

export type AllocatableArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array;
type ArrayConstructorOf<T extends AllocatableArray> = { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

export interface Dist {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly nodeRank: number;
  readonly backend: 'cpu' | 'nccl';
  /** nccl: the CUDA device this rank's communicators and DeviceBuffers use (LOCAL_RANK) */
  readonly device?: number;
  readonly groups: Groups;
  /** A group of the given global ranks; every member must call it, in the same order as other newGroup calls. */
  newGroup(ranks: readonly number[]): Promise<Group>;
  /** A typed array in shared memory: same-host peers read it in place, so large collectives copy nothing. */
  alloc<T extends AllocatableArray>(type: ArrayConstructorOf<T>, length: number): T;
  /** Per group name: the transport and algorithm each op used, how often and how many bytes. */
  stats(): Record<string, GroupOpStats[]>;
  /** Which reduction kernels run: 'avx2' or 'scalar' (DTRAIN_SIMD forces one). */
  readonly simd: string;
  /**
   * How long a rank waiting on a same-host peer spins (pause iterations) before it yields and sleeps:
   * 0 when this host runs more ranks than this process may use CPUs (spinning would steal a peer's core).
   * DTRAIN_SPIN forces it.
   */
  readonly spin: number;
  close(): Promise<void>;
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
      `DTRAIN_DATA_SIZE=${dataSize} × DTRAIN_TENSOR_SIZE=${tensorSize} × DTRAIN_PIPELINE_SIZE=${pipelineSize} is not WORLD_SIZE=${worldSize}`,
    );
  const tensor = intVar(env, 'DTRAIN_TENSOR_RANK', rank % tensorSize);
  const data = intVar(env, 'DTRAIN_DATA_RANK', Math.floor(rank / tensorSize) % dataSize);
  const pipeline = intVar(env, 'DTRAIN_PIPELINE_RANK', Math.floor(rank / (tensorSize * dataSize)));
  if (pipeline * dataSize * tensorSize + data * tensorSize + tensor !== rank)
    throw new InitError(
      `RANK=${rank} does not match its coordinates (pipeline ${pipeline}, data ${data}, tensor ${tensor}) in Megatron order`,
    );
  const store = env.DTRAIN_STORE ?? '';
  if (worldSize > 1 && !store) throw new InitError('DTRAIN_STORE is not set: workers reach the store through their agent (dtrain launch)');
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
  const dp = w.data.size, tp = w.tensor.size, pp = w.pipeline.size;
  const at = (p: number, d: number, t: number) => p * dp * tp + d * tp + t;
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  return {
    world: range(w.worldSize),
    data: range(dp).map((d) => at(w.pipeline.rank, d, w.tensor.rank)),
    pipeline: range(pp).map((p) => at(p, w.data.rank, w.tensor.rank)),
    tensor: range(tp).map((t) => at(w.pipeline.rank, w.data.rank, t)),
  };
}

let current: Promise<Dist> | undefined;
let exitHooked = false;

/** Builds the runtime once per process; later calls return the same `dist`. */
export function init(env: NodeJS.ProcessEnv = process.env): Promise<Dist> {
  current ??= start(env);
  return current;
}

async function start(env: NodeJS.ProcessEnv): Promise<Dist> {
  const w = readWorkerEnv(env);
  // The NCCL backend lives in ./nccl (issue 6); `auto` reaches a worker only when no launcher resolved it: cpu.
  if (w.backend === 'nccl') return (await import('./nccl/start.js')).startNccl(w, groupRanks(w), () => (current = undefined));
  if (w.backend !== 'cpu' && w.backend !== 'auto')
    throw new InitError(`DTRAIN_BACKEND=${w.backend} is not a backend (cpu, nccl or auto)`);
  const native = collectivesNative();
  // A worker that exits mid-job (process.exit, an uncaught error) tells its same-host peers first, so
  // they fail their ops naming it before the launcher stops them (the addon's atexit hook runs later).
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', () => native.exiting());
  }
  native.init({
    rank: w.rank,
    worldSize: w.worldSize,
    nodeRank: w.nodeRank,
    store: w.store,
    rendezvousTimeoutMs: w.rendezvousTimeoutMs,
    collectiveTimeoutMs: w.collectiveTimeoutMs,
  });
  const made: NativeGroup[] = [];
  const build = (name: string, ranks: number[]): NativeGroup => {
    const info = native.newGroup(name, ranks);
    const g = new NativeGroup(name, ranks, info.rank, info.kind, info.handle);
    made.push(g);
    return g;
  };
  const members = groupRanks(w);
  // Every rank builds the four in this order: the rendezvous keys depend on it.
  const groups: Groups = {
    world: build('world', members.world),
    data: build('data', members.data),
    pipeline: build('pipeline', members.pipeline),
    tensor: build('tensor', members.tensor),
  };
  let closed = false;
  let custom = 0;
  return {
    rank: w.rank,
    worldSize: w.worldSize,
    localRank: w.localRank,
    nodeRank: w.nodeRank,
    backend: 'cpu',
    groups,
    simd: native.simdPath(),
    spin: native.spinBudget(),
    async newGroup(ranks: readonly number[]): Promise<Group> {
      const list = [...ranks];
      const bad = list.find((r) => !Number.isInteger(r) || r < 0 || r >= w.worldSize);
      if (bad !== undefined) throw new InitError(`newGroup: ${bad} is not a rank of the world (0..${w.worldSize - 1})`);
      if (new Set(list).size !== list.length) throw new InitError(`newGroup: ranks [${list.join(', ')}] repeat a rank`);
      if (!list.includes(w.rank)) throw new InitError(`newGroup: rank ${w.rank} is not in [${list.join(', ')}]; only members call it`);
      return build(`group${custom++}`, list);
    },
    alloc<T extends AllocatableArray>(type: ArrayConstructorOf<T>, length: number): T {
      if (!Number.isInteger(length) || length < 0) throw new InitError(`alloc: length ${length} is not a non-negative integer`);
      return new type(native.alloc(length * type.BYTES_PER_ELEMENT), 0, length);
    },
    stats(): Record<string, GroupOpStats[]> {
      return Object.fromEntries(made.map((g) => [g.name, g.stats()]));
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      native.close();
      current = undefined;
    },
  };
}
