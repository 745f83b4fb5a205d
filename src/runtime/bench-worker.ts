/**
 * The worker `dtrain bench` and scripts/bench/collectives run on every rank: times one collective over a
 * range of sizes (nccl-tests conventions), op by op. Rank 0 prints one JSON line per size (what scripts/bench
 * reads) and, at the end, puts the rows in the job's store for `dtrain bench` (bench-rows.ts). `sendrecv` is
 * nccl-tests' sendrecv_perf: every rank sends to the next and receives from the previous one at once (a
 * ring of point-to-point channels, as pipeline stages use them); `bytes` is what each rank sends. Configured by
 * environment: BENCH_OP, BENCH_SIZES (bytes, comma separated), BENCH_ALLOC=1 (dist.alloc buffers),
 * BENCH_ITERS (timed ops: one number, or one per size, comma separated; default bench-stats.ts' opsFor),
 * BENCH_SAMPLES_DIR (rank 0 also writes each size's per-op latencies there as <bytes>.f64, for a driver
 * that summarises several runs together).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StoreClient } from '../store/client.js';
import { opsFor, samplesBytes, summarize, warmupFor } from './bench-stats.js';
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

function itersFor(bytes: number, index: number): number {
  const given = (process.env.BENCH_ITERS ?? '').split(',').filter(Boolean).map(Number);
  const fixed = given.length > 1 ? given[index] : given[0];
  return fixed > 0 ? fixed : opsFor(bytes);
}

/**
 * Times one op after another into `samples` (ns). The warm-up runs through here too, so V8 has optimised this
 * loop, the op and the group's call before the timed ops: workers run with --single-threaded, where an
 * optimising compile stops the rank for milliseconds and its peer waits.
 */
async function timeOps(run: () => Promise<unknown>, samples: Float64Array): Promise<void> {
  for (let i = 0; i < samples.length; i++) {
    const t0 = performance.now();
    await run();
    samples[i] = (performance.now() - t0) * 1e6;
  }
}

async function main(): Promise<void> {
  const dist = await init();
  const g: Group & { stats(): { op: string; transport: string; algorithm: string; count: number }[] } = dist.groups
    .world as never;
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
    const iters = itersFor(bytes, sizes.indexOf(bytes));
    await timeOps(run, new Float64Array(warmupFor(iters)));
    const samples = new Float64Array(iters);
    // Written once before the timed ops: a fresh array is untouched zero pages, and the first write to each
    // (every 512 ops) faulted inside the loop, 10-20 us that the peer waited out.
    samples.fill(0);
    await g.barrier();
    const before = g.stats();
    const cpu0 = process.cpuUsage();
    await timeOps(run, samples);
    const cpu = process.cpuUsage(cpu0);
    const opName = {
      all_reduce: 'allReduce',
      reduce_scatter: 'reduceScatter',
      all_gather: 'allGather',
      broadcast: 'broadcast',
      sendrecv: 'send',
    }[op];
    // the transport and algorithm the timed ops used: the entry whose count they raised
    const used = g
      .stats()
      .filter((s) => s.op === opName)
      .find((s) => {
        const was = before.find((b) => b.op === s.op && b.transport === s.transport && b.algorithm === s.algorithm);
        return s.count - (was?.count ?? 0) >= iters;
      });
    // every rank's CPU (all its threads), summed on rank 0's row
    const cpuAll = new Float64Array([(cpu.user + cpu.system) / 1e6]);
    await g.allReduce(cpuAll, { op: 'sum' });
    await g.barrier();
    if (dist.rank === 0) {
      const stat = summarize(samples);
      const algbw = bytes / (stat.mean_us / 1e6) / 1e9;
      const row: BenchRow = {
        op,
        bytes,
        count,
        type: 'float',
        redop: op === 'all_reduce' || op === 'reduce_scatter' ? 'sum' : 'none',
        ranks: n,
        alloc: useAlloc,
        time_us: stat.mean_us,
        p50_us: stat.p50_us,
        p99_us: stat.p99_us,
        max_us: stat.max_us,
        best_chunk_us: stat.best_chunk_us,
        ops: stat.ops,
        cpu_us_per_op: (cpuAll[0] / iters) * 1e6,
        algbw_GBps: algbw,
        busbw_GBps: algbw * busFactor(op, n),
        transport: used?.transport ?? '?',
        algorithm: used?.algorithm ?? '?',
      };
      if (process.env.BENCH_SAMPLES_DIR)
        writeFileSync(join(process.env.BENCH_SAMPLES_DIR, `${bytes}.f64`), samplesBytes(samples));
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
