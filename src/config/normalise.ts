/**
 * From a schema-valid document to a JobConfig: reads the hostfile and env_file, applies include/exclude,
 * decides each node's process count, resolves the data size, converts durations, and runs the checks a
 * schema cannot express (world = data × tensor × pipeline, unique hosts, ...). Problems are collected,
 * never thrown one at a time; doubtful but legal settings become warnings.
 *
 * It also runs on a document that failed the schema, so its problems are reported with the schema's:
 * the rejected values are then gone (schema defaults stand in) and listed in ctx.rejected. A check that
 * reads one of them is skipped (`usable(...)` names what each check reads beyond its own path), and a
 * problem located at or under one is dropped: either would be about a value nobody wrote.
 */
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import type { ConfigProblem } from '../util/errors.js';
import { formatDuration, MAX_DURATION_MS, parseDuration } from './duration.js';
import { MAX_WORLD_SIZE } from './limits.js';
import { envNameProblem, envValueProblem } from './env-rules.js';
import { type EnvFileEntry, parseEnvFile } from './envfile.js';
import { TextReadError } from './read-text.js';
import { parseHostFilter, parseHostfile, selectHosts } from './hostfile.js';
import { nprocAtPlan } from './nproc-auto.js';
import { splitCommand } from './shellwords.js';
import { readTokenFile } from './token-file.js';
import type { ConfigSource, PathSegment } from './source.js';
import type { ElasticConfig, JobConfig, NodeConfig, RawConfig, RawNode } from './types.js';

export interface NormaliseContext {
  /** the config file as given (relative paths in it are relative to its folder) */
  file: string;
  cwd: string;
  defaultName: string;
  readText(path: string): string;
  isLocalHost(host: string): boolean;
  localGpuCount(): number;
  /** the home folder `~/` names in ssh paths; default os.homedir() */
  home?: string;
  /** key paths whose values the schema rejected (schema-repair.ts removed them; defaults stand in) */
  rejected?: PathSegment[][];
}

export interface Normalised {
  config?: JobConfig;
  problems: ConfigProblem[];
  warnings: ConfigProblem[];
}

