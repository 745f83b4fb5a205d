/**
 * `dtrain bench [config]`: times a CPU collective over a range of sizes and prints nccl-tests columns
 * (or one JSON document). Without a config it runs a small job on this machine (simulated nodes, see
 * runtime/local-job.ts); with one, the bench worker becomes the config's entrypoint and the job goes
 * through the launcher's runJob, so it runs wherever `dtrain launch` runs it (this machine, SSH hosts, a
 * Slurm allocation, joined agents). Rows come from rank 0 through the job's store, never from console text.
 */
import { dirname, join } from 'node:path';
import type { CommandModule } from 'yargs';
import type { JobConfig } from '../config/types.js';
import type { NodeSourceKind } from '../launch/node-source.js';
import { benchRowsKey, type BenchRow } from '../runtime/bench-rows.js';
import { JobFailedError, UsageError } from '../util/errors.js';
import { joinModeKey } from './launch.js';

interface BenchArgs {
  config?: string;
  op: string;
  nproc?: number;
  nnodes?: number;
  sizes: string;
  alloc?: boolean;
  iters?: number;
  json?: boolean;
  set?: string[];
  'join-agents'?: number;
  'secret-file'?: string;
}

const ops = ['all_reduce', 'reduce_scatter', 'all_gather', 'broadcast', 'sendrecv'] as const;

/**
 * The largest message: Node's largest buffer (buffer.constants.MAX_LENGTH on 64-bit). Beyond it every worker
 * failed allocating its typed array (exit 1, a line per rank), after starting the whole job.
 */
const MAX_BENCH_BYTES = 4 * 1024 ** 3;

interface BenchRun {
  ranks: number;
  nodes: number;
  rows: BenchRow[];
  /** what ran where, for the table's heading */
  where: string;
  run_id?: string;
}

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: 'bench [config]',
  describe: 'time CPU collectives and point-to-point op by op (nccl-tests columns; mean time, p50, p99, CPU per op)',
  builder: (y) =>
    y
      .positional('config', {
        type: 'string',
        describe:
          'a job config: run over its hosts through the launcher (its entrypoint is replaced by the bench worker)',
      })
      .option('op', {
        choices: ops,
        default: 'all_reduce',
        describe: 'the collective to time (sendrecv: each rank sends to the next, receives from the previous)',
      })
      .option('nproc', { type: 'number', describe: 'without a config: ranks per simulated node (default 2)' })
      .option('nnodes', {
        type: 'number',
        describe: 'without a config: simulated nodes (default 1; more: TCP / hierarchical over loopback)',
      })
      .option('sizes', {
        type: 'string',
        default: '4096,65536,1048576,16777216',
        describe: 'message sizes in bytes, comma separated',
      })
      .option('alloc', { type: 'boolean', describe: 'use dist.alloc (shared-memory) buffers' })
      .option('iters', {
        type: 'number',
        describe: 'timed ops per size (default: 100000 for small sizes, about 4 GB moved for large ones)',
      })
      .option('set', {
        type: 'string',
        array: true,
        describe: 'with a config: override a key, as in dtrain launch (repeatable)',
      })
      .option('join-agents', {
        type: 'number',
        describe: 'with a config, join mode as in dtrain launch: wait for N `dtrain agent --join` agents',
      })
      .option('secret-file', { type: 'string', describe: 'join mode: the job key the joining agents read too' })
      .option('json', { type: 'boolean', describe: 'print one JSON document' }),
  handler: async (args) => {
    const sizes = args.sizes.split(',').map((s) => Number(s.trim()));
    if (sizes.some((s) => !Number.isInteger(s) || s < 4 || s > MAX_BENCH_BYTES))
      throw new UsageError(
        `--sizes ${args.sizes}: sizes are whole numbers of bytes from 4 to ${MAX_BENCH_BYTES} (4 GiB)`,
      );
    if (args.iters !== undefined && (!Number.isInteger(args.iters) || args.iters < 1))
      throw new UsageError(`--iters ${args.iters}: must be a positive integer`);
    const workerEnv: Record<string, string> = {
      BENCH_OP: args.op,
      BENCH_SIZES: sizes.join(','),
      BENCH_ALLOC: args.alloc ? '1' : '0',
      ...(args.iters ? { BENCH_ITERS: String(args.iters) } : {}),
    };
    let run: BenchRun;
    if (args.config) {
      if (args.nproc !== undefined || args.nnodes !== undefined)
        throw new UsageError(
          '--nproc and --nnodes are for runs without a config; with one, its nodes and nproc_per_node decide',
        );
      const jobKey = await joinModeKey(args);
      const join = jobKey ? { agents: args.joinAgents!, jobKey } : undefined;
      run = await overConfig(args.config, args.set ?? [], workerEnv, join);
    } else {
      if (args.set?.length) throw new UsageError('--set needs a config');
      if (args.joinAgents !== undefined || args.secretFile !== undefined)
        throw new UsageError('--join-agents and --secret-file need a config');
      if (args.op === 'sendrecv' && (args.nproc ?? 2) * (args.nnodes ?? 1) < 2)
        throw new UsageError('--op sendrecv needs at least 2 ranks (--nproc or --nnodes)');
      run = await onThisMachine(args.nproc ?? 2, args.nnodes ?? 1, workerEnv);
    }
    if (run.rows.length !== sizes.length)
      throw new JobFailedError(`bench: rank 0 reported ${run.rows.length} of ${sizes.length} sizes`);
    if (args.json) {
      const doc = {
        op: args.op,
        ranks: run.ranks,
        nodes: run.nodes,
        alloc: !!args.alloc,
        ...(run.run_id ? { run_id: run.run_id } : {}),
        rows: run.rows,
      };
      process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
      return;
    }
    process.stdout.write(renderTable(args.op, run, !!args.alloc));
  },
};

