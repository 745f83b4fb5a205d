/**
 * The DistCore every backend's start returns, built in one place: the rank facts, newGroup's checks and
 * names, stats(), report() and a close() that runs once. A backend gives what differs: its groups, how it
 * makes a group, allocates and closes.
 */
import { createCheckpoints } from './checkpoints.js';
import { progressReporter } from './progress.js';
import type { AllocatableArray, ArrayConstructorOf, DistCore, Group, GroupOpStats, Groups } from './types.js';
import { InitError, type WorkerEnv } from './worker-env.js';

/** A group as stats() and report() read it. */
interface CountedGroup {
  readonly name: string;
  stats(): GroupOpStats[];
}

export interface BackendParts {
  backend: DistCore['backend'];
  groups: Groups;
  /** every group the backend made so far, newGroup's included: stats() and report() read it as it grows */
  made: readonly CountedGroup[];
  simd: string;
  spin: number;
  /** makes the group `name` of `ranks` (checked: distinct ranks of the world, this rank among them) */
  newGroup(name: string, ranks: number[]): Group | Promise<Group>;
  /** `length` elements of `type` (length checked) */
  alloc<T extends AllocatableArray>(type: ArrayConstructorOf<T>, length: number): T;
  /** releases the backend; called once, by the first dist.close() */
  close(): void | Promise<void>;
}

export function distCore(w: WorkerEnv, parts: BackendParts): DistCore {
  let closed = false;
  let custom = 0;
  return {
    rank: w.rank,
    worldSize: w.worldSize,
    localRank: w.localRank,
    nodeRank: w.nodeRank,
    backend: parts.backend,
    groups: parts.groups,
    config: w.config,
    checkpoint: createCheckpoints(w),
    simd: parts.simd,
    spin: parts.spin,
    async newGroup(ranks: readonly number[]): Promise<Group> {
      const list = [...ranks];
      const bad = list.find((r) => !Number.isInteger(r) || r < 0 || r >= w.worldSize);
      if (bad !== undefined) throw new InitError(`newGroup: ${bad} is not a rank of the world (0..${w.worldSize - 1})`);
      if (new Set(list).size !== list.length) throw new InitError(`newGroup: ranks [${list.join(', ')}] repeat a rank`);
      if (!list.includes(w.rank))
        throw new InitError(`newGroup: rank ${w.rank} is not in [${list.join(', ')}]; only members call it`);
      return parts.newGroup(`group${custom++}`, list);
    },
    alloc<T extends AllocatableArray>(type: ArrayConstructorOf<T>, length: number): T {
      if (!Number.isInteger(length) || length < 0)
        throw new InitError(`alloc: length ${length} is not a non-negative integer`);
      return parts.alloc(type, length);
    },
    stats(): Record<string, GroupOpStats[]> {
      return Object.fromEntries(parts.made.map((g) => [g.name, g.stats()]));
    },
    report: progressReporter(w.progressFile, () => parts.made.flatMap((g) => g.stats())),
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await parts.close();
    },
  };
}
