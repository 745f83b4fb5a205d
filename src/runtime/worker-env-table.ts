/**
 * The worker environment contract, written once: every variable dtrain puts in a worker's environment,
 * who fills it, the config key it carries, what a worker assumes when it is unset, and how it is read.
 * The plan (plan/build.ts) fills the `plan` rows, the agent fills the `agent` rows at launch
 * (fillAtLaunch), the runtime reads them (worker-env.ts), the dry-run prints them (plan/render.ts), and
 * README.md's "Worker environment" table is checked against this one by a test.
 *
 * Light on purpose: the launcher and every worker import it (the schema's values come through config-facts.ts).
 */
import { configDefault, configEnum } from './config-facts.js';

/** Placeholder in the plan for a value the launch decides. */
export const AUTO = 'auto';

/** What the launch knows that the plan could not; the agent puts these where the plan left AUTO. */
export interface LaunchFacts {
  masterAddr: string;
  masterPort: number;
  runId: string;
  /** failure restarts so far: 0, then one more per whole-group restart after a failure */
  restartCount: number;
  /** the attempt: 0, then one more per restart or membership change (elastic) */
  attempt: number;
  /** the world size of the attempt before this one (0 in attempt 0) */
  prevWorldSize: number;
  /** TORCHELASTIC_ERROR_FILE for this rank */
  errorFile: string;
  /** unix:/path of this node's agent store proxy */
  store: string;
  /** backend auto/nccl: the job's backend as the controller decided it from every node's probe */
  backend?: 'cpu' | 'nccl';
  /** DTRAIN_PROGRESS_FILE for this rank */
  progressFile: string;
  /** a Node worker: its NODE_OPTIONS with the SIGUSR1 guard added (nodeOptionsFor) */
  nodeOptions?: string;
  /** where this rank writes its stack when asked (launch/stacks.ts), in the agent's private folder */
  stackFile?: string;
  /** the agent's sitecustomize folder, then the PYTHONPATH the worker would have had */
  pythonPath?: string;
  /** this rank's flight recorder file, created empty by the agent (runtime/flight-recorder.ts) */
  flightRecorder?: string;
}

/**
 * How the runtime reads a value: a non-negative integer (count), an integer of at least 1 (positive), a duration
 * (config/duration.ts), text, or one of a list.
 */
export type WorkerEnvKind = 'count' | 'positive' | 'duration' | 'text' | { readonly oneOf: readonly string[] };

export interface WorkerEnvVar {
  readonly name: string;
  /**
   * plan: known before launch (the dry-run shows it); agent: decided at launch, AUTO in the plan;
   * plan or agent: the plan's value, or AUTO when the config leaves it to the launch; user: dtrain never sets
   * it, the user may (the config's env or the shell) and the runtime reads it.
   */
  readonly filledBy: 'plan' | 'agent' | 'plan or agent' | 'user';
  /** set only in some cases (see the description); a config's env may set it too */
  readonly optional?: boolean;
  /** the config key the value comes from: a config's env naming the variable is told to set this instead */
  readonly configKey?: string;
  /** the fact the agent fills it from (the plan holds AUTO there or leaves it out) */
  readonly launchFact?: keyof LaunchFacts;
  readonly kind: WorkerEnvKind;
  /** what a worker assumes when it is unset (a worker started by hand): the config's default where there is a key */
  readonly default?: string;
  readonly description: string;
}

/** A variable that carries a config key: its kind and default come from the schema unless given. */
function fromConfig(name: string, configKey: string, kind: WorkerEnvKind | 'enum', description: string): WorkerEnvVar {
  return {
    name,
    filledBy: 'plan',
    configKey,
    kind: kind === 'enum' ? { oneOf: configEnum(configKey) } : kind,
    default: configDefault(configKey),
    description,
  };
}

