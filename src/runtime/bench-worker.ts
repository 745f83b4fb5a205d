/**
 * The worker `dtrain bench` and scripts/bench/collectives run on every rank: times one collective over a
 * range of sizes (nccl-tests conventions). Rank 0 prints one JSON line per size (what scripts/bench reads)
 * and, at the end, puts the rows in the job's store for `dtrain bench` (bench-rows.ts). `sendrecv` is
 * nccl-tests' sendrecv_perf: every rank sends to the next and receives from the previous one at once (a
 * ring of point-to-point channels, as pipeline stages use them); `bytes` is what each rank sends. Configured by
 * environment: BENCH_OP, BENCH_SIZES (bytes, comma separated), BENCH_ALLOC=1 (dist.alloc buffers),
 * BENCH_ITERS, BENCH_CHUNKS (time the iterations in this many chunks and keep the fastest chunk: on a
 * shared machine one preemption otherwise decides a small message's figure; default 1, the mean).
 */
import { StoreClient } from '../store/client.js';
import { benchRowsKey, type BenchOp, type BenchRow } from './bench-rows.js';
import { init } from './init.js';
import type { Group } from './types.js';

export type { BenchOp, BenchRow };

/** nccl-tests' bus-bandwidth factors: what each rank must move relative to the message size. */
export function busFactor(op: BenchOp, ranks: number): number {
  if (op === 'all_reduce') return (2 * (ranks - 1)) / ranks;
  if (op === 'broadcast' || op === 'sendrecv') return 1;
  return (ranks - 1) / ranks;
}

function itersFor(bytes: number): number {
  const fixed = Number(process.env.BENCH_ITERS ?? 0);
  if (fixed > 0) return fixed;
  return Math.max(20, Math.min(20000, Math.floor(2e8 / Math.max(bytes, 4096))));
}

async function main(): Promise<void> {
  const dist = await init();
  const g: Group & { stats(): { op: string; transport: string; algorithm: string }[] } = dist.groups.world as never;
  const op = (process.env.BENCH_OP ?? 'all_reduce') as BenchOp;
  const sizes = (process.env.BENCH_SIZES ?? '4096,65536,1048576,16777216').split(',').map(Number);
  const useAlloc = process.env.BENCH_ALLOC === '1';
  const n = dist.worldSize;
  // A rank cannot send to itself (it would wait on its own receive): nccl-tests needs two ranks here too.
  if (op === 'sendrecv' && n < 2) throw new Error('sendrecv needs at least 2 ranks');
  const next = (dist.rank + 1) % n;
  const prev = (dist.rank + n - 1) % n;
  const rows: BenchRow[] = [];
  const make = (count: number) => (useAlloc ? dist.alloc(Float32Array, count) : new Float32Array(count));
  for (const bytes of sizes) {
    const count = Math.max(1, Math.floor(bytes / 4));
    // reduce_scatter: `bytes` is the input; all_gather: `bytes` is the output (nccl-tests' convention)
    const per = Math.max(1, Math.floor(count / n));
    const a = make(
      op === 'all_reduce' || op === 'broadcast' || op === 'sendrecv' ? count : op === 'reduce_scatter' ? per * n : per,
    );
    const b = make(op === 'reduce_scatter' ? per : op === 'all_gather' ? per * n : op === 'sendrecv' ? count : 1);
    a.fill(1);
    const run = () =>
      op === 'all_reduce'
        ? g.allReduce(a, { op: 'sum' })
        : op === 'reduce_scatter'
          ? g.reduceScatter(a, b, { op: 'sum' })
          : op === 'all_gather'
            ? g.allGather(a, b)
            : op === 'sendrecv'
              ? Promise.all([g.send(a, { peer: next }), g.recv(b, { peer: prev })])
              : g.broadcast(a, { root: 0 });
    const iters = itersFor(bytes);
    for (let i = 0; i < Math.max(5, Math.floor(iters / 10)); i++) await run();
    const chunks = Math.max(1, Math.min(iters, Number(process.env.BENCH_CHUNKS ?? 1) || 1));
    const perChunk = Math.floor(iters / chunks);
    let seconds = Infinity;
    for (let c = 0; c < chunks; c++) {
      await g.barrier();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < perChunk; i++) await run();
      seconds = Math.min(seconds, Number(process.hrtime.bigint() - t0) / 1e9 / perChunk);
    }
    await g.barrier();
    const opName = {
      all_reduce: 'allReduce',
      reduce_scatter: 'reduceScatter',
      all_gather: 'allGather',
      broadcast: 'broadcast',
      sendrecv: 'send',
    }[op];
    const used = g
      .stats()
      .filter((s) => s.op === opName)
      .pop();
    if (dist.rank === 0) {
      const algbw = bytes / seconds / 1e9;
      const row: BenchRow = {
        op,
        bytes,
        count,
        type: 'float',
        redop: op === 'all_reduce' || op === 'reduce_scatter' ? 'sum' : 'none',
        ranks: n,
        alloc: useAlloc,
        time_us: seconds * 1e6,
        algbw_GBps: algbw,
        busbw_GBps: algbw * busFactor(op, n),
        transport: used?.transport ?? '?',
        algorithm: used?.algorithm ?? '?',
      };
      rows.push(row);
      process.stdout.write(JSON.stringify(row) + '\n');
    }
  }
  if (dist.rank === 0 && process.env.DTRAIN_STORE) {
    const store = await StoreClient.connectUnix(process.env.DTRAIN_STORE);
    await store.set(benchRowsKey, JSON.stringify(rows));
    await store.close();
  }
  await dist.close();
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((err: Error) => {
    process.stderr.write(`bench worker (rank ${process.env.RANK}): ${err.message}\n`);
    process.exitCode = 1;
  });
}
