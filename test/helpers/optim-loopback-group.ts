/**
 * Test-only: `world` Group objects living in one process, for exercising multi-rank optimizer logic
 * without processes. Each rank's n-th collective meets the other ranks' n-th; when all have arrived the
 * op runs over every rank's buffers (sums in float64 in rank order, rounded once to the buffer's type) and
 * every promise settles. Mismatched ops or sizes reject on every rank; an op not joined by every rank
 * within `timeoutMs` rejects on the ranks that did join, as the real collectives do when a peer dies.
 * Not a transport: the real one is src/runtime/group.ts.
 */
import type { Group, HostBuffer, OpOptions, ReduceOp } from '../../src/runtime/types.js';

type Numeric = Float32Array | Float64Array | Int32Array;

interface Arrival {
  rank: number;
  kind: string;
  a: HostBuffer;
  b?: HostBuffer;
  op?: ReduceOp;
  root?: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface LoopbackStats {
  /** collective calls by kind, counted once per op (not per rank) */
  ops: Record<string, number>;
  /** bytes each rank contributed, summed over ranks and ops */
  bytes: number;
}

export interface LoopbackOptions {
  timeoutMs?: number;
}

function reduce(values: number[], op: ReduceOp): number {
  switch (op) {
    case 'sum':
      return values.reduce((s, x) => s + x, 0);
    case 'avg':
      return values.reduce((s, x) => s + x, 0) / values.length;
    case 'max':
      return Math.max(...values);
    case 'min':
      return Math.min(...values);
    case 'prod':
      return values.reduce((s, x) => s * x, 1);
  }
}

function numeric(b: HostBuffer, what: string): Numeric {
  if (b instanceof Float32Array || b instanceof Float64Array || b instanceof Int32Array) return b;
  throw new Error(`loopback ${what}: reductions support Float32/Float64/Int32 buffers only`);
}

export function createLoopbackGroups(
  world: number,
  opts: LoopbackOptions = {},
): { groups: Group[]; stats: LoopbackStats } {
  const pending = new Map<number, Arrival[]>();
  const timers = new Map<number, NodeJS.Timeout>();
  const seqs = new Array<number>(world).fill(0);
  const stats: LoopbackStats = { ops: {}, bytes: 0 };
  const timeoutMs = opts.timeoutMs ?? 10_000;

  function run(arr: Arrival[]): void {
    const kind = arr[0].kind;
    const mismatch = arr.find(
      (x) =>
        x.kind !== kind ||
        x.a.length !== arr[0].a.length ||
        (x.b?.length ?? -1) !== (arr[0].b?.length ?? -1) ||
        x.op !== arr[0].op,
    );
    if (mismatch)
      throw new Error(
        `loopback: ranks disagree on the collective (${arr.map((x) => `${x.rank}:${x.kind}/${x.a.length}`).join(' ')})`,
      );
    stats.ops[kind] = (stats.ops[kind] ?? 0) + 1;
    for (const x of arr) stats.bytes += x.a.byteLength;
    const byRank = [...arr].sort((p, q) => p.rank - q.rank);
    switch (kind) {
      case 'allReduce': {
        const bufs = byRank.map((x) => numeric(x.a, kind));
        const out = new Float64Array(bufs[0].length);
        for (let i = 0; i < out.length; i++)
          out[i] = reduce(
            bufs.map((b) => b[i]),
            byRank[0].op!,
          );
        for (const b of bufs) for (let i = 0; i < out.length; i++) b[i] = out[i]!;
        break;
      }
      case 'reduceScatter': {
        const ins = byRank.map((x) => numeric(x.a, kind));
        const len = byRank[0].b!.length;
        if (ins[0].length !== len * world)
          throw new Error(`loopback reduceScatter: input ${ins[0].length} != ${world} x output ${len}`);
        const out = new Float64Array(len * world);
        for (let i = 0; i < out.length; i++)
          out[i] = reduce(
            ins.map((b) => b[i]),
            byRank[0].op!,
          );
        byRank.forEach((x, r) => numeric(x.b!, kind).set(out.subarray(r * len, (r + 1) * len)));
        break;
      }
      case 'allGather': {
        const len = byRank[0].a.length;
        if (byRank[0].b!.length !== len * world) throw new Error(`loopback allGather: output is not ${world} x input`);
        const copies = byRank.map((x) => x.a.slice());
        for (const x of byRank) copies.forEach((c, r) => (x.b as Float32Array).set(c as Float32Array, r * len));
        break;
      }
      case 'broadcast': {
        const src = byRank[byRank[0].root!].a.slice();
        for (const x of byRank) (x.a as Float32Array).set(src as Float32Array);
        break;
      }
      case 'barrier':
        break;
      default:
        throw new Error(`loopback: ${kind} is not supported`);
    }
  }

  function arrive(x: Omit<Arrival, 'resolve' | 'reject'>): Promise<void> {
    const seq = seqs[x.rank]++;
    return new Promise<void>((resolve, reject) => {
      const list = pending.get(seq) ?? [];
      list.push({ ...x, resolve, reject });
      pending.set(seq, list);
      if (list.length === 1) {
        const t = setTimeout(() => {
          pending.delete(seq);
          for (const a of list)
            a.reject(
              new Error(
                `loopback ${a.kind}: timed out after ${timeoutMs} ms waiting for ${world - list.length} rank(s)`,
              ),
            );
        }, timeoutMs);
        timers.set(seq, t);
      }
      if (list.length < world) return;
      clearTimeout(timers.get(seq));
      timers.delete(seq);
      pending.delete(seq);
      try {
        run(list);
        // settle on a later tick, like a transport completing, so ranks interleave as real ones do
        setImmediate(() => list.forEach((a) => a.resolve()));
      } catch (e) {
        list.forEach((a) => a.reject(e as Error));
      }
    });
  }

  const groups = Array.from({ length: world }, (_, rank): Group => ({
    name: 'loopback',
    rank,
    size: world,
    ranks: Array.from({ length: world }, (_, i) => i),
    allReduce: (buf: HostBuffer, o?: OpOptions & { op?: ReduceOp }) =>
      arrive({ rank, kind: 'allReduce', a: buf, op: o?.op ?? 'sum' }),
    reduceScatter: (input: HostBuffer, output: HostBuffer, o?: OpOptions & { op?: ReduceOp }) =>
      arrive({ rank, kind: 'reduceScatter', a: input, b: output, op: o?.op ?? 'sum' }),
    allGather: (input: HostBuffer, output: HostBuffer) => arrive({ rank, kind: 'allGather', a: input, b: output }),
    broadcast: (buf: HostBuffer, o: OpOptions & { root: number }) =>
      arrive({ rank, kind: 'broadcast', a: buf, root: o.root }),
    send: () => Promise.reject(new Error('loopback: send is not supported')),
    recv: () => Promise.reject(new Error('loopback: recv is not supported')),
    barrier: () => arrive({ rank, kind: 'barrier', a: new Float32Array(0) }),
  }));
  return { groups, stats };
}

/** Runs body(rank) for every rank concurrently, as `world` processes would. */
export async function onEveryRank<T>(groups: Group[], body: (group: Group, rank: number) => Promise<T>): Promise<T[]> {
  return Promise.all(groups.map((g, r) => body(g, r)));
}