export const WORKER_ENV: readonly WorkerEnvVar[] = [
  // torchrun's contract
  { name: 'RANK', filledBy: 'plan', kind: 'count', description: 'global rank (unset: 0 when `WORLD_SIZE` is 1)' },
  { name: 'LOCAL_RANK', filledBy: 'plan', kind: 'count', default: '0', description: 'rank on its node' },
  {
    name: 'WORLD_SIZE',
    filledBy: 'plan',
    kind: 'count',
    default: '1',
    description: 'number of ranks (elastic: in this attempt)',
  },
  { name: 'LOCAL_WORLD_SIZE', filledBy: 'plan', kind: 'count', description: 'ranks on this node' },
  { name: 'GROUP_RANK', filledBy: 'plan', kind: 'count', default: '0', description: 'node rank' },
  { name: 'GROUP_WORLD_SIZE', filledBy: 'plan', kind: 'count', description: 'number of nodes' },
  { name: 'ROLE_RANK', filledBy: 'plan', kind: 'count', description: 'rank within its role (= RANK)' },
  { name: 'ROLE_WORLD_SIZE', filledBy: 'plan', kind: 'count', description: 'ranks of its role (= WORLD_SIZE)' },
  { name: 'ROLE_NAME', filledBy: 'plan', kind: 'text', description: '`default`' },
  {
    name: 'MASTER_ADDR',
    filledBy: 'plan or agent',
    configKey: 'master.addr',
    launchFact: 'masterAddr',
    kind: 'text',
    description: "node 0's address as the other nodes reach it",
  },
  {
    name: 'MASTER_PORT',
    filledBy: 'plan or agent',
    configKey: 'master.port',
    launchFact: 'masterPort',
    kind: 'count',
    description: "the port, or (auto) a free one picked by node 0's agent, distinct from the store's",
  },
  {
    name: 'TORCHELASTIC_RESTART_COUNT',
    filledBy: 'agent',
    launchFact: 'restartCount',
    kind: 'count',
    default: '0',
    description: 'failure restarts so far: 0, then one more per whole-group restart (membership changes do not count)',
  },
  fromConfig('TORCHELASTIC_MAX_RESTARTS', 'restarts.max', 'count', 'whole-group restarts allowed'),
  {
    name: 'TORCHELASTIC_RUN_ID',
    filledBy: 'agent',
    launchFact: 'runId',
    kind: 'text',
    description: 'the run id',
  },
  { name: 'TORCHELASTIC_USE_AGENT_STORE', filledBy: 'plan', kind: 'text', description: '`False`' },
  {
    name: 'TORCHELASTIC_ERROR_FILE',
    filledBy: 'agent',
    launchFact: 'errorFile',
    kind: 'text',
    description: 'where the rank may write its error as JSON',
  },
  {
    name: 'OMP_NUM_THREADS',
    filledBy: 'plan',
    optional: true,
    kind: 'count',
    description: '`1` when unset (config env, or the launcher for local nodes) and a node runs several processes',
  },
  {
    name: 'CUDA_VISIBLE_DEVICES',
    filledBy: 'plan',
    optional: true,
    kind: 'text',
    description: "the node's nodes[].cuda_visible_devices, when given",
  },
  // dtrain's
  {
    name: 'DTRAIN_STORE',
    filledBy: 'agent',
    launchFact: 'store',
    kind: 'text',
    description: "the agent's store proxy: unix:<path> in a 0700 folder",
  },
  {
    name: 'DTRAIN_PROGRESS_FILE',
    filledBy: 'agent',
    launchFact: 'progressFile',
    kind: 'text',
    description:
      'where the rank appends one JSON line per step, `{"step", "time", "loss"?, "samples"?, "tokens"?, ' +
      '"wait_s"?}`, for `dtrain status` (Node: `dist.report()`)',
  },
  { name: 'DTRAIN_RUN_ID', filledBy: 'agent', launchFact: 'runId', kind: 'text', description: 'the run id' },
  {
    name: 'DTRAIN_ATTEMPT',
    filledBy: 'agent',
    launchFact: 'attempt',
    kind: 'count',
    default: '0',
    description: 'the attempt: 0, then one more per restart, failure or membership change (elastic)',
  },
  {
    name: 'DTRAIN_PREV_WORLD_SIZE',
    filledBy: 'agent',
    launchFact: 'prevWorldSize',
    kind: 'count',
    default: '0',
    description: "the previous attempt's `WORLD_SIZE` (0 in attempt 0): a resumed checkpoint's world",
  },
  {
    name: 'DTRAIN_CHECKPOINT_DIR',
    filledBy: 'plan',
    optional: true,
    configKey: 'checkpoint.dir',
    kind: 'text',
    description: 'checkpoint.dir as an absolute path, when given (the same folder on every node)',
  },
  { name: 'DTRAIN_NODE_RANK', filledBy: 'plan', kind: 'count', description: 'node rank (which ranks share a host)' },
  { name: 'DTRAIN_DATA_RANK', filledBy: 'plan', kind: 'count', description: 'coordinate in the data dimension' },
  {
    name: 'DTRAIN_DATA_SIZE',
    filledBy: 'plan',
    configKey: 'parallelism.data',
    kind: 'count',
    description: 'data-parallel size (unset: what the world leaves; elastic: in this attempt)',
  },
  { name: 'DTRAIN_PIPELINE_RANK', filledBy: 'plan', kind: 'count', description: 'pipeline stage' },
  {
    name: 'DTRAIN_PIPELINE_SIZE',
    filledBy: 'plan',
    configKey: 'parallelism.pipeline',
    kind: 'count',
    default: '1',
    description: 'pipeline stages',
  },
  { name: 'DTRAIN_TENSOR_RANK', filledBy: 'plan', kind: 'count', description: 'coordinate in the tensor dimension' },
  {
    name: 'DTRAIN_TENSOR_SIZE',
    filledBy: 'plan',
    configKey: 'parallelism.tensor',
    kind: 'count',
    default: '1',
    description: 'tensor-parallel size',
  },
  fromConfig('DTRAIN_ZERO_STAGE', 'parallelism.zero_stage', 'enum', "ShardedAdam's default stage"),
  fromConfig('DTRAIN_MICROBATCHES', 'parallelism.microbatches', 'positive', "Pipeline's default microbatches"),
  fromConfig('DTRAIN_SCHEDULE', 'parallelism.schedule', 'enum', "Pipeline's default schedule"),
  fromConfig('DTRAIN_VIRTUAL_STAGES', 'parallelism.virtual_stages', 'positive', "Pipeline's default chunks per rank"),
  {
    ...fromConfig('DTRAIN_BACKEND', 'backend', 'enum', "cpu or nccl (auto: decided at launch from the nodes' GPUs)"),
    filledBy: 'plan or agent',
    launchFact: 'backend',
  },
  fromConfig('DTRAIN_COLLECTIVE_TIMEOUT', 'collective_timeout', 'duration', 'every op fails after this long'),
  fromConfig('DTRAIN_RENDEZVOUS_TIMEOUT', 'rendezvous.timeout', 'duration', 'how long init() waits for its peers'),
  fromConfig(
    'DTRAIN_CHECKPOINT_SIGNAL',
    'checkpoint_signal',
    'enum',
    "the signal that asks for a save before the scheduler's deadline (dist.onCheckpointSignal)",
  ),
  {
    name: 'DTRAIN_SOCKET_IFNAME',
    filledBy: 'user',
    optional: true,
    kind: 'text',
    description:
      "the interface the collectives' peer listener binds (grammar below; unset: the one routing to MASTER_ADDR)",
  },
  {
    name: 'DTRAIN_BUCKET_CAP_MB',
    filledBy: 'user',
    optional: true,
    kind: 'positive',
    default: '25',
    description: "MiB of gradients per collective: ShardedAdam's default bucket (as DDP's bucket_cap_mb)",
  },
  // read by the addon (addon/src/collectives, addon/src/simd): the same on every rank
  {
    name: 'DTRAIN_SPIN',
    filledBy: 'user',
    optional: true,
    kind: 'count',
    description:
      "µs a rank waiting for a same-node peer spins before it sleeps on the peer's futex (unset: 20, or 0 when " +
      'the node runs more ranks than the rank may use CPUs; right after it woke that peer: at least 200 unless 0)',
  },
  {
    name: 'DTRAIN_SHM_STAGING_BYTES',
    filledBy: 'user',
    optional: true,
    kind: 'count',
    default: String(4 << 20),
    description: 'shared-memory staging per rank and group, in bytes (at least 65536, rounded down to 64)',
  },
  {
    name: 'DTRAIN_HIERARCHICAL',
    filledBy: 'user',
    optional: true,
    kind: { oneOf: ['0', '1'] },
    default: '1',
    description:
      '`0`: groups that span nodes run every op on the flat TCP ring (a measuring aid); ranks that disagree are ' +
      'refused at init',
  },
  {
    name: 'DTRAIN_SIMD',
    filledBy: 'user',
    optional: true,
    kind: { oneOf: ['auto', 'scalar', 'avx2', 'avx512'] },
    default: 'auto',
    description:
      "the SIMD path of the reductions, optimizer and layer kernels (auto: the CPU's widest; a family built " +
      "narrower caps it; a path the CPU lacks: the reductions take the CPU's best, the others fail)",
  },
  {
    name: 'DTRAIN_FLIGHT_RECORDER',
    filledBy: 'agent',
    launchFact: 'flightRecorder',
    kind: 'text',
    description:
      "the file in the agent's 0700 folder where the addon records the rank's last collectives (unset: in memory)",
  },
  {
    name: 'NODE_OPTIONS',
    filledBy: 'agent',
    optional: true,
    launchFact: 'nodeOptions',
    kind: 'text',
    description:
      'Node workers only (the program is `node`): yours (config env or shell) plus a preload that listens for ' +
      'SIGUSR1, so a SIGUSR1 dtrain forwards never opens the inspector',
  },
  {
    name: 'DTRAIN_STACK_FILE',
    filledBy: 'agent',
    launchFact: 'stackFile',
    kind: 'text',
    description: "where the rank writes its stack when the agent sends SIGURG (Python's faulthandler, Node's init())",
  },
  {
    name: 'PYTHONPATH',
    filledBy: 'agent',
    optional: true,
    launchFact: 'pythonPath',
    kind: 'text',
    description:
      "the agent's sitecustomize folder (it registers the stack signal, then loads the one it shadows) before yours",
  },
];

