/**
 * Straggler detection. In synchronous data parallelism every rank takes the same wall time per step (the
 * fast ones wait in the collectives), so what is compared is compute time: step time minus the time spent
 * waiting in collectives, each on the rank's own clock, averaged over the last PROGRESS_WINDOW steps by its
 * agent. A rank whose compute time exceeds its group's median by more than STRAGGLER_RATIO is a straggler.
 * The group is the data-parallel group: ranks at the same pipeline stage and tensor coordinate do the
 * same work.
 */
import type { RankPlan } from '../plan/types.js';

export const STRAGGLER_RATIO = 0.2;

export function stragglerGroup(r: Pick<RankPlan, 'pipeline' | 'tensor'>): string {
  return `pp${r.pipeline}.tp${r.tensor}`;
}

/** Ranks (by number) flagged as stragglers; a group of fewer than two reporting ranks flags nobody. */
export function findStragglers(
  ranks: readonly { rank: number; group: string; compute_s?: number; state?: string }[],
): Set<number> {
  const groups = new Map<string, { rank: number; compute: number }[]>();
  for (const r of ranks) {
    if (r.compute_s === undefined || (r.state !== undefined && r.state !== 'running')) continue;
    const g = groups.get(r.group) ?? [];
    g.push({ rank: r.rank, compute: r.compute_s });
    groups.set(r.group, g);
  }
  const flagged = new Set<number>();
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    const sorted = members.map((m) => m.compute).sort((a, b) => a - b);
    const mid = sorted.length / 2;
    const median = sorted.length % 2 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
    if (median <= 0) continue;
    for (const m of members) if (m.compute > median * (1 + STRAGGLER_RATIO)) flagged.add(m.rank);
  }
  return flagged;
}