export function normalise(raw: RawConfig, source: ConfigSource, ctx: NormaliseContext): Normalised {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const rejected = ctx.rejected ?? [];
  /** none of these dotted paths (`*`: any key or index) is, holds or lies inside a rejected value */
  const usable: Usable = (...paths) => !paths.some((p) => rejected.some((r) => overlaps(r, p.split('.'))));
  const aboutStandIn = (path: PathSegment[]) =>
    rejected.some((r) => r.length <= path.length && r.every((s, i) => String(s) === String(path[i])));
  const error = (path: PathSegment[], message: string, at: 'key' | 'value' = 'value') => {
    if (!aboutStandIn(path)) problems.push(source.problem(path, message, at));
  };
  const warn = (path: PathSegment[], message: string) => {
    if (!aboutStandIn(path)) warnings.push(source.problem(path, message));
  };
  const baseDir = resolve(ctx.cwd, dirname(ctx.file));
  /** how a path from the config is shown in messages: relative paths joined to the config's folder */
  const shown = (p: string) => (isAbsolute(p) ? p : normalize(join(dirname(ctx.file), p)));

  // entrypoint
  let entrypoint: string[] = [];
  if (typeof raw.entrypoint === 'string') {
    try {
      entrypoint = splitCommand(raw.entrypoint);
      if (entrypoint.length === 0) error(['entrypoint'], 'must name a program to run');
    } catch (err) {
      error(['entrypoint'], `cannot be split into arguments: it ${(err as Error).message}`);
    }
  } else {
    entrypoint = raw.entrypoint ?? []; // missing only after the schema said so
    if (entrypoint[0] === '') error(['entrypoint', 0], 'the program to run is an empty string');
  }

  // env_file, then env (env wins): names checked wherever written, values where they take effect (env-rules.ts)
  const env: Record<string, string> = {};
  let envFile: string | undefined;
  if (raw.env_file !== undefined) {
    envFile = resolve(baseDir, raw.env_file);
    const file = shown(raw.env_file);
    const text = readOrProblem(ctx, envFile, (why) => error(['env_file'], `cannot read ${file}: ${why}`));
    if (text !== undefined) {
      const inFile = (line: number, col: number, message: string) =>
        problems.push({ file, line, col, path: '', message });
      const parsed = parseEnvFile(text);
      for (const p of parsed.problems) inFile(p.line, p.col, p.message);
      const last = new Map<string, EnvFileEntry>();
      for (const e of parsed.entries) {
        const bad = envNameProblem(e.key);
        if (bad) inFile(e.line, e.keyCol, bad);
        else last.set(e.key, e);
      }
      for (const e of last.values()) {
        env[e.key] = e.value;
        // a value env overrides (or one env gave that the schema rejected) never reaches a worker
        if (Object.hasOwn(raw.env, e.key) || !usable(`env.${e.key}`)) continue;
        const bad = envValueProblem(e.key, e.value);
        if (bad) inFile(e.line, bad.at === 'key' ? e.keyCol : e.valueCol, `${e.key}: ${bad.message}`);
      }
    }
  }
  for (const [k, v] of Object.entries(raw.env)) {
    const badName = envNameProblem(k);
    if (badName) {
      error(['env', k], badName, 'key');
      continue;
    }
    env[k] = String(v);
    const bad = envValueProblem(k, env[k]);
    if (bad) error(['env', k], bad.message, bad.at);
  }

  // nodes; spares are held apart (elastic.spares) and count for nothing at full strength
  const listed = resolveNodes(raw, source, ctx, baseDir, shown, problems, error, warn, usable);
  const nodes = listed.filter((n) => !n.spare);
  const spares = listed.filter((n) => n.spare);
  const world = nodes.reduce((sum, n) => sum + n.nproc, 0);
  if (listed.length && nodes.length === 0) error(['nodes'], 'every node is a spare: list at least one that is not');
  if (world > MAX_WORLD_SIZE)
    error(
      [raw.nodes ? 'nodes' : 'nproc_per_node'],
      `make ${world} ranks on ${nodes.length} nodes, over the limit of ${MAX_WORLD_SIZE}`,
    );

  // scheduler and the listed nodes must agree on how many nodes there are (none: the list is unknown)
  if (
    raw.scheduler?.nodes !== undefined &&
    (raw.nodes || raw.hostfile) &&
    nodes.length &&
    raw.scheduler.nodes !== nodes.length
  ) {
    error(
      ['scheduler', 'nodes'],
      `is ${raw.scheduler.nodes}, but the config lists ${nodes.length} node${nodes.length === 1 ? '' : 's'}`,
    );
  }

  const gpusPerNode = raw.scheduler?.gpus_per_node;
  if (
    gpusPerNode &&
    typeof raw.nproc_per_node === 'number' &&
    raw.nproc_per_node > gpusPerNode &&
    raw.backend !== 'cpu' &&
    usable('scheduler.gpus_per_node', 'backend')
  ) {
    warn(
      ['nproc_per_node'],
      `is ${raw.nproc_per_node}, but scheduler.gpus_per_node is ${gpusPerNode}: workers would share GPUs`,
    );
  }

  // the rank grid
  const par = raw.parallelism;
  const tp = par.tensor * par.pipeline;
  let data = typeof par.data === 'number' ? par.data : 0;
  const perNode = nodes.map((n) => `${n.host}: ${n.nproc}`).join(', ');
  const gridKnown = nodes.length > 0 && usable('parallelism.data', 'parallelism.tensor', 'parallelism.pipeline');
  if (gridKnown && par.data === 'auto') {
    if (world % tp !== 0) {
      error(
        ['parallelism'],
        `tensor × pipeline = ${par.tensor} × ${par.pipeline} = ${tp} does not divide the world size ` +
          `${world} (${perNode})`,
      );
    } else data = world / tp;
  } else if (gridKnown && data * tp !== world) {
    error(
      ['parallelism', 'data'],
      `data × tensor × pipeline = ${data} × ${par.tensor} × ${par.pipeline} = ${data * tp}, but the nodes ` +
        `run ${world} process${world === 1 ? '' : 'es'} (${perNode})`,
    );
  }
  if (par.virtual_stages > 1 && par.schedule !== 'interleaved-1f1b' && usable('parallelism.schedule')) {
    error(
      ['parallelism', 'virtual_stages'],
      `is ${par.virtual_stages}, but virtual stages need schedule: interleaved-1f1b (schedule is ${par.schedule})`,
    );
  }
  if (
    par.schedule === 'interleaved-1f1b' &&
    par.microbatches % par.pipeline !== 0 &&
    usable('parallelism.schedule', 'parallelism.pipeline')
  ) {
    error(
      ['parallelism', 'microbatches'],
      `interleaved-1f1b needs microbatches divisible by pipeline (${par.pipeline}), got ${par.microbatches}`,
    );
  }
  if (par.schedule === 'interleaved-1f1b' && par.virtual_stages === 1 && usable('parallelism.schedule')) {
    warn(
      ['parallelism', 'virtual_stages'],
      'interleaved-1f1b with virtual_stages 1 is plain 1f1b; use 2 or more to shrink the bubble',
    );
  }
  if (par.pipeline > 1 && par.microbatches < par.pipeline && usable('parallelism.pipeline')) {
    warn(
      ['parallelism', 'microbatches'],
      `${par.microbatches} microbatch${par.microbatches === 1 ? '' : 'es'} for ${par.pipeline} pipeline ` +
        `stages: most stages sit idle (pipeline bubble); use at least ${par.pipeline}, ideally ` +
        `${4 * par.pipeline} or more`,
    );
  }
  if (par.zero_stage > 0 && data === 1) {
    warn(
      ['parallelism', 'zero_stage'],
      `ZeRO stage ${par.zero_stage} with data = 1 shards over a single rank: it saves no memory`,
    );
  }
  if (par.tensor > 1 && usable('parallelism.tensor')) {
    let offset = 0;
    for (const [i, n] of nodes.entries()) {
      if (offset % par.tensor !== 0 || (offset + n.nproc) % par.tensor !== 0) {
        warn(
          nodePath(raw, i),
          `tensor = ${par.tensor} does not divide ${n.host}'s ${n.nproc} processes: tensor groups would ` +
            `cross nodes (slow)`,
        );
      }
      offset += n.nproc;
    }
  }

  // log ranks inside the world
  if (Array.isArray(raw.logs.ranks)) {
    raw.logs.ranks.forEach((r, i) => {
      if (nodes.length && r >= world)
        error(['logs', 'ranks', i], `rank ${r} is outside the world (ranks 0-${world - 1})`);
    });
  }

  // ports and timings that must not collide
  if (typeof raw.master.port === 'number' && raw.master.port === raw.rendezvous.port && usable('rendezvous.port')) {
    error(
      ['master', 'port'],
      `is the same as rendezvous.port (${raw.master.port}): PyTorch's rank 0 and dtrain's store each need ` +
        `their own port`,
    );
  }
  const ms = (path: PathSegment[], v: number | string) => {
    const out = parseDuration(v);
    if (out === undefined)
      error(path, `must be a duration such as 30s, 5m, 1h or a number of seconds, got ${JSON.stringify(v)}`);
    else if (out > MAX_DURATION_MS)
      error(path, `must be at most ${formatDuration(MAX_DURATION_MS)} (the longest a timer can wait), got ${v}`);
    return out ?? 0;
  };
  const heartbeat = {
    interval: ms(['heartbeat', 'interval'], raw.heartbeat.interval),
    timeout: ms(['heartbeat', 'timeout'], raw.heartbeat.timeout),
  };
  if (heartbeat.interval === 0) error(['heartbeat', 'interval'], 'must be more than 0');
  if (heartbeat.timeout <= heartbeat.interval && usable('heartbeat.interval')) {
    error(
      ['heartbeat', 'timeout'],
      `must be longer than heartbeat.interval (${raw.heartbeat.interval}): a node would be declared lost ` +
        `between two heartbeats`,
    );
  }
  if (raw.monitor && !isLoopback(raw.monitor.host) && raw.monitor.token_file === undefined) {
    error(
      ['monitor', 'host'],
      `${raw.monitor.host} is not a loopback address: set monitor.token_file too (a file holding the token ` +
        'clients must send), or keep the default 127.0.0.1',
    );
  }
  if (raw.monitor?.token_file !== undefined) {
    // checked here too, not only when a launch reads it: validate then reports it at its line and column
    const read = readTokenFile(resolve(baseDir, expandHome(raw.monitor.token_file, ctx.home)));
    if (read.problem !== undefined)
      error(['monitor', 'token_file'], `${shown(raw.monitor.token_file)}: ${read.problem}`);
  }
  if (raw.ssh.strict_host_key_checking === 'no' && nodes.some((n) => !n.local && !n.from_allocation)) {
    warn(
      ['ssh', 'strict_host_key_checking'],
      'host keys are not checked: anyone on the network path can pose as a node',
    );
  }

  // the model shape, when given, should fit the grid
  if (raw.model) {
    const m = raw.model;
    if (
      m.layers !== undefined &&
      m.layers % (par.pipeline * par.virtual_stages) !== 0 &&
      usable('parallelism.pipeline', 'parallelism.virtual_stages')
    ) {
      warn(
        ['model', 'layers'],
        `${m.layers} layers do not split evenly into ${par.pipeline * par.virtual_stages} pipeline chunks ` +
          `(pipeline × virtual_stages)`,
      );
    }
    if (m.heads !== undefined && m.heads % par.tensor !== 0 && usable('parallelism.tensor')) {
      warn(['model', 'heads'], `${m.heads} attention heads do not split evenly over tensor = ${par.tensor}`);
    }
  }

  const elastic = checkElastic(raw, nodes, spares, data, error, ms);
  const checkpointDir = raw.checkpoint?.dir;
  const workdir = resolve(ctx.cwd, raw.workdir ?? '.');

  const config: JobConfig = {
    name: raw.name ?? ctx.defaultName,
    entrypoint,
    workdir,
    env,
    secret_env: [...(raw.secret_env ?? [])],
    ...(envFile !== undefined && { env_file: envFile }),
    nodes,
    ...(raw.hostfile !== undefined && { hostfile: resolve(baseDir, raw.hostfile) }),
    ...(raw.include !== undefined && { include: raw.include }),
    ...(raw.exclude !== undefined && { exclude: raw.exclude }),
    nproc_per_node: raw.nproc_per_node,
    parallelism: { ...par, data },
    backend: raw.backend,
    master: { ...raw.master },
    rendezvous: { ...raw.rendezvous, timeout: ms(['rendezvous', 'timeout'], raw.rendezvous.timeout) },
    heartbeat,
    collective_timeout: ms(['collective_timeout'], raw.collective_timeout),
    hang_timeout: raw.hang_timeout === 'off' ? null : ms(['hang_timeout'], raw.hang_timeout),
    restarts: { max: raw.restarts.max, backoff: ms(['restarts', 'backoff'], raw.restarts.backoff) },
    shutdown_grace: ms(['shutdown_grace'], raw.shutdown_grace),
    checkpoint_signal: raw.checkpoint_signal,
    node_single_threaded: raw.node_single_threaded,
    ...(elastic && { elastic }),
    ...(raw.checkpoint && {
      checkpoint: checkpointDir === undefined ? {} : { dir: resolve(workdir, checkpointDir) },
    }),
    logs: { ...raw.logs, ranks: Array.isArray(raw.logs.ranks) ? [...raw.logs.ranks] : raw.logs.ranks },
    ...(raw.monitor && {
      monitor: {
        ...raw.monitor,
        ...(raw.monitor.token_file !== undefined && {
          token_file: resolve(baseDir, expandHome(raw.monitor.token_file, ctx.home)),
        }),
      },
    }),
    ssh: {
      ...raw.ssh,
      ...(raw.ssh.identity_file !== undefined && { identity_file: expandHome(raw.ssh.identity_file, ctx.home) }),
      ...(raw.ssh.known_hosts !== undefined && { known_hosts: expandHome(raw.ssh.known_hosts, ctx.home) }),
      forward_env: [...raw.ssh.forward_env],
      connect_timeout: ms(['ssh', 'connect_timeout'], raw.ssh.connect_timeout),
    },
    ...(raw.scheduler && { scheduler: { ...raw.scheduler } }),
    ...(raw.model && { model: { ...raw.model } }),
  };
  return { config: problems.length ? undefined : config, problems, warnings };
}