/**
 * A no-op SIGUSR1 listener preloaded into Node workers: without one, Node answers SIGUSR1 by opening its
 * inspector on 127.0.0.1:9229 (Node 20 has no --disable-sigusr1). NODE_OPTIONS splits on spaces and
 * strips double quotes, hence neither appears here.
 */
export const SIGUSR1_GUARD = "--import=data:text/javascript,process.on('SIGUSR1',()=>{})";

/** Whether `command` runs Node itself (`node`, `nodejs` or this Node), not a script that may start it. */
export function isNodeCommand(command: readonly string[]): boolean {
  const program = command[0] ?? '';
  const base = program.slice(program.lastIndexOf('/') + 1);
  return base === 'node' || base === 'nodejs' || program === process.execPath;
}

/** NODE_OPTIONS for a worker running `command`: `inherited` plus the guard for Node, undefined otherwise. */
export function nodeOptionsFor(command: readonly string[], inherited: string | undefined): string | undefined {
  if (!isNodeCommand(command)) return undefined;
  if (inherited?.split(/\s+/).includes(SIGUSR1_GUARD)) return inherited;
  return inherited?.trim() ? `${inherited} ${SIGUSR1_GUARD}` : SIGUSR1_GUARD;
}

/**
 * V8 flags a Node worker starts with unless the config's node_single_threaded is false: V8 compiles optimised
 * code and collects garbage on the rank's own thread instead of on helper threads beside it, so a rank uses
 * one core, as torchrun's OMP_NUM_THREADS=1 does for PyTorch. Node refuses V8 flags in NODE_OPTIONS, so they
 * go on the command line right after the program: flags the user wrote come later and win.
 */
