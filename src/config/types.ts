/**
 * The config's TypeScript types. `RawConfig` is the YAML as written (after schema defaults); `JobConfig`
 * is what loadConfig returns: durations in milliseconds, entrypoint split, nodes resolved from
 * nodes/hostfile/include/exclude, data size resolved. Both keep the schema's key names, and the
 * assertions at the bottom make a key added to one but not the other a compile error.
 */
import type { ConfigProblem } from '../util/errors.js';
import type { configSchema } from './schema.js';

export type Schedule = '1f1b' | 'gpipe' | 'interleaved-1f1b';
export type Backend = 'auto' | 'cpu' | 'nccl';
export type Duration = number | string;
export type CheckpointSignal = 'SIGUSR1' | 'SIGUSR2' | 'SIGHUP';

export interface RawNode {
  host: string;
  slots?: number;
  user?: string;
  port?: number;
  spare?: boolean;
}

export interface RawParallelism {
  data: number | 'auto';
  tensor: number;
  pipeline: number;
  zero_stage: 0 | 1 | 2;
  microbatches: number;
  schedule: Schedule;
  virtual_stages: number;
}

export interface RawSsh {
  user?: string;
  port?: number;
  identity_file?: string;
  known_hosts?: string;
  strict_host_key_checking: 'yes' | 'accept-new' | 'no';
  connect_timeout: Duration;
  concurrency: number;
  remote_dtrain?: string;
  forward_env: string[];
  prelude?: string;
}

export interface SchedulerConfig {
  kind: 'slurm' | 'pbs';
  nodes?: number;
  partition?: string;
  account?: string;
  qos?: string;
  time?: string;
  gpus_per_node?: number;
  cpus_per_task?: number;
  mem?: string;
  signal?: string;
  /** Slurm: --requeue, and dtrain requeues the job itself after the save at the warning signal */
  requeue?: boolean;
  extra?: string[];
}

export interface RawElastic {
  min_nodes: number;
  max_nodes?: number;
  rejoin: Duration;
  max_losses_per_node: number;
  data_divides?: number;
}

/** Elastic membership, normalised: durations in milliseconds, max_nodes decided, the spares resolved. */
export interface ElasticConfig extends Omit<RawElastic, 'rejoin' | 'max_nodes'> {
  max_nodes: number;
  rejoin: number;
  /** the nodes marked spare, in list order; node ids nodes.length, nodes.length + 1, ... (plan/elastic.ts) */
  spares: NodeConfig[];
}

export interface ModelConfig {
  params: number;
  layers?: number;
  hidden?: number;
  heads?: number;
  seq_len?: number;
  micro_batch_size: number;
  dtype: 'bf16' | 'fp16' | 'fp32';
  gpu_memory_gb?: number;
}

/** The document as written, with schema defaults applied (what ajv validated). */
export interface RawConfig {
  name?: string;
  entrypoint: string | string[];
  workdir?: string;
  env: Record<string, string | number | boolean>;
  secret_env: string[];
  env_file?: string;
  nodes?: RawNode[];
  hostfile?: string;
  include?: string;
  exclude?: string;
  nproc_per_node: number | 'auto';
  parallelism: RawParallelism;
  backend: Backend;
  master: { addr: string; port: number | 'auto' };
  rendezvous: { addr: string; port: number | 'auto'; timeout: Duration };
  heartbeat: { interval: Duration; timeout: Duration };
  collective_timeout: Duration;
  /** a duration, or 'off' (Duration is any string here; the schema holds the grammar) */
  hang_timeout: Duration;
  restarts: { max: number; backoff: Duration };
  shutdown_grace: Duration;
  checkpoint_signal: CheckpointSignal;
  node_single_threaded: boolean;
  elastic?: RawElastic;
  checkpoint?: { dir?: string };
  logs: { dir: string; tee: boolean; ranks: 'all' | number[] };
  monitor?: MonitorConfig;
  ssh: RawSsh;
  scheduler?: SchedulerConfig;
  model?: ModelConfig;
}

export interface MonitorConfig {
  port: number | 'auto';
  host: string;
  /** absolute once normalised */
  token_file?: string;
}

/** A node after resolution: how many processes it runs and which devices they see. */
export interface NodeConfig {
  host: string;
  /** slots from nodes/hostfile after include/exclude (absent when unknown) */
  slots?: number;
  /** processes this node runs */
  nproc: number;
  /** true when nproc is a guess (nproc_per_node auto, slots unknown): the launch finds the real count */
  nproc_assumed?: boolean;
  user?: string;
  port?: number;
  /** the slot list selected by include/exclude, as CUDA_VISIBLE_DEVICES */
  cuda_visible_devices?: string;
  /** the controller's own machine: started without SSH */
  local: boolean;
  /** a placeholder for a node the batch scheduler allocates (no host known before the job starts) */
  from_allocation?: boolean;
  /** listed with spare: true; such nodes are in elastic.spares, never in JobConfig.nodes */
  spare?: boolean;
}

