/** Bytes this rank moved, from dist.stats(): point-to-point (the pipeline's sends/receives) and collectives. */
import type { GroupOpStats } from 'dtrain';

export interface Traffic {
  p2pSentBytes: number;
  p2pRecvBytes: number;
  /** every op that is not a send or receive (all-reduce, all-gather, barrier…), over all groups */
  collectiveBytes: number;
  /** per group and op: count and bytes, as the runtime reported them */
  byGroup: Record<string, Array<{ op: string; transport: string; count: number; bytes: number }>>;
}

export function summariseTraffic(stats: Record<string, GroupOpStats[]>): Traffic {
  const t: Traffic = { p2pSentBytes: 0, p2pRecvBytes: 0, collectiveBytes: 0, byGroup: {} };
  for (const [group, ops] of Object.entries(stats)) {
    t.byGroup[group] = ops.map(({ op, transport, count, bytes }) => ({ op, transport, count, bytes }));
    for (const s of ops) {
      if (s.op === 'send') t.p2pSentBytes += s.bytes;
      else if (s.op === 'recv') t.p2pRecvBytes += s.bytes;
      else t.collectiveBytes += s.bytes;
    }
  }
  return t;
}
