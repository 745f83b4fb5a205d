/**
 * init(): the worker's entry to the runtime. Reads the environment the agent gives every worker
 * (worker-env-table.ts), connects to the agent's store proxy and builds the world,
 * data, pipeline and tensor groups from the rank's plan coordinates (Megatron order, tensor fastest:
 * rank = pipeline·(data·tensor) + data·tensor_size + tensor). Which ranks share a host comes from
 * DTRAIN_NODE_RANK only, never from host names.
 */
import { watchCheckpointSignal } from './checkpoint-signal.js';
import { distCore } from './dist-core.js';
import { NativeGroup } from './group.js';
import { collectivesNative } from './native.js';
import { timeCollectives } from './progress.js';
import type { Dist, DistCore, Groups } from './types.js';
import { installStackDump } from './stack-signal.js';
import { groupRanks, readWorkerEnv } from './worker-env.js';

let current: Promise<Dist> | undefined;
let exitHooked = false;
let usr1Hooked = false;

/**
 * Node opens its inspector (127.0.0.1:9229, code execution for any local user) on SIGUSR1 when nothing
 * listens for it, and launchers forward SIGUSR1 to workers (Slurm's warning before the time limit). A
 * listener makes it an ordinary signal: the program hears it with its own process.on('SIGUSR1', ...).
 */
function keepSigusr1FromInspector(): void {
  if (usr1Hooked) return;
  usr1Hooked = true;
  process.on('SIGUSR1', () => {});
}

/** Builds the runtime once per process; later calls return the same `dist`. */
export function init(env: NodeJS.ProcessEnv = process.env): Promise<Dist> {
  keepSigusr1FromInspector();
  if (!current) installStackDump(env);
  const checkpoint = watchCheckpointSignal(env);
  current ??= start(env).then(
    (dist): Dist =>
      Object.defineProperties(dist, {
        checkpointSignal: { value: checkpoint.signal, enumerable: true },
        checkpointRequested: { get: () => checkpoint.requested, enumerable: true },
        onCheckpointSignal: { value: checkpoint.on.bind(checkpoint) },
      }) as Dist,
  );
  return current;
}

async function start(env: NodeJS.ProcessEnv): Promise<DistCore> {
  const w = readWorkerEnv(env);
  // The NCCL backend lives in ./nccl; `auto` reaches a worker only when no launcher resolved it: cpu.
  if (w.backend === 'nccl')
    return (await import('./nccl/start.js')).startNccl(w, groupRanks(w), () => (current = undefined));
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
    socketIfname: w.peerAddress.ifname,
    masterAddr: w.peerAddress.masterAddr,
    flightRecorder: w.flightRecorder,
  });
  const made: NativeGroup[] = [];
  const build = (name: string, ranks: number[]): NativeGroup => {
    const info = native.newGroup(name, ranks);
    const g = timeCollectives(new NativeGroup(name, ranks, info.rank, info.kind, info.handle));
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
  return distCore(w, {
    backend: 'cpu',
    groups,
    made,
    simd: native.simdPath(),
    spin: native.spinBudget(),
    newGroup: build,
    alloc: (type, length) => new type(native.alloc(length * type.BYTES_PER_ELEMENT), 0, length),
    close() {
      native.close();
      current = undefined;
    },
  });
}
