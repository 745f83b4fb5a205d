import type { CommandModule } from 'yargs';
import { UsageError } from '../util/errors.js';

interface BenchArgs {
  config?: string;
  op: string;
  nproc: number;
  nnodes: number;
  sizes: string;
  alloc?: boolean;
  iters?: number;
  json?: boolean;
}

const ops = ['all_reduce', 'reduce_scatter', 'all_gather', 'broadcast'] as const;

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: 'bench [config]',
  describe: 'time CPU collectives on this machine (nccl-tests columns: bytes, count, type, time, algbw, busbw)',
  builder: (y) =>
    y
      .positional('config', { type: 'string', describe: 'a job config (multi-host runs: not supported yet)' })
      .option('op', { choices: ops, default: 'all_reduce', describe: 'the collective to time' })
      .option('nproc', { type: 'number', default: 2, describe: 'ranks per simulated node' })
      .option('nnodes', { type: 'number', default: 1, describe: 'simulated nodes (more than 1: TCP / hierarchical over loopback)' })
      .option('sizes', { type: 'string', default: '4096,65536,1048576,16777216', describe: 'message sizes in bytes, comma separated' })
      .option('alloc', { type: 'boolean', describe: 'use dist.alloc (shared-memory) buffers' })
      .option('iters', { type: 'number', describe: 'timed iterations per size (default: scaled to the size)' })
      .option('json', { type: 'boolean', describe: 'print one JSON document' }),
  handler: async (args) => {
    if (args.config) throw new UsageError('dtrain bench <config>: benchmarking over a config\'s hosts is not supported yet; run it without a config for this machine');
    if (!Number.isInteger(args.nproc) || args.nproc < 1) throw new UsageError(`--nproc ${args.nproc}: must be a positive integer`);
    if (!Number.isInteger(args.nnodes) || args.nnodes < 1) throw new UsageError(`--nnodes ${args.nnodes}: must be a positive integer`);
    const sizes = args.sizes.split(',').map((s) => Number(s.trim()));
    if (sizes.some((s) => !Number.isInteger(s) || s < 4)) throw new UsageError(`--sizes ${args.sizes}: sizes are whole numbers of bytes, at least 4`);
    const { runLocalJob } = await import('../runtime/local-job.js');
    const { fileURLToPath } = await import('node:url');
    const worker = fileURLToPath(new URL('../runtime/bench-worker.js', import.meta.url));
    let out = '';
    const exits = await runLocalJob({
      nodes: Array(args.nnodes).fill(args.nproc),
      argv: [process.execPath, worker],
      env: {
        BENCH_OP: args.op,
        BENCH_SIZES: sizes.join(','),
        BENCH_ALLOC: args.alloc ? '1' : '0',
        ...(args.iters ? { BENCH_ITERS: String(args.iters) } : {}),
      },
      onStdout: (_rank, chunk) => (out += chunk),
    });
    const failed = exits.filter((e) => e.code !== 0);
    if (failed.length) {
      const { JobFailedError } = await import('../util/errors.js');
      throw new JobFailedError(`bench: rank ${failed[0]!.rank} exited with ${failed[0]!.code ?? failed[0]!.signal}`);
    }
    const rows = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    if (args.json) {
      process.stdout.write(JSON.stringify({ op: args.op, ranks: args.nproc * args.nnodes, nodes: args.nnodes, alloc: !!args.alloc, rows }, null, 2) + '\n');
      return;
    }
    const pad = (s: string | number, n: number) => String(s).padStart(n);
    process.stdout.write(`# ${args.op}, ${args.nproc * args.nnodes} ranks on ${args.nnodes} simulated node(s), ${args.alloc ? 'dist.alloc' : 'typed array'} buffers\n`);
    process.stdout.write(`#${pad('size', 12)}${pad('count', 12)}${pad('type', 7)}${pad('redop', 6)}${pad('time', 11)}${pad('algbw', 8)}${pad('busbw', 8)}  transport/algorithm\n`);
    process.stdout.write(`#${pad('(B)', 12)}${pad('(elements)', 12)}${pad('', 7)}${pad('', 6)}${pad('(us)', 11)}${pad('(GB/s)', 8)}${pad('(GB/s)', 8)}\n`);
    for (const r of rows)
      process.stdout.write(
        ` ${pad(r.bytes, 12)}${pad(r.count, 12)}${pad(r.type, 7)}${pad(r.redop, 6)}${pad(r.time_us.toFixed(2), 11)}${pad(r.algbw_GBps.toFixed(2), 8)}${pad(r.busbw_GBps.toFixed(2), 8)}  ${r.transport}/${r.algorithm}\n`,
      );
  },
};