export function renderTable(op: string, run: BenchRun, alloc: boolean): string {
  const pad = (s: string | number, n: number) => String(s).padStart(n);
  let out = `# ${op}, ${run.ranks} ranks ${run.where}, ${alloc ? 'dist.alloc' : 'typed array'} buffers\n`;
  out += "# time: the mean over every timed op (p50, p99 beside it); cpu: all ranks' CPU per op\n";
  out +=
    `#${pad('size', 12)}${pad('count', 12)}${pad('type', 7)}${pad('redop', 6)}${pad('ops', 8)}${pad('time', 11)}` +
    `${pad('p50', 10)}${pad('p99', 10)}${pad('cpu', 10)}${pad('algbw', 8)}${pad('busbw', 8)}  transport/algorithm\n`;
  out +=
    `#${pad('(B)', 12)}${pad('(elements)', 12)}${pad('', 7)}${pad('', 6)}${pad('', 8)}${pad('(us)', 11)}` +
    `${pad('(us)', 10)}${pad('(us)', 10)}${pad('(us)', 10)}${pad('(GB/s)', 8)}${pad('(GB/s)', 8)}\n`;
  for (const r of run.rows)
    out +=
      ` ${pad(r.bytes, 12)}${pad(r.count, 12)}${pad(r.type, 7)}${pad(r.redop, 6)}${pad(r.ops, 8)}` +
      `${pad(r.time_us.toFixed(2), 11)}${pad(r.p50_us.toFixed(2), 10)}${pad(r.p99_us.toFixed(2), 10)}` +
      `${pad(r.cpu_us_per_op.toFixed(2), 10)}${pad(r.algbw_GBps.toFixed(2), 8)}${pad(r.busbw_GBps.toFixed(2), 8)} ` +
      ` ${r.transport}/${r.algorithm}\n`;
  return out;
}

async function workerPath(): Promise<string> {
  const { fileURLToPath } = await import('node:url');
  return fileURLToPath(new URL('../runtime/bench-worker.js', import.meta.url));
}