/** elastic's checks against the node list (spares apart): undefined when the job is not elastic. */
function checkElastic(
  raw: RawConfig,
  nodes: NodeConfig[],
  spares: NodeConfig[],
  /** the data size at full strength (0: unknown) */
  data: number,
  error: Report,
  ms: (path: PathSegment[], v: number | string) => number,
): ElasticConfig | undefined {
  const e = raw.elastic;
  if (!e) {
    raw.nodes?.forEach((n, i) => {
      if (n.spare) error(['nodes', i, 'spare'], 'a spare needs elastic: (only elastic jobs replace lost nodes)');
    });
    return undefined;
  }
  const maxNodes = e.max_nodes ?? nodes.length;
  if (nodes.length) {
    const listed =
      `the config lists ${nodes.length} node${nodes.length === 1 ? '' : 's'} that ` +
      `${nodes.length === 1 ? 'is not a spare' : 'are not spares'}`;
    if (e.min_nodes > nodes.length) error(['elastic', 'min_nodes'], `is ${e.min_nodes}, but ${listed}`);
    if (e.max_nodes !== undefined && e.max_nodes > nodes.length + spares.length)
      error(['elastic', 'max_nodes'], `is ${e.max_nodes}, but the config lists ${nodes.length + spares.length} nodes`);
    if (e.max_nodes !== undefined && e.max_nodes < e.min_nodes)
      error(['elastic', 'max_nodes'], `is ${maxNodes}, less than elastic.min_nodes (${e.min_nodes})`);
  }
  if (e.data_divides !== undefined && data > 0 && e.data_divides % data !== 0)
    error(
      ['elastic', 'data_divides'],
      `is ${e.data_divides}, but parallelism.data (${data}, the size at full strength) does not divide it`,
    );
  return {
    min_nodes: e.min_nodes,
    max_nodes: maxNodes,
    rejoin: ms(['elastic', 'rejoin'], e.rejoin),
    max_losses_per_node: e.max_losses_per_node,
    ...(e.data_divides !== undefined && { data_divides: e.data_divides }),
    spares,
  };
}

