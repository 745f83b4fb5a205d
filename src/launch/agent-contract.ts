/**
 * The agent ↔ controller contract: the one place it is written down. Local, SSH, Slurm and join all
 * start the one agent (src/launch/agent.ts) and talk to it only through what is described here.
 * test/integration/launch/agent-stdio.test.ts holds it to this contract at the protocol level (stdin,
 * stdout, store), so any other agent could be held to the same expectations.
 *
 * ## Starting an agent
 * In-process (the controller's own node): `runAgent(spec, io)` from src/launch/agent-process.ts, or the
 * `NodeAgent` class directly with an in-process link (what the local launcher does).
 * As a process: `dtrain agent --stdio`. Its stdin, one JSON document per line:
 *   1. optionally `{"type":"hello","version":"<controller version>","spec_within_ms":<n>}` (ControllerHello:
 *      without the spec `n` ms later the agent gives up, exit 3); the agent answers on stdout with
 *      `{"type":"hello","version":"<agent version>","hostname":"<os hostname>","pid":<pid>}` (a
 *      version mismatch is the controller's to refuse, exit 3). Over a channel that is not encrypted
 *      (srun) the hello also carries `"kx":"<X25519 public key>"` and so does the answer
 *      (job-key-seal.ts);
 *   2. exactly one `AgentSpec` (`{"type":"spec", ...}`, below): its node's part of the plan, the job
 *      secret, the store address. Secrets travel here and nowhere else (never argv, never worker env).
 *      After a `kx` exchange the spec comes sealed: `{"type":"sealed_spec","sealed":{iv, tag, data}}`,
 *      `data` the spec's JSON under AES-256-GCM (job-key-seal.ts), so neither the key nor the env is in clear.
 *   After that stdin carries nothing; its EOF means "controller gone": the agent kills all its workers'
 *   process trees (SIGKILL, no grace) and exits 1.
 * Its stdout (after the hello): NDJSON `OutputRecord`s, the workers' output as whole lines, batched.
 * Its stderr: the agent's own diagnostics, plain text (the controller prefixes them with the host).
 * Exit code: 0 after an `exit` command, 1 when the controller vanished, 3 when it could not start
 * (bad spec, store unreachable or authentication refused: one line on stderr says which).
 *
 * ## Control: through the store (one TCP connection per agent, authenticated with the job key)
 * Keys under `ctl/` are the controller's and agents'; workers only see `a<attempt>/...` through their
 * proxy, so they can never collide. Values are JSON unless noted.
 *   ctl/cmd/<agent>/<seq>   controller → that agent, seq = 0, 1, 2, ... in order:
 *                           `ControllerCommand`. The agent reads them with blocking GETs, one after another.
 *   ctl/event/<agent>/<seq> that agent → controller, seq = 0, 1, 2, ...: `AgentEvent`, read by
 *                           the controller in order, one sequence per node. (One shared sequence, a counter
 *                           ADDed and then the slot SET, let a node lost between the two leave a hole that
 *                           stalled every other node's events, and so the whole job.)
 *   ctl/a<k>/master_port    node 0's agent, attempt k, when master.port is auto: the free port it picked
 *                           (decimal text); the other agents GET it (blocking) before starting workers.
 *   ctl/hb/<agent>          counter each agent ADDs 1 to every heartbeat interval; the controller declares
 *                           a node lost when it has not moved for `heartbeat.timeout`.
 * `sample` events (RankSample) travel in the same per-node event sequence; they are state, not history, so
 * the controller DELETEs each sample's key once read (the store would otherwise grow by one key a second).
 * `<agent>` in these keys is `agentId(node_rank, incarnation)`: the spec's `node.node_rank`, followed by
 * `.<incarnation>` for an agent started again on a node that was lost (`AgentSpec.incarnation`). The
 * node_rank in every event is the spec's: in an elastic job the node's stable id (plan/elastic.ts), never
 * renumbered; its rank within an attempt comes with that attempt's `start` (`AttemptAssignment`), and
 * ctl/a<k>/master_port is published by the attempt's node 0. A spare's agent, or a rejoining node's, is
 * started only when it is needed, with a spec whose `ranks` is empty.
 * An agent handles commands strictly in order; `start` for attempt k+1 only comes after every worker of
 * attempt k has been reported by an `exit` event.
 *
 * ## Workers
 * Each worker runs under `dtrain-exec` (addon/src/process/exec-wrapper.c), in its own process group,
 * with its RankPlan env plus the rows the agent fills at launch (runtime/worker-env-table.ts, fillAtLaunch:
 * DTRAIN_STORE, the agent's proxy socket with attempt-prefixed keys, among them).
 * Per-rank logs are written by the agent on its node: <logs.dir>/<run_id>/attempt_<k>/rank_<N>.{out,err}.
 * Each worker also gets DTRAIN_STACK_FILE (a file in the agent's private 0700 folder) and, first on its
 * PYTHONPATH, the agent's sitecustomize: the agent asks a rank for its stack with SIGURG (stacks.ts).
 *
 * ## Diagnosis: stacks and flight recorders
 * `gather` asks for every rank of the attempt at once: the agent signals each live rank for its stack,
 * waits up to `wait_ms` for the answers (gdb instead when `native`), reads each rank's flight recorder
 * (also of ranks that have exited), and answers with one `gathered` event carrying the same `id`. Nothing
 * is stopped or killed: the controller gathers before it signals any rank to stop (hang diagnosis).
 * With `hang_timeout_ms` in the spec, the agent watches its ranks (a collective completed in the flight
 * recorder, output, CPU time from /proc/<pid>/stat of the rank and its descendants while the recorder
 * shows it inside no op) and emits a `progress` event, at most one per hang_timeout / 4, when one of them
 * made progress since the last. (A reported step, in the `sample` events, is progress too.)
 *
 * ## Samples
 * While an attempt's workers run, the agent sends one `sample` event every SAMPLE_INTERVAL_MS with all its
 * ranks: each worker's own pid (never its shepherd's), CPU and resident memory from /proc/<pid>/stat and
 * statm, how long ago it last wrote a line, and its progress: what it appended to DTRAIN_PROGRESS_FILE
 * (one JSON object a line, ProgressRecord; `dist.report()` writes it for Node workers), and the collective
 * its flight recorder shows it in (RankCollective).
 */
