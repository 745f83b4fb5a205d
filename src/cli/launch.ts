/**
 * `dtrain launch <config>` or, torchrun-style, `dtrain launch --nproc-per-node 4 -- python3 train.py`.
 * Thin: build the config, then hand over to src/launch/run-job.ts (nodes, plan, controller). `--dry-run`
 * prints exactly what `dtrain validate` prints.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';

interface LaunchArgs {
  config?: string;
  'dry-run'?: boolean;
  json?: boolean;
  set?: string[];
  'nproc-per-node'?: string;
  nnodes?: number;
  hosts?: string;
  'master-addr'?: string;
  'master-port'?: number;
  'max-restarts'?: number;
  name?: string;
  backend?: string;
  'save-config'?: string;
  'join-agents'?: number;
  'secret-file'?: string;
  monitor?: string;
  '--'?: string[];
}

/** One table for yargs and for quickLaunchArgs, so the two never disagree on what an option is. */
const launchOptions = {
  'dry-run': { type: 'boolean', describe: 'print the plan (as dtrain validate does) and start nothing' },
  json: { type: 'boolean', describe: 'print one JSON document on stdout (worker output goes to stderr)' },
  set: { type: 'string', array: true, describe: 'override a key: --set restarts.max=2 (repeatable)' },
  'nproc-per-node': { type: 'string', describe: 'without a config: processes per node (a number or auto)' },
  nnodes: { type: 'number', describe: 'without a config: number of nodes (must match --hosts)' },
  hosts: { type: 'string', describe: 'without a config: comma-separated hosts' },
  'master-addr': { type: 'string', describe: 'without a config: MASTER_ADDR' },
  'master-port': { type: 'number', describe: 'without a config: MASTER_PORT' },
  'max-restarts': { type: 'number', describe: 'without a config: restarts.max' },
  name: { type: 'string', describe: 'without a config: the job name' },
  backend: { type: 'string', describe: 'without a config: auto, cpu or nccl' },
  'save-config': {
    type: 'string',
    describe: 'write the config these flags make to FILE (and launch unless --dry-run)',
  },
  'join-agents': {
    type: 'number',
    describe: 'join mode: wait for N `dtrain agent --join` agents instead of starting them (no SSH/srun)',
  },
  'secret-file': { type: 'string', describe: 'join mode: the job key (hex, mode 0600) the joining agents read too' },
  monitor: {
    type: 'string',
    describe: 'serve the live dashboard, /api/status and /metrics on 127.0.0.1: a port, or auto (monitor.port)',
  },
} as const satisfies Record<string, { type: 'boolean' | 'string' | 'number'; array?: boolean; describe: string }>;

type LaunchOption = keyof typeof launchOptions;

/**
 * The arguments of `dtrain launch ...` read without yargs (whose import is ~30-45 ms of a launch that
 * takes a few hundred): only the plain forms (`--opt value`, `--opt=value`, flags, one config, `--`).
 * Anything else (help, negations, repeats, an unknown or odd token) returns undefined and yargs parses
 * it, with its messages. test/unit/launch/launch-args.test.ts checks this against yargs itself.
 */