export const NODE_WORKER_V8_FLAGS: readonly string[] = ['--single-threaded'];

/**
 * Node options that take the next word as their value (`-r ./setup.js`). One missing here ends the scan at
 * its value, so a flag the user wrote later is added again, which V8 accepts.
 */
const NODE_VALUE_OPTIONS: ReadonlySet<string> = new Set([
  ...['-e', '--eval', '-p', '--print', '-r', '--require', '--import', '--loader', '--experimental-loader'],
  ...['-C', '--conditions', '--input-type', '--title', '--inspect-port', '--env-file', '--disable-warning'],
]);

/** Node's own options in a Node command: the words before the script (or `--`), less the options' values. */
function nodeOwnOptions(command: readonly string[]): string[] {
  const own: string[] = [];
  for (let i = 1; i < command.length; i++) {
    const word = command[i];
    if (word === '--' || word === '-' || !word.startsWith('-')) break;
    own.push(word);
    if (NODE_VALUE_OPTIONS.has(word)) i++;
  }
  return own;
}

/** A worker's command: a Node one with NODE_WORKER_V8_FLAGS after the program when `singleThreaded`. */
export function workerCommand(command: readonly string[], singleThreaded: boolean): string[] {
  if (!singleThreaded || !isNodeCommand(command)) return [...command];
  const own = nodeOwnOptions(command);
  const missing = NODE_WORKER_V8_FLAGS.filter((f) => !own.includes(f));
  return [...command.slice(0, 1), ...missing, ...command.slice(1)];
}