import type { NodePlan, RankPlan } from '../plan/types.js';

/** Bumped when a field changes meaning; the controller and agent versions must match anyway. */
export const agentContractVersion = 1;

/** The controller's first line on an agent's stdin. */
export interface ControllerHello {
  type: 'hello';
  version: string;
  /** the controller's X25519 public key, over a channel that is not encrypted (job-key-seal.ts) */
  kx?: string;
  /**
   * The agent gives up (exit 3, one line on stderr) when its spec has not come this long after the hello: a
   * controller killed or cut off between the two (its host gone, the link cut) would otherwise leave the
   * agent waiting on a connection that nothing closes. Absent: no limit.
   */
  spec_within_ms?: number;
}

/**
 * The controller's hello line. The spec follows within `helloTimeoutMs` (how long the controller waits for
 * the agents' hellos: srun sends every spec once all have answered, SSH right behind the hello) plus a
 * minute for the sealing and the link.
 */
export function controllerHelloLine(version: string, helloTimeoutMs: number, kx?: string): string {
  const hello: ControllerHello = { type: 'hello', version, ...(kx ? { kx } : {}) };
  hello.spec_within_ms = helloTimeoutMs + 60_000;
  return JSON.stringify(hello) + '\n';
}

/** The agent's first line on stdout, its answer to the controller's hello. */
export interface AgentHello {
  type: 'hello';
  version: string;
  hostname?: string;
  pid?: number;
  /** the agent's X25519 public key, over a channel that is not encrypted (job-key-seal.ts) */
  kx?: string;
}

/** How an agent process ended, as its spawner saw it. */
export interface AgentExit {
  code: number | null;
  signal: string | null;
}

/** Reads the agent's first stdout line: its hello, or the reason (one line, for a StartError) it is not one. */
export function parseAgentHello(line: string): { hello: AgentHello } | { error: string } {
  const quoted = JSON.stringify(line.slice(0, 80));
  let msg: Partial<AgentHello>;
  try {
    msg = JSON.parse(line) as Partial<AgentHello>;
  } catch {
    return { error: `the agent did not speak dtrain's protocol (first line: ${quoted})` };
  }
  if (msg?.type !== 'hello' || typeof msg.version !== 'string')
    return { error: `the agent sent ${quoted} instead of its version` };
  return { hello: msg as AgentHello };
}