export function quickLaunchArgs(argv: string[]): ArgumentsCamelCase<LaunchArgs> | undefined {
  const args: Record<string, unknown> = { _: ['launch'], '--': [] as string[] };
  const seen = new Set<string>();
  const set = (name: LaunchOption, value: unknown) => {
    args[name] = value;
    args[name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = value;
  };
  const isFlag = (tok: string | undefined) => tok !== undefined && tok.startsWith('-');
  let i = 0;
  for (; i < argv.length; i++) {
    const tok = argv[i];
    if (tok === '--') break;
    if (!tok.startsWith('--')) {
      if (tok === '' || tok.startsWith('-') || args.config !== undefined) return undefined;
      args.config = tok;
      continue;
    }
    const eq = tok.indexOf('=');
    const name = (eq < 0 ? tok.slice(2) : tok.slice(2, eq)) as LaunchOption;
    if (!Object.hasOwn(launchOptions, name) || seen.has(name)) return undefined;
    seen.add(name);
    const opt: { type: string; array?: boolean } = launchOptions[name];
    if (opt.type === 'boolean') {
      // `--json true` and `--json=false` mean something to yargs: leave those to it.
      if (eq >= 0 || argv[i + 1] === 'true' || argv[i + 1] === 'false') return undefined;
      set(name, true);
      continue;
    }
    const values: string[] = [];
    if (eq >= 0) values.push(tok.slice(eq + 1));
    else if (opt.array) while (i + 1 < argv.length && !isFlag(argv[i + 1])) values.push(argv[++i]);
    else if (i + 1 < argv.length && !isFlag(argv[i + 1])) values.push(argv[++i]);
    if (values.length === 0 || values.some((v) => v === '')) return undefined;
    // `--set=a b`: whether b is another value or the config is yargs's call.
    if (eq >= 0 && opt.array && i + 1 < argv.length && !isFlag(argv[i + 1])) return undefined;
    if (opt.type === 'number') {
      if (!/^(0|[1-9][0-9]{0,8})$/.test(values[0])) return undefined;
      set(name, Number(values[0]));
    } else set(name, opt.array ? values : values[0]);
  }
  args['--'] = argv.slice(i + 1);
  return args as ArgumentsCamelCase<LaunchArgs>;
}

export const launchCommand: CommandModule<object, LaunchArgs> = {
  command: 'launch [config]',
  describe: 'start a job on its nodes and supervise it',
  builder: (y: Argv) =>
    y
      .parserConfiguration({ 'populate--': true, 'parse-positional-numbers': false })
      .positional('config', {
        type: 'string',
        describe: 'the job config (YAML); omit it to use the torchrun-style flags',
      })
      .options(launchOptions),
  handler: async (args: ArgumentsCamelCase<LaunchArgs>) => {
    const { UsageError } = await import('../util/errors.js');
    const extra = (args['--'] ?? []).map(String);
    const fromFlags = args.config === undefined;
    if (fromFlags && args.nprocPerNode === undefined && !extra.length) {
      throw new UsageError(
        'name a config file, or use torchrun-style flags: dtrain launch --nproc-per-node 4 -- python3 train.py',
      );
    }
    const joinKey = await joinModeKey(args);
    const nproc = args.nprocPerNode;
    if (nproc !== undefined && nproc !== 'auto' && !/^[1-9]\d*$/.test(nproc)) {
      throw new UsageError(`--nproc-per-node must be a positive integer or auto, got ${JSON.stringify(nproc)}`);
    }
    const hosts = args.hosts?.split(',').filter(Boolean);
    if (hosts?.length === 0) throw new UsageError(`--hosts ${JSON.stringify(args.hosts)} names no host`);
    const config = await import('../config/index.js');
    const sets = [
      ...(args.set ?? []),
      ...(args.monitor === undefined ? [] : [`monitor.port=${args.monitor || 'auto'}`]),
    ];
    const loaded = fromFlags
      ? await config.configFromArgs({
          entrypoint: extra,
          nprocPerNode:
            args.nprocPerNode === undefined
              ? undefined
              : args.nprocPerNode === 'auto'
                ? 'auto'
                : Number(args.nprocPerNode),
          nnodes: args.nnodes,
          hosts,
          masterAddr: args.masterAddr,
          masterPort: args.masterPort,
          maxRestarts: args.maxRestarts,
          name: args.name,
          backend: args.backend,
          sets,
        })
      : await config.loadConfig(args.config!, { sets });
    if (args.saveConfig) await config.saveConfig(loaded, args.saveConfig);
    const { runJob } = await import('../launch/run-job.js');
    const dryRun = Boolean(args.dryRun);
    if (dryRun) {
      const { plan } = await runJob({ loaded, extraArgs: fromFlags ? [] : extra, json: Boolean(args.json), dryRun });
      const { planDocument, renderPlanTable } = await import('../plan/render.js');
      if (args.json) process.stdout.write(JSON.stringify(planDocument(plan), null, 2) + '\n');
      else process.stdout.write(renderPlanTable(plan));
      for (const w of plan.warnings) process.stderr.write(`warning: ${w}\n`);
      return;
    }
    const { writeResultFile } = await import('../launch/result-file.js');
    const { slurmResumed, requeueAfterSave } = await import('../launch/slurm/requeue.js');
    const log = (line: string) => process.stderr.write(`dtrain: ${line}\n`);
    const resumed = slurmResumed(process.env);
    if (resumed) log(`resumed: Slurm restart ${resumed.slurm_restart_count} of job ${process.env.SLURM_JOB_ID}`);
    try {
      const { summary } = await runJob({
        loaded,
        extraArgs: fromFlags ? [] : extra,
        json: Boolean(args.json),
        ...(joinKey ? { join: { agents: args.joinAgents!, jobKey: joinKey } } : {}),
      });
      if (resumed) summary!.resumed = resumed;
      await requeueAfterSave(summary!, loaded.config, log);
      writeResultFile(summary!);
      if (args.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    } catch (err) {
      // `dtrain submit --wait` (and a PBS script's) reads the outcome from the result file: write it for failures too
      const e = err as { exitCode?: number; message?: string; summary?: object };
      writeResultFile({
        exit_code: e.exitCode ?? 1,
        error: e.message,
        ...(e.summary ?? {}),
        ...(resumed && { resumed }),
      });
      throw err;
    }
  },
};

/** Join mode's checks before anything loads: --join-agents and --secret-file go together (exit 2). */
export async function joinModeKey(args: { joinAgents?: number; secretFile?: string }): Promise<Buffer | undefined> {
  const { UsageError } = await import('../util/errors.js');
  const n = args.joinAgents;
  if (n === undefined && args.secretFile === undefined) return undefined;
  if (n === undefined) throw new UsageError('--secret-file goes with --join-agents N (join mode)');
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--join-agents must be a positive integer, got ${String(n)}`);
  if (args.secretFile === undefined)
    throw new UsageError('--join-agents needs --secret-file F: the job key the joining agents read too');
  const { readSecretFile } = await import('../launch/join/secret-file.js');
  return readSecretFile(args.secretFile);
}