const byName = new Map(WORKER_ENV.map((v) => [v.name, v]));

/** The row of a contract variable; throws for a name outside the contract (a typo in dtrain itself). */
export function workerEnvVar(name: string): WorkerEnvVar {
  const v = byName.get(name);
  if (!v) throw new Error(`${name} is not in the worker environment table`);
  return v;
}

/**
 * What is wrong with a value a config's env gives a `user` row, by the row's kind, a count or one of some words
 * (undefined: nothing, or not a user row). Empty is unset. Never quotes the value: it may be a secret.
 */
export function userEnvValueProblem(name: string, value: string): string | undefined {
  const v = byName.get(name);
  if (v?.filledBy !== 'user' || value === '') return undefined;
  const kind = v.kind;
  if (kind === 'count') return /^\d+$/.test(value) ? undefined : 'must be a non-negative integer';
  if (kind === 'positive') return /^[1-9]\d*$/.test(value) ? undefined : 'must be an integer of at least 1';
  if (typeof kind === 'object' && !kind.oneOf.includes(value)) return `must be one of ${kind.oneOf.join(', ')}`;
  return undefined;
}

/** Variables only dtrain sets: a config's env may not name them (the optional ones it may). */
export const RESERVED_WORKER_ENV: ReadonlySet<string> = new Set(
  WORKER_ENV.filter((v) => !v.optional).map((v) => v.name),
);

/**
 * A worker's environment at launch: the plan's, with the `agent` rows filled from what the launch knows,
 * and the `plan or agent` rows too where the plan left them AUTO (or out): a fixed master port stays.
 */
export function fillAtLaunch(planned: Readonly<Record<string, string>>, facts: LaunchFacts): Record<string, string> {
  const env = { ...planned };
  for (const v of WORKER_ENV) {
    const fact = v.launchFact && facts[v.launchFact];
    if (fact === undefined) continue;
    if (v.filledBy === 'agent' || env[v.name] === undefined || env[v.name] === AUTO) env[v.name] = String(fact);
  }
  return env;
}
