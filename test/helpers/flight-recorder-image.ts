/**
 * Writes flight recorder images by hand, in the layout src/runtime/flight-recorder.ts documents, so the
 * reader and the diagnosis can be tested on exact states (torn entries, wrapped rings, mismatches).
 */
export interface ImageEntry {
  seq: number;
  op: number; // 1 allReduce .. 5 barrier
  state: number; // 1 enqueued, 2 started, 3 completed
  failed?: boolean;
  dtype?: number;
  count?: number;
  root?: number;
  /** ms after the anchor (0: not reached) */
  enqueuedMs?: number;
  startedMs?: number;
  endedMs?: number;
  /** an odd version: the writer is in the middle of it */
  torn?: boolean;
}

export interface ImageGroup {
  name: string;
  members: string;
  size: number;
  groupRank: number;
  lastSeq: number;
  entries: ImageEntry[];
  membersTruncated?: boolean;
}

export const IMAGE = { capacity: 4, perGroup: 256, monoAnchorNs: 1_000_000_000n, realAnchorMs: 1_700_000_000_000 };
const GROUP_BYTES = 384 + IMAGE.perGroup * 64;

export function recorderImage(rank: number, groups: ImageGroup[], claimed = groups.length): Buffer {
  const buf = Buffer.alloc(64 + IMAGE.capacity * GROUP_BYTES);
  buf.writeUInt32LE(0x52465444, 0);
  buf.writeUInt32LE(1, 4);
  buf.writeUInt32LE(64, 8);
  buf.writeUInt32LE(GROUP_BYTES, 12);
  buf.writeUInt32LE(IMAGE.capacity, 16);
  buf.writeUInt32LE(IMAGE.perGroup, 20);
  buf.writeUInt32LE(64, 24);
  buf.writeUInt32LE(claimed, 28);
  buf.writeInt32LE(rank, 32);
  buf.writeInt32LE(4242, 36);
  buf.writeBigUInt64LE(IMAGE.monoAnchorNs, 40);
  buf.writeBigUInt64LE(BigInt(IMAGE.realAnchorMs) * 1_000_000n, 48);
  const ns = (ms: number | undefined): bigint =>
    ms === undefined ? 0n : IMAGE.monoAnchorNs + BigInt(Math.round(ms * 1e6));
  groups.forEach((g, i) => {
    const base = 64 + i * GROUP_BYTES;
    buf.write(g.name, base, 64, 'utf8');
    buf.write(g.members, base + 64, 256, 'ascii');
    buf[base + 320] = g.membersTruncated ? 1 : 0;
    buf.writeUInt32LE(g.size, base + 324);
    buf.writeUInt32LE(g.groupRank, base + 328);
    buf.writeBigUInt64LE(BigInt(g.lastSeq), base + 336);
    for (const e of g.entries) {
      const at = base + 384 + ((e.seq - 1) % IMAGE.perGroup) * 64;
      buf.writeUInt32LE(e.torn ? 7 : 8, at);
      buf[at + 4] = e.state;
      buf[at + 5] = e.op;
      buf[at + 6] = e.dtype ?? 0;
      buf[at + 7] = e.failed ? 1 : 0;
      buf.writeInt32LE(e.root ?? 0, at + 8);
      buf.writeBigUInt64LE(BigInt(e.seq), at + 16);
      buf.writeBigUInt64LE(BigInt(e.count ?? 4), at + 24);
      buf.writeBigUInt64LE(BigInt((e.count ?? 4) * 4), at + 32);
      buf.writeBigUInt64LE(ns(e.enqueuedMs ?? e.startedMs ?? 1), at + 40);
      buf.writeBigUInt64LE(e.state >= 2 ? ns(e.startedMs ?? 1) : 0n, at + 48);
      buf.writeBigUInt64LE(e.endedMs !== undefined ? ns(e.endedMs) : 0n, at + 56);
    }
  });
  return buf;
}

/** Completed ops 1..n of `op` on a group, 1 ms apart. */
export function completed(n: number, op = 1): ImageEntry[] {
  return Array.from({ length: n }, (_, i) => ({ seq: i + 1, op, state: 3, startedMs: i + 1, endedMs: i + 1.5 }));
}
