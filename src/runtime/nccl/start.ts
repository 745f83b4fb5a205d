/**
 * init() on the NCCL backend (DTRAIN_BACKEND=nccl, which the launcher also sets when `backend: auto`
 * found GPUs and NCCL on every node). LOCAL_RANK selects the device (CUDA itself applies
 * CUDA_VISIBLE_DEVICES); the CUDA part and NCCL are loaded with dlopen; rank 0 of each group makes the
 * NCCL unique id and publishes it through the store (the agent's proxy, DTRAIN_STORE); every member
 * initialises its communicator with collective_timeout as its watchdog. The standard groups are split
 * from the world communicator (ncclCommSplit, NCCL >= 2.18) when rank 0's NCCL has it, else each is
 * initialised on its own id.
 *
 * Store keys (under the worker's attempt prefix):
 *   nccl/<group name>/<sha256(member ranks) prefix>  128-byte unique id + 1 flag byte (1: split the
 *                                                    standard groups from world), set by the group's rank 0
 */
import { createHash } from 'node:crypto';
import { StoreClient } from '../../store/client.js';
import { distCore } from '../dist-core.js';
import { cudaBuildInfo, loadCudaPart } from '../device/cuda-part.js';
import type { DistCore, Group, Groups } from '../types.js';
import { InitError, type WorkerEnv } from '../worker-env.js';
import { NcclGroup, ncclFailure } from './group.js';
import { ncclNative, type NcclNative } from './native.js';
import { timeCollectives } from '../progress.js';

/** NCCL 2.18 brought ncclCommSplit. */
const minSplitVersion = 21800;
const idBytes = 128;

export function ncclIdKey(name: string, ranks: readonly number[]): string {
  return `nccl/${name}/${createHash('sha256').update(ranks.join(',')).digest('hex').slice(0, 16)}`;
}

/** Bounds a wait that has no watchdog of its own (communicator init and split wait for every rank). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new InitError(`${what} did not complete within ${Math.round(ms / 1000)}s (a rank did not join)`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

interface Context {
  w: WorkerEnv;
  native: NcclNative;
  device: number;
  ncclVersion: number;
}

/** Opens the CUDA part and NCCL, or says in one line why the nccl backend cannot run here. */
function loadNccl(w: WorkerEnv): Context {
  const built = cudaBuildInfo();
  if (!built.built) throw new InitError(`DTRAIN_BACKEND=nccl: the CUDA part is not built (${built.reason})`);
  let native: NcclNative;
  try {
    loadCudaPart();
    native = ncclNative();
  } catch (err) {
    throw new InitError(`DTRAIN_BACKEND=nccl: ${(err as Error).message.split('\n')[0]}`);
  }
  let version: number;
  try {
    version = native.ncclLoad(process.env.DTRAIN_NCCL_PATH).version;
  } catch (err) {
    throw new InitError(`DTRAIN_BACKEND=nccl: NCCL is not usable: ${(err as Error).message}`);
  }
  return { w, native, device: w.localRank, ncclVersion: version };
}

/** The group's unique id: made by its rank 0 and published, fetched by the others. */
async function exchangeId(
  ctx: Context,
  store: StoreClient | null,
  name: string,
  ranks: readonly number[],
  flags = 0,
): Promise<Buffer> {
  const leader = ranks[0] === ctx.w.rank;
  const key = ncclIdKey(name, ranks);
  if (leader) {
    let id: Buffer;
    try {
      id = ctx.native.ncclUniqueId();
    } catch (err) {
      throw new InitError(`NCCL unique id for group '${name}': ${(err as Error).message}`);
    }
    const value = Buffer.concat([id, Buffer.from([flags])]);
    if (ranks.length > 1) await store!.set(key, value);
    return value;
  }
  const value = await store!.get(key, ctx.w.rendezvousTimeoutMs).catch((err: Error) => {
    throw new InitError(`NCCL unique id for group '${name}' from its rank 0 (global rank ${ranks[0]}): ${err.message}`);
  });
  if (value.length !== idBytes + 1)
    throw new InitError(`NCCL unique id for group '${name}' has ${value.length} bytes, expected ${idBytes + 1}`);
  return value;
}