export interface ParallelismConfig extends Omit<RawParallelism, 'data'> {
  data: number;
}

/** A validated, normalised config: what loadConfig and configFromArgs return. Durations are milliseconds. */
export interface JobConfig {
  name: string;
  /** argv, split like a shell would */
  entrypoint: string[];
  /** absolute */
  workdir: string;
  /** env_file entries, then env (env wins), all as strings */
  env: Record<string, string>;
  /** names whose values are secret beyond util/secret-names.ts's token rule */
  secret_env: string[];
  /** absolute path, when given */
  env_file?: string;
  nodes: NodeConfig[];
  /** absolute path, when given */
  hostfile?: string;
  include?: string;
  exclude?: string;
  nproc_per_node: number | 'auto';
  parallelism: ParallelismConfig;
  backend: Backend;
  master: { addr: string; port: number | 'auto' };
  rendezvous: { addr: string; port: number | 'auto'; timeout: number };
  heartbeat: { interval: number; timeout: number };
  collective_timeout: number;
  /** ms; null: off */
  hang_timeout: number | null;
  restarts: { max: number; backoff: number };
  shutdown_grace: number;
  checkpoint_signal: CheckpointSignal;
  /** Node workers start with runtime/worker-env-table.ts's NODE_WORKER_V8_FLAGS */
  node_single_threaded: boolean;
  /** absent: a lost node ends the attempt */
  elastic?: ElasticConfig;
  /** dir absolute (relative paths joined to workdir) */
  checkpoint?: { dir?: string };
  logs: { dir: string; tee: boolean; ranks: 'all' | number[] };
  /** absent: no monitor (the control socket of `dtrain status` is always there) */
  monitor?: MonitorConfig;
  ssh: Omit<RawSsh, 'connect_timeout'> & { connect_timeout: number };
  scheduler?: SchedulerConfig;
  model?: ModelConfig;
}

/** What loadConfig/configFromArgs give: the config, doubtful-but-legal findings, and where it came from. */
export interface LoadedConfig {
  config: JobConfig;
  warnings: ConfigProblem[];
  /** the config file as given (or "<command line>") */
  file: string;
  /** the config file's absolute path; absent for the command line */
  path?: string;
  /** the document as written, --set applied, without defaults: what saveConfig writes */
  raw: Record<string, unknown>;
}

// ---- compile-time agreement between the schema and the types above ----
type Props<S> = S extends { properties: infer P } ? P : never;
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never] ? true : false;
type S = typeof configSchema.properties;

const schemaMatchesTypes: [
  SameKeys<S, RawConfig>,
  SameKeys<S, JobConfig>,
  SameKeys<Props<S['nodes']['items']>, RawNode>,
  SameKeys<Props<S['parallelism']>, RawParallelism>,
  SameKeys<Props<S['master']>, RawConfig['master']>,
  SameKeys<Props<S['rendezvous']>, RawConfig['rendezvous']>,
  SameKeys<Props<S['heartbeat']>, RawConfig['heartbeat']>,
  SameKeys<Props<S['restarts']>, RawConfig['restarts']>,
  SameKeys<Props<S['logs']>, RawConfig['logs']>,
  SameKeys<Props<S['monitor']>, MonitorConfig>,
  SameKeys<Props<S['ssh']>, RawSsh>,
  SameKeys<Props<S['scheduler']>, SchedulerConfig>,
  SameKeys<Props<S['model']>, ModelConfig>,
  SameKeys<Props<S['elastic']>, RawElastic>,
  SameKeys<Props<S['checkpoint']>, NonNullable<RawConfig['checkpoint']>>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];
void schemaMatchesTypes;

// enums must agree too
type Enum<X> = X extends { enum: readonly (infer E)[] } ? E : never;
type SameUnion<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const enumsMatchTypes: [
  SameUnion<Enum<S['parallelism']['properties']['schedule']>, Schedule>,
  SameUnion<Enum<S['parallelism']['properties']['zero_stage']>, RawParallelism['zero_stage']>,
  SameUnion<Enum<S['backend']>, Backend>,
  SameUnion<Enum<S['checkpoint_signal']>, CheckpointSignal>,
  SameUnion<Enum<S['ssh']['properties']['strict_host_key_checking']>, RawSsh['strict_host_key_checking']>,
  SameUnion<Enum<S['scheduler']['properties']['kind']>, SchedulerConfig['kind']>,
  SameUnion<Enum<S['model']['properties']['dtype']>, ModelConfig['dtype']>,
] = [true, true, true, true, true, true, true];
void enumsMatchTypes;