async function onThisMachine(nproc: number, nnodes: number, env: Record<string, string>): Promise<BenchRun> {
  if (!Number.isInteger(nproc) || nproc < 1) throw new UsageError(`--nproc ${nproc}: must be a positive integer`);
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new UsageError(`--nnodes ${nnodes}: must be a positive integer`);
  const [{ runLocalJob }, { attemptPrefix }] = await Promise.all([
    import('../runtime/local-job.js'),
    import('../store/proxy.js'),
  ]);
  let rows: BenchRow[] = [];
  const exits = await runLocalJob({
    nodes: Array<number>(nnodes).fill(nproc),
    argv: [process.execPath, await workerPath()],
    env,
    onFinished: async (store) => {
      const key = attemptPrefix(0) + benchRowsKey;
      const [present] = await store.check([key]);
      if (present) rows = JSON.parse((await store.get(key)).toString()) as BenchRow[];
    },
  });
  const failed = exits.filter((e) => e.code !== 0);
  if (failed.length)
    throw new JobFailedError(`bench: rank ${failed[0].rank} exited with ${failed[0].code ?? failed[0].signal}`);
  return { ranks: nproc * nnodes, nodes: nnodes, rows, where: `on ${nnodes} simulated node(s)` };
}

/**
 * With a config: the bench worker becomes its entrypoint and the job runs through runJob, wherever
 * `dtrain launch` would run it (this machine, SSH, a Slurm allocation, agents that join). Rank 0 leaves
 * its rows in the job's store (runtime/bench-rows.ts), read once the job has ended.
 */
async function overConfig(
  file: string,
  sets: string[],
  env: Record<string, string>,
  join: { agents: number; jobKey: Buffer } | undefined,
): Promise<BenchRun> {
  const { loadConfig } = await import('../config/index.js');
  const loaded = await loadConfig(file, { sets });
  const here = await workerPath();
  const { runJob } = await import('../launch/run-job.js');
  const { Writable } = await import('node:stream');
  // Workers' stdout (rank 0's rows as text, for scripts/bench) is not for this command's stdout.
  const discard = new Writable({ write: (_chunk, _enc, done) => done() });
  let rows: BenchRow[] = [];
  const { config, plan, summary } = await runJob({
    loaded,
    extraArgs: [],
    json: false,
    out: discard,
    err: process.stderr,
    ...(join ? { join } : {}),
    shape: (config, source) => ({
      ...config,
      entrypoint: workerArgv(config, source.kind, here),
      env: { ...config.env, ...env },
      // a bench that failed once is a failed bench: no restarts; it measures the CPU collectives
      restarts: { ...config.restarts, max: 0 },
      backend: 'cpu' as const,
    }),
    checkPlan: (plan) => {
      if (env.BENCH_OP === 'sendrecv' && plan.world_size < 2)
        throw new UsageError(`${file}: --op sendrecv needs at least 2 ranks; the config has 1`);
    },
    onFinished: async (store) => {
      const [{ StoreClient }, { attemptPrefix }] = await Promise.all([
        import('../store/client.js'),
        import('../store/proxy.js'),
      ]);
      const client = await StoreClient.connectTcp(store);
      try {
        const key = attemptPrefix(0) + benchRowsKey;
        const [present] = await client.check([key]);
        if (present) rows = JSON.parse((await client.get(key)).toString()) as BenchRow[];
      } finally {
        await client.close();
      }
    },
  });
  const hosts = new Set(plan.nodes.map((n) => n.host)).size;
  return {
    ranks: plan.world_size,
    nodes: plan.nodes.length,
    rows,
    where: `on ${plan.nodes.length} node(s) of ${config.name} (${hosts} host name(s), through dtrain launch)`,
    ...(summary ? { run_id: summary.run_id } : {}),
  };
}

/**
 * The worker's command on the job's nodes. This machine, and a Slurm allocation's nodes (a cluster
 * shares its install, as the srun agents do), run this very file with this Node; SSH hosts run their
 * own install: beside ssh.remote_dtrain (<root>/bin/dtrain) when it is set, else at the same path as this
 * one (a shared or identical install); joined agents likewise at the same path.
 */
function workerArgv(config: JobConfig, kind: NodeSourceKind, here: string): string[] {
  if (kind === 'slurm' || config.nodes.every((n) => n.local)) return [process.execPath, here];
  const remoteDtrain = kind === 'ssh' ? config.ssh.remote_dtrain : undefined;
  return ['node', remoteDtrain ? join(dirname(dirname(remoteDtrain)), 'dist', 'runtime', 'bench-worker.js') : here];
}