export type StoreAddress =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string }
  /** in-process agents only: the caller hands the agent a connected store client */
  | { kind: 'stream' };

/** What an agent needs to run its node's share of the job. Everything else comes from the store. */
export interface AgentSpec {
  type: 'spec';
  run_id: string;
  /** this agent's node */
  node: NodePlan;
  /** the ranks this node runs, env contract filled by the plan (MASTER_PORT may still say "auto") */
  ranks: RankPlan[];
  world_size: number;
  nnodes: number;
  /** absolute, on this node */
  workdir: string;
  /** node 0 picks a free port when "auto" and publishes it at ctl/a<k>/master_port */
  master: { addr: string; port: number | 'auto' };
  store: StoreAddress;
  /** the per-job secret, base64 (32 bytes); used for store authentication only */
  job_key: string;
  restarts_max: number;
  heartbeat_interval_ms: number;
  /**
   * heartbeat.timeout: the agent ends its node (kills the workers, exits 1) when none of its heartbeats has
   * been answered for this long, the controller being gone without closing anything (a network cut, a
   * frozen or powered-off host). Absent in specs from older controllers: max(10 s, 6 intervals).
   */
  heartbeat_timeout_ms?: number;
  /**
   * rendezvous.timeout: how long the agent keeps trying, with backoff, when the store turns its connection
   * away before it authenticated (store/admission.ts). Absent in specs from older controllers: one try.
   */
  rendezvous_timeout_ms?: number;
  /** hang_timeout: the agent reports its ranks' progress (`progress` events); absent: off */
  hang_timeout_ms?: number;
  /** absolute on this node; the agent writes rank_<N>.{out,err} under <dir>/<run_id>/attempt_<k>/ */
  logs: { dir: string; ranks: 'all' | number[]; tee: boolean };
  /**
   * checkpoint.dir must be one folder shared by every node: the controller wrote `token` to `path` (a
   * file in it); an agent that does not read it back there refuses to start workers (an `error` event).
   */
  checkpoint_marker?: { path: string; token: string };
  /**
   * Elastic jobs: the node's agent started again (a lost node rejoining) is its next incarnation, 1, 2, ...
   * (absent: 0). Its control keys are named `<node_rank>.<incarnation>` (agentId), so an earlier agent of
   * the same node, cut off but still running, can never read the new one's commands or pass for it.
   */
  incarnation?: number;
}

/**
 * What makes a stdin message not an AgentSpec the agent can start from (one line), or undefined. Only the
 * shape the agent reads before it can report anything: a controller's spec always has it; anything else
 * (another program on the agent's stdin) must be a StartError, not a TypeError deep inside the agent.
 */
export function agentSpecProblem(msg: Record<string, unknown>): string | undefined {
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  const need: [keyof AgentSpec, (v: unknown) => boolean, string][] = [
    ['run_id', (v) => typeof v === 'string', 'a string'],
    ['node', isObject, 'an object'],
    ['ranks', (v) => Array.isArray(v) && v.every(isObject), 'a list of objects'],
    ['world_size', Number.isInteger, 'an integer'],
    ['nnodes', Number.isInteger, 'an integer'],
    ['workdir', (v) => typeof v === 'string', 'a string'],
    ['master', isObject, 'an object'],
    ['store', (v) => isObject(v) && typeof (v as { kind?: unknown }).kind === 'string', 'an object with a kind'],
    ['job_key', (v) => typeof v === 'string', 'a string'],
    ['restarts_max', Number.isInteger, 'an integer'],
    ['heartbeat_interval_ms', (v) => typeof v === 'number' && v > 0, 'a positive number'],
    ['logs', isObject, 'an object'],
  ];
  for (const [key, ok, what] of need) if (!ok(msg[key])) return `its ${key} is not ${what}`;
  return undefined;
}

export type ForwardedSignal = 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGUSR1' | 'SIGUSR2';