/** One path is the other or lies inside it; `*` in `pattern` matches any one key or index. */
function overlaps(path: PathSegment[], pattern: string[]): boolean {
  for (let i = 0; i < Math.min(path.length, pattern.length); i++) {
    if (pattern[i] !== '*' && pattern[i] !== String(path[i])) return false;
  }
  return true;
}

function nodePath(raw: RawConfig, i: number): PathSegment[] {
  return raw.nodes ? ['nodes', i] : raw.hostfile ? ['hostfile'] : ['nproc_per_node'];
}

/** ctx.readText's text, or undefined after onError with why not (read-text.ts says why when it can). */
function readOrProblem(ctx: NormaliseContext, path: string, onError: (why: string) => void): string | undefined {
  try {
    return ctx.readText(path);
  } catch (err) {
    onError(err instanceof TextReadError ? err.message : 'no such file or not readable');
    return undefined;
  }
}

type Report = (path: PathSegment[], message: string, at?: 'key' | 'value') => void;
type Usable = (...paths: string[]) => boolean;

function resolveNodes(
  raw: RawConfig,
  source: ConfigSource,
  ctx: NormaliseContext,
  baseDir: string,
  shown: (p: string) => string,
  problems: ConfigProblem[],
  error: Report,
  warn: Report,
  usable: Usable,
): NodeConfig[] {
  if (raw.nodes && raw.hostfile !== undefined) {
    error(['hostfile'], 'give either nodes or hostfile, not both', 'key');
    return [];
  }
  if (raw.include !== undefined && raw.exclude !== undefined) {
    error(['exclude'], 'give either include or exclude, not both', 'key');
    return [];
  }
  // A rejected value the node list comes from leaves it unknown (returned empty, like after a problem):
  // the default standing in would describe another cluster (no `nodes` falls back to localhost).
  const fromAllocation = !raw.nodes && raw.hostfile === undefined;
  if (
    !usable('nodes.*.host', 'nodes.*.slots', 'hostfile', 'include', 'exclude') ||
    (fromAllocation && !usable('scheduler.kind', 'scheduler.nodes'))
  ) {
    return [];
  }

  // 1. the candidate nodes, in rank order
  type Candidate = RawNode & { from_allocation?: boolean; path: PathSegment[] };
  let base: Candidate[];
  let listName: string;
  if (raw.nodes) {
    base = raw.nodes.map((n, i) => ({ ...n, path: ['nodes', i] }));
    listName = 'nodes list';
    const seen = new Map<string, number>();
    let duplicate = false;
    raw.nodes.forEach((n, i) => {
      // host names are case-insensitive (DNS): Node-A and node-a are one machine
      const key = n.host.toLowerCase();
      const first = seen.get(key);
      if (first !== undefined) {
        error(['nodes', i, 'host'], `host "${n.host}" is listed twice (also nodes.${first})`);
        duplicate = true;
      } else seen.set(key, i);
    });
    if (duplicate) return [];
  } else if (raw.hostfile !== undefined) {
    const file = resolve(baseDir, raw.hostfile);
    const text = readOrProblem(ctx, file, (why) => error(['hostfile'], `cannot read ${shown(raw.hostfile!)}: ${why}`));
    if (text === undefined) return [];
    const parsed = parseHostfile(text);
    for (const p of parsed.problems)
      problems.push({ file: shown(raw.hostfile), line: p.line, col: p.col, path: '', message: p.message });
    if (parsed.problems.length) return [];
    if (parsed.hosts.length === 0) {
      error(['hostfile'], `${shown(raw.hostfile)} lists no hosts (expected "<host> slots=<n>" lines)`);
      return [];
    }
    base = parsed.hosts.map((h) => ({ host: h.host, slots: h.slots, path: ['hostfile'] }));
    listName = 'hostfile';
  } else if (raw.scheduler) {
    const count = raw.scheduler.nodes ?? 1;
    const kind = raw.scheduler.kind;
    base = Array.from({ length: count }, (_, i) => ({
      host: `<${kind} node ${i}>`,
      from_allocation: true,
      path: ['scheduler'],
    }));
    listName = 'allocation';
  } else {
    base = [{ host: 'localhost', path: [] }];
    listName = 'default node list (localhost)';
  }

  // 2. include/exclude
  let selected: { index: number; slotList?: number[] }[] = base.map((_, index) => ({ index }));
  const filterKey = raw.include !== undefined ? 'include' : raw.exclude !== undefined ? 'exclude' : undefined;
  if (filterKey) {
    const text = raw[filterKey]!;
    const offsetBase = source.valueQuoteWidth([filterKey]);
    const report = (offset: number, message: string) =>
      problems.push(source.problem([filterKey], message, 'value', offsetBase + offset));
    if (base.some((b) => b.from_allocation)) {
      error(
        [filterKey],
        `needs nodes or a hostfile to choose from (the ${raw.scheduler!.kind} allocation is not known ` +
          `before the job starts)`,
      );
      return [];
    }
    const parsed = parseHostFilter(text);
    const chosen = selectHosts(base, parsed.entries, filterKey, listName);
    const filterProblems = [...parsed.problems, ...chosen.problems].sort((a, b) => a.offset - b.offset);
    for (const p of filterProblems) report(p.offset, p.message);
    if (filterProblems.length) return [];
    if (chosen.selected.length === 0) {
      error([filterKey], `leaves no node to run on`);
      return [];
    }
    selected = chosen.selected;
  }

  // 3. processes per node, locality, ssh settings
  if (!usable('nproc_per_node') || (fromAllocation && !usable('scheduler.gpus_per_node'))) return [];
  const nodes: NodeConfig[] = [];
  for (const { index, slotList } of selected) {
    const b = base[index];
    const slots = slotList ? slotList.length : b.slots;
    let nproc: number;
    let assumed = false;
    if (typeof raw.nproc_per_node === 'number') {
      nproc = raw.nproc_per_node;
      if (slots !== undefined && slots < nproc) {
        const where = slotList
          ? `${b.host} has ${slots} selected slot${slots === 1 ? '' : 's'} (${slotList.join(',')})`
          : `${b.host} has slots=${slots}`;
        error(['nproc_per_node'], `is ${nproc}, but ${where}`);
      }
    } else {
      const gpusPerNode = raw.scheduler?.gpus_per_node;
      ({ nproc, assumed } = nprocAtPlan({
        ...(slots !== undefined ? { slots } : {}),
        fromAllocation: Boolean(b.from_allocation),
        ...(gpusPerNode !== undefined ? { gpusPerNode } : {}),
        ...(!b.from_allocation && ctx.isLocalHost(b.host) ? { localGpus: () => ctx.localGpuCount() } : {}),
      }));
    }
    if (assumed) {
      warn(
        b.path.length ? b.path : ['nproc_per_node'],
        `nproc_per_node is auto and ${b.host} has no slots: its GPU count is known only at launch, the plan ` +
          `assumes 1 process`,
      );
    }
    const local = !b.from_allocation && ctx.isLocalHost(b.host);
    const user = b.user ?? raw.ssh.user;
    const node: NodeConfig = { host: b.host, nproc, local };
    if (slots !== undefined) node.slots = slots;
    if (assumed) node.nproc_assumed = true;
    if (!local && !b.from_allocation) {
      if (user !== undefined) node.user = user;
      // Unset in both: the SSH spawner asks ~/.ssh/config for the host's Port, then uses 22.
      const port = b.port ?? raw.ssh.port;
      if (port !== undefined) node.port = port;
    }
    if (slotList) node.cuda_visible_devices = slotList.join(',');
    if (b.from_allocation) node.from_allocation = true;
    if (b.spare) node.spare = true;
    nodes.push(node);
  }
  return nodes;
}

/** `~` and `~/x` as OpenSSH reads them in IdentityFile and UserKnownHostsFile. */
export function expandHome(path: string, home = homedir()): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return join(home, path.slice(2));
  return path;
}

/** 127.0.0.0/8, ::1 and localhost: a monitor there needs no token. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