async function initComm(
  ctx: Context,
  store: StoreClient | null,
  name: string,
  ranks: readonly number[],
  flags = 0,
): Promise<{ group: NcclGroup; flags: number }> {
  const value = await exchangeId(ctx, store, name, ranks, flags);
  const rank = ranks.indexOf(ctx.w.rank);
  const what = `NCCL init of group '${name}' (rank ${rank} of ${ranks.length}, device ${ctx.device})`;
  const handle = await within(
    ctx.native.ncclCommInit(value.subarray(0, idBytes), ranks.length, rank, ctx.device, ctx.w.collectiveTimeoutMs),
    ctx.w.rendezvousTimeoutMs,
    what,
  ).catch((err: Error) => {
    throw err instanceof InitError ? err : new InitError(ncclFailure(what, err).message);
  });
  return { group: new NcclGroup(ctx.native, name, ranks, rank, ctx.device, handle), flags: value[idBytes] };
}

async function splitComm(ctx: Context, world: NcclGroup, name: string, ranks: readonly number[]): Promise<NcclGroup> {
  const rank = ranks.indexOf(ctx.w.rank);
  const what = `ncclCommSplit of group '${name}' from world (rank ${rank} of ${ranks.length})`;
  // The groups of one kind partition the world: the smallest member names each group uniquely.
  const handle = await within(
    ctx.native.ncclCommSplit(world.handle, Math.min(...ranks), rank),
    ctx.w.rendezvousTimeoutMs,
    what,
  ).catch((err: Error) => {
    throw err instanceof InitError ? err : new InitError(ncclFailure(what, err).message);
  });
  return new NcclGroup(ctx.native, name, ranks, rank, ctx.device, handle);
}

async function connectStore(w: WorkerEnv): Promise<StoreClient | null> {
  if (w.worldSize === 1) return null;
  return StoreClient.connectUnix(w.store, { timeoutMs: w.rendezvousTimeoutMs, label: 'store (NCCL rendezvous)' }).catch(
    (err: Error) => {
      throw new InitError(`DTRAIN_STORE=${w.store}: ${err.message}`);
    },
  );
}

/** The runtime on NCCL: the same Dist as the cpu backend, its groups NCCL communicators. */
export async function startNccl(
  w: WorkerEnv,
  members: Record<keyof Groups, number[]>,
  onClose: () => void,
): Promise<DistCore & { device: number }> {
  const ctx = loadNccl(w);
  const made: NcclGroup[] = [];
  // The store connection is held only while groups are being made: an open socket would keep a worker
  // that forgets dist.close() from exiting.
  const store = await connectStore(w);
  let groups: Groups;
  try {
    const wantSplit = ctx.ncclVersion >= minSplitVersion && process.env.DTRAIN_NCCL_SPLIT !== '0' ? 1 : 0;
    const world = await initComm(ctx, store, 'world', members.world, wantSplit);
    made.push(world.group);
    if (world.flags === 1 && ctx.ncclVersion < minSplitVersion)
      throw new InitError(
        `rank 0 splits groups with ncclCommSplit (NCCL >= 2.18) but this rank's NCCL is ${ctx.ncclVersion}: ` +
          `use one NCCL on every node`,
      );
    const make = async (name: 'data' | 'pipeline' | 'tensor'): Promise<NcclGroup> => {
      const g =
        world.flags === 1
          ? await splitComm(ctx, world.group, name, members[name])
          : (await initComm(ctx, store, name, members[name])).group;
      made.push(g);
      return g;
    };
    // Every rank makes them in this order: splits are collectives of the world communicator.
    groups = {
      world: world.group,
      data: await make('data'),
      pipeline: await make('pipeline'),
      tensor: await make('tensor'),
    };
  } catch (err) {
    await Promise.allSettled(made.map((g) => g.destroy()));
    throw err;
  } finally {
    await store?.close().catch(() => {});
  }
  for (const g of made) timeCollectives(g);
  // DeviceBuffer.alloc and the user's own CUDA work on this thread land on the rank's device.
  ctx.native.setDevice(ctx.device);
  const core = distCore(w, {
    backend: 'nccl',
    groups,
    made,
    simd: 'nccl',
    spin: 0,
    async newGroup(name: string, ranks: number[]): Promise<Group> {
      // Only members call newGroup, so a split of world (a collective of every rank) cannot make it.
      const s = ranks.length > 1 ? await connectStore(w) : null;
      try {
        const { group } = await initComm(ctx, s, name, ranks);
        made.push(timeCollectives(group));
        return group;
      } finally {
        await s?.close().catch(() => {});
      }
    },
    // Host memory only: on NCCL, data that collectives should not copy belongs in a DeviceBuffer.
    alloc: (type, length) => new type(new ArrayBuffer(length * type.BYTES_PER_ELEMENT), 0, length),
    async close(): Promise<void> {
      // Split children before their parent.
      await Promise.allSettled([...made].reverse().map((g) => g.destroy()));
      onClose();
    },
  });
  return Object.assign(core, { device: ctx.device });
}