/**
 * Elastic jobs: a node's part of one attempt, carried by its `start` command, because membership changes
 * renumber node ranks and ranks (plan/elastic.ts). The spec's `node.node_rank` stays the node's stable
 * id, which names its control keys (ctl/cmd, ctl/event, ctl/hb) and its events for the whole job; what
 * the attempt needs (node 0 picks and publishes the master port; the ranks' env) is read from here.
 */
export interface AttemptAssignment {
  /** this node's rank in the attempt (0: it runs rank 0 and, master.port auto, picks the port) */
  node_rank: number;
  ranks: RankPlan[];
  world_size: number;
  nnodes: number;
  master: { addr: string; port: number | 'auto' };
}

/** What a `start` says about its attempt beyond the number (absent fields: as a plain restart). */
export interface AttemptStart {
  /** failure restarts so far (TORCHELASTIC_RESTART_COUNT); absent: the attempt number */
  restarts?: number;
  /** the previous attempt's world size (DTRAIN_PREV_WORLD_SIZE); absent: the spec's world, 0 in attempt 0 */
  prev_world_size?: number;
  /** absent: the spec's node rank, ranks and world */
  assignment?: AttemptAssignment;
}

export type ControllerCommand =
  /** start attempt k's workers (DTRAIN_ATTEMPT = k); elastic attempts carry their assignment */
  | ({ type: 'start'; attempt: number } & AttemptStart)
  /** send `signal` to every worker of the attempt, SIGKILL the survivors after grace_ms */
  | { type: 'stop'; attempt: number; signal: ForwardedSignal; grace_ms: number }
  /** SIGKILL every worker (and every descendant) of the attempt now */
  | { type: 'kill'; attempt: number }
  /** forward a signal to every running worker; supervision goes on (e.g. Slurm's USR1 warning) */
  | { type: 'signal'; signal: ForwardedSignal }
  /** every rank's stack and flight recorder, answered by one `gathered` event with this id (see above) */
  | { type: 'gather'; attempt: number; id: number; native: boolean; wait_ms: number }
  /** all workers are gone: close the store connection and exit 0 */
  | { type: 'exit' };

export interface WorkerStart {
  rank: number;
  local_rank: number;
  pid: number;
}

/**
 * Bounds of WorkerExit.stderr_tail. The exit event travels through the store (values up to 64 MiB) and
 * into the failure summary, whatever the worker wrote: 20 lines of at most 4 KiB (plus a short cut note)
 * stay under 100 KiB, and under 600 KiB as JSON even when every byte is a control byte (6 bytes escaped).
 * The per-rank log file keeps every line whole. The native agent (addon/agent/workers.cc) holds the same.
 */
/** What marks the addon's collective timeout in a rank's stderr (hang-report.ts parses the whole line). */
export const COLLECTIVE_TIMEOUT_MARK = 'timed out after ';

export const STDERR_TAIL_LINES = 20;
export const STDERR_TAIL_LINE_BYTES = 4096;

/** How one worker ended. `signal` is a name (SIGSEGV) when killed by one, else null. */
export interface WorkerExit {
  rank: number;
  local_rank: number;
  host: string;
  pid: number;
  exit_code: number | null;
  signal: string | null;
  /** ISO time the agent saw the exit */
  time: string;
  /** the last lines of its stderr: at most STDERR_TAIL_LINES, each cut at STDERR_TAIL_LINE_BYTES */
  stderr_tail: string[];
  /**
   * The last stderr line that carried the addon's collective timeout ("timed out after <ms> ms"), kept apart
   * from the tail so that whatever the rank printed after it (a long traceback, exit handlers) cannot push it
   * out: the controller reads the hang's cause from it. Cut at STDERR_TAIL_LINE_BYTES; absent: none.
   */
  timeout_line?: string;
  /** the contents of TORCHELASTIC_ERROR_FILE when the worker wrote it (parsed JSON, else text) */
  error_file: unknown;
}

/** One rank's part of a `gathered` answer. */
export interface RankDiagnostics {
  rank: number;
  host: string;
  pid: number;
  /** what answered: python (faulthandler), node (the runtime), native (gdb), other (nothing could) */
  language: 'python' | 'node' | 'native' | 'other';
  /** the stack as text (at most 64 KiB), null when none could be captured */
  stack: string | null;
  /** why there is no stack, e.g. `python runs with -I: ...`; null when there is one */
  missing: string | null;
  /** the rank's flight recorder as read by readFlightRecorder, null when there is none */
  recorder: unknown;
  /** why there is no recorder; null when there is one */
  recorder_missing: string | null;
}

