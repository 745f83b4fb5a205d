/**
 * `dtrain bench [config]`: times a CPU collective over a range of sizes and prints nccl-tests columns
 * (or one JSON document). Without a config it runs a small job on this machine (simulated nodes, see
 * runtime/local-job.ts); with one, the bench worker becomes the config's entrypoint and the job goes
 * through the real launcher, so it runs on the config's hosts (this machine, or others over SSH).
 */
import type { CommandModule } from 'yargs';
import type { BenchRow } from '../runtime/bench-worker.js';
import { JobFailedError, UsageError } from '../util/errors.js';

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
}

const ops = ['all_reduce', 'reduce_scatter', 'all_gather', 'broadcast', 'sendrecv'] as const;

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
  describe: 'time CPU collectives and point-to-point (nccl-tests columns: bytes, count, type, time, algbw, busbw)',
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
      .option('iters', { type: 'number', describe: 'timed iterations per size (default: scaled to the size)' })
      .option('set', {
        type: 'string',
        array: true,
        describe: 'with a config: override a key, as in dtrain launch (repeatable)',
      })
      .option('json', { type: 'boolean', describe: 'print one JSON document' }),
  handler: async (args) => {
    const sizes = args.sizes.split(',').map((s) => Number(s.trim()));
    if (sizes.some((s) => !Number.isInteger(s) || s < 4))
      throw new UsageError(`--sizes ${args.sizes}: sizes are whole numbers of bytes, at least 4`);
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
      run = await overConfig(args.config, args.set ?? [], workerEnv);
    } else {
      if (args.set?.length) throw new UsageError('--set needs a config');
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
  out +=
    `#${pad('size', 12)}${pad('count', 12)}${pad('type', 7)}${pad('redop', 6)}${pad('time', 11)}` +
    `${pad('algbw', 8)}${pad('busbw', 8)}  transport/algorithm\n`;
  out +=
    `#${pad('(B)', 12)}${pad('(elements)', 12)}${pad('', 7)}${pad('', 6)}${pad('(us)', 11)}` +
    `${pad('(GB/s)', 8)}${pad('(GB/s)', 8)}\n`;
  for (const r of run.rows)
    out +=
      ` ${pad(r.bytes, 12)}${pad(r.count, 12)}${pad(r.type, 7)}${pad(r.redop, 6)}` +
      `${pad(r.time_us.toFixed(2), 11)}${pad(r.algbw_GBps.toFixed(2), 8)}${pad(r.busbw_GBps.toFixed(2), 8)} ` +
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
  const { runLocalJob } = await import('../runtime/local-job.js');
  let out = '';
  const exits = await runLocalJob({
    nodes: Array<number>(nnodes).fill(nproc),
    argv: [process.execPath, await workerPath()],
    env,
    onStdout: (_rank, chunk) => (out += chunk),
  });
  const failed = exits.filter((e) => e.code !== 0);
  if (failed.length)
    throw new JobFailedError(`bench: rank ${failed[0].rank} exited with ${failed[0].code ?? failed[0].signal}`);
  const rows = out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as BenchRow);
  return { ranks: nproc * nnodes, nodes: nnodes, rows, where: `on ${nnodes} simulated node(s)` };
}

/** Rank 0's JSON lines as the launcher's console prints them: `[rank 0] {...}` or `[host rank 0] {...}`. */
export function rowsFromConsole(text: string): BenchRow[] {
  const rows: BenchRow[] = [];
  // eslint-disable-next-line no-control-regex
  for (const line of text.replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
    const m = /^\[(?:\S+ )?rank 0\] (\{.*\})\s*$/.exec(line);
    if (m) rows.push(JSON.parse(m[1]) as BenchRow);
  }
  return rows;
}

async function overConfig(file: string, sets: string[], env: Record<string, string>): Promise<BenchRun> {
  const { loadConfig } = await import('../config/index.js');
  const loaded = await loadConfig(file, { sets });
  if (loaded.config.nodes.some((n) => n.from_allocation))
    throw new UsageError(
      `${file}: its nodes come from a batch allocation; run dtrain bench inside the allocation with a ` +
        `config that lists them`,
    );
  const { dirname, join } = await import('node:path');
  const here = await workerPath();
  const allLocal = loaded.config.nodes.every((n) => n.local);
  // Remote hosts run their own dtrain install: beside ssh.remote_dtrain (<root>/bin/dtrain) when it is
  // set, else at the same path as this one (a shared or identical install).
  const remoteDtrain = loaded.config.ssh.remote_dtrain;
  const worker =
    allLocal || !remoteDtrain ? here : join(dirname(dirname(remoteDtrain)), 'dist', 'runtime', 'bench-worker.js');
  const config = {
    ...loaded.config,
    entrypoint: [allLocal ? process.execPath : 'node', worker],
    env: { ...loaded.config.env, ...env },
    // a bench that failed once is a failed bench: no restarts; it measures the CPU collectives
    restarts: { ...loaded.config.restarts, max: 0 },
    backend: 'cpu' as const,
  };
  const { buildPlan } = await import('../plan/index.js');
  const plan = buildPlan({ ...loaded, config }, { extraArgs: [] });
  if (env.BENCH_OP === 'sendrecv' && plan.world_size < 2)
    throw new UsageError(`${file}: --op sendrecv needs at least 2 ranks; the config has 1`);
  for (const w of plan.warnings) process.stderr.write(`warning: ${w}\n`);
  const { launchJob } = await import('../launch/controller.js');
  const { Writable } = await import('node:stream');
  let text = '';
  const capture = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  const remote = plan.nodes.some((n) => !n.local)
    ? (await import('../launch/ssh/remote-spawner.js')).sshRemoteSpawner(config)
    : undefined;
  // Workers' stdout is captured for rank 0's rows; their stderr and the launcher's notes go to stderr.
  const summary = await launchJob({ config, plan, json: false, out: capture, err: process.stderr, remote });
  const hosts = new Set(plan.nodes.map((n) => n.host)).size;
  return {
    ranks: plan.world_size,
    nodes: plan.nodes.length,
    rows: rowsFromConsole(text),
    where: `on ${plan.nodes.length} node(s) of ${config.name} (${hosts} host name(s), through dtrain launch)`,
    run_id: summary.run_id,
  };
}