/** How often an agent samples its workers (one event per node, all its ranks). */
export const SAMPLE_INTERVAL_MS = 1000;

/** One line of DTRAIN_PROGRESS_FILE, written by the worker after each step. */
export interface ProgressRecord {
  step: number;
  /** the worker's clock when the step ended, seconds (Python's time.time(), Date.now() / 1000) */
  time: number;
  loss?: number;
  /** samples (tokens) this step processed on this rank */
  samples?: number;
  tokens?: number;
  /** seconds of this step spent waiting in collectives (compute = step time minus this) */
  wait_s?: number;
  /** totals since the worker started, per op (dist.report adds them about once a second) */
  collectives?: Record<string, CollectiveTotals>;
}

export interface CollectiveTotals {
  count: number;
  bytes: number;
  seconds: number;
}

/** One rank as its agent last saw it. The `*_s` figures are means over the last PROGRESS_WINDOW steps. */
export interface RankSample {
  rank: number;
  /** the worker's own pid */
  pid: number;
  /** CPU time since the previous sample, percent of one core */
  cpu_percent: number;
  rss_bytes: number;
  /** seconds since its last line of output (since its start when it wrote none) */
  last_output_age_s: number;
  step?: number;
  loss?: number;
  step_s?: number;
  samples_per_s?: number;
  tokens_per_s?: number;
  compute_s?: number;
  /** the last totals the worker reported (ProgressRecord.collectives) */
  collectives?: Record<string, CollectiveTotals>;
  /** from its flight recorder: the collective it is in, else the last it left (absent: no recorder, no op) */
  collective?: RankCollective;
}

/**
 * One collective of a rank's flight recorder, as `dtrain status` shows it: the oldest op the rank is inside
 * (enqueued or started), else the one it left last (completed, or failed where it stopped). since_s counts
 * from the moment the op reached its state, on the rank's own host.
 */
export interface RankCollective {
  group: string;
  op: string;
  seq: number;
  state: 'enqueued' | 'started' | 'completed' | 'failed';
  since_s: number;
}

/** Steps the per-rank figures (and straggler detection) average over. */
export const PROGRESS_WINDOW = 20;

export type AgentEvent =
  | { type: 'started'; node_rank: number; attempt: number; master_port: number; workers: WorkerStart[] }
  /** every SAMPLE_INTERVAL_MS while the attempt's workers run */
  | { type: 'sample'; node_rank: number; attempt: number; ranks: RankSample[] }
  | ({ type: 'exit'; node_rank: number; attempt: number } & WorkerExit)
  | { type: 'gathered'; node_rank: number; attempt: number; id: number; ranks: RankDiagnostics[] }
  /** hang_timeout: these ranks made progress since the agent's last progress event */
  | { type: 'progress'; node_rank: number; attempt: number; ranks: number[] }
  /** the agent could not do what was asked (spawn failed, store lost); the controller fails the job */
  | { type: 'error'; node_rank: number; attempt: number; message: string };

/** One line of the agent's stdout: a batch of whole lines of one worker stream, without newlines. */
export interface OutputRecord {
  type: 'out';
  rank: number;
  stream: 'stdout' | 'stderr';
  lines: string[];
}

/** Names one agent's control keys: its node id, with `.<incarnation>` from the node's first restart on. */
export type AgentId = number | `${number}.${number}`;

export function agentId(nodeRank: number, incarnation = 0): AgentId {
  return incarnation ? `${nodeRank}.${incarnation}` : nodeRank;
}

export const controlKeys = {
  command: (agent: AgentId, seq: number) => `ctl/cmd/${agent}/${seq}`,
  event: (agent: AgentId, seq: number) => `ctl/event/${agent}/${seq}`,
  masterPort: (attempt: number) => `ctl/a${attempt}/master_port`,
  heartbeat: (agent: AgentId) => `ctl/hb/${agent}`,
} as const;
