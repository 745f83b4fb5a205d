/**
 * `dtrain launch`: from a plan to running, supervised workers. Starts the store, one agent per node
 * (in-process for this machine's nodes), the supervisor, signal handling and progress, and turns the
 * outcome into the summary document or a typed error (exit 1, 3, 130, 143) for the single exit point.
 */
import { randomBytes } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { JobConfig } from '../config/types.js';
import type { Plan } from '../plan/types.js';
import { StoreServer } from '../store/index.js';
import { InterruptedError, JobFailedError, StartError } from '../util/errors.js';
import type { AgentEvent, AgentSpec } from './agent-contract.js';
import { ConsoleSink } from './console.js';
import type { OutputSink } from './line-targets.js';
import { LocalNode } from './local-node.js';
import { sighupIgnoredAtStart } from './nohup.js';
import { describeDecision, needsProbe, resolveJobBackend } from './backend.js';
import type { StoreControl } from './store-node.js';
import { checkFixedPort } from './ports.js';
import { createProgress } from './progress.js';
import { renderFailure, type LaunchSummary } from './summary.js';
import { Supervisor, type NodeHandle } from './supervisor.js';

export interface LaunchRequest {
  config: JobConfig;
  plan: Plan;
  json: boolean;
  out?: Writable & { isTTY?: boolean };
  err?: Writable & { isTTY?: boolean };
  /**
   * Starts agents for nodes that are not this machine (SSH, Slurm). Absent: such nodes are an error.
   * Each returned handle must feed its agent's events to `onEvent`.
   */
  remote?: RemoteSpawner;
  /**
   * A store already listening, with its job key (join mode: the agents registered with it before the
   * plan existed). launchJob uses it instead of starting one, and closes it at the end like its own.
   */
  store?: { server: StoreServer; jobKey: Buffer };
  /**
   * How remote agents reach the store: through their SSH connection's forward (the store then listens on
   * loopback only) or by dialling the controller (srun agents). Default: direct.
   */
  storeReach?: 'forwarded' | 'direct';
}

/** Where the store listens: rendezvous.addr when set, else only as widely as the job's agents need. */
export function storeBindHost(config: JobConfig, allLocal: boolean, reach: 'forwarded' | 'direct'): string {
  if (config.rendezvous.addr !== 'auto') return config.rendezvous.addr;
  return allLocal || reach === 'forwarded' ? '127.0.0.1' : '0.0.0.0';
}

/**
 * A spawner starts `dtrain agent --stdio` on each node, sends it its spec, relays its stdout with
 * `relayRecords(stdout, console)` and returns `control.handle(node_rank, host, release)` for each;
 * the StoreControl does the rest (commands, events, heartbeats). It calls `control.lost` hooks itself
 * through heartbeats; a spawner that learns of a dead connection sooner calls `onLost`.
 */
export type RemoteSpawner = (ctx: {
  specs: AgentSpec[];
  store: StoreServer;
  jobKey: Buffer;
  control: StoreControl;
  console: OutputSink;
  onLost: (nodeRank: number, why: string) => void;
}) => Promise<NodeHandle[]>;

const handledSignals = ['SIGINT', 'SIGTERM', 'SIGUSR1', 'SIGUSR2', 'SIGHUP'] as const;

export function newRunId(name: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return `${name}-${t}-${randomBytes(3).toString('hex')}`;
}

export async function launchJob(req: LaunchRequest): Promise<LaunchSummary> {
  const { config, plan } = req;
  const out = req.out ?? process.stdout;
  const err = req.err ?? process.stderr;
  const runId = newRunId(config.name);
  const jobKey = req.store?.jobKey ?? randomBytes(32);
  const allLocal = plan.nodes.every((n) => n.local);
  const logsRoot = isAbsolute(config.logs.dir) ? config.logs.dir : resolve(config.workdir, config.logs.dir);
  const masterAddr = config.master.addr !== 'auto' ? config.master.addr : allLocal ? '127.0.0.1' : plan.nodes[0].host;
  if (typeof config.master.port === 'number' && plan.nodes[0]?.local)
    await checkFixedPort(config.master.port, 'master.port');

  const store =
    req.store?.server ??
    (await StoreServer.start({
      host: storeBindHost(config, allLocal, req.storeReach ?? 'direct'),
      port: config.rendezvous.port === 'auto' ? 0 : config.rendezvous.port,
      jobKey,
    }));
  const hosts = new Set(plan.nodes.map((n) => n.host));
  const console = new ConsoleSink({
    out: req.json ? err : out,
    err,
    hostOf: hosts.size > 1 ? (rank) => plan.ranks[rank]?.host : undefined,
  });
  const progress = await createProgress(err, false);
  const specs: AgentSpec[] = plan.nodes.map((node) => ({
    type: 'spec',
    run_id: runId,
    node,
    ranks: plan.ranks.filter((r) => r.node_rank === node.node_rank),
    world_size: plan.world_size,
    nnodes: plan.nodes.length,
    workdir: config.workdir,
    master: { addr: masterAddr, port: config.master.port },
    store: { kind: 'tcp', host: store.localHost, port: store.port },
    job_key: jobKey.toString('base64'),
    restarts_max: config.restarts.max,
    heartbeat_interval_ms: config.heartbeat.interval,
    heartbeat_timeout_ms: config.heartbeat.timeout,
    rendezvous_timeout_ms: config.rendezvous.timeout,
    logs: { dir: logsRoot, ranks: config.logs.ranks, tee: config.logs.tee },
  }));

  let supervisor: Supervisor | null = null;
  // What agents and spawners report before the supervisor exists is handed to it once it does.
  const early: ((s: Supervisor) => void)[] = [];
  const onEvent = (ev: AgentEvent) => (supervisor ? supervisor.onEvent(ev) : early.push((s) => s.onEvent(ev)));
  const nodes: NodeHandle[] = [];
  const onSignal = (sig: NodeJS.Signals) => supervisor?.signal(sig);
  // Under nohup a hangup is not for the job: SIGHUP is not forwarded (main.ts keeps ignoring it).
  const signals = handledSignals.filter((s) => s !== 'SIGHUP' || !sighupIgnoredAtStart());
  for (const s of signals) process.on(s, onSignal);
  let control: StoreControl | null = null;
  // A node lost before the backend decision never reports its GPU probe: stop waiting for it then.
  let lostWhileStarting: (err: Error) => void = () => {};
  const lostBeforeDecision = new Promise<never>((_, reject) => (lostWhileStarting = reject));
  lostBeforeDecision.catch(() => {});
  const onLost = (n: number, why: string) => {
    if (supervisor) return supervisor.nodeLost(n, why);
    early.push((s) => s.nodeLost(n, why));
    lostWhileStarting(new StartError(`node ${n} was lost while the job started: ${why}`));
  };
  // Measuring aid: DTRAIN_LOCAL_AGENT=child runs this machine's agent as a child process (slower).
  const childAgent = process.env.DTRAIN_LOCAL_AGENT === 'child';
  try {
    const remoteSpecs = specs.filter((s) => !s.node.local);
    if (remoteSpecs.length || childAgent) {
      const { StoreControl } = await import('./store-node.js');
      control = await StoreControl.open(
        { host: store.localHost, port: store.port, jobKey },
        onEvent,
        onLost,
        config.heartbeat,
      );
    }
    for (const spec of specs.filter((s) => s.node.local)) {
      if (childAgent) nodes.push((await import('./store-node.js')).spawnChildAgent(spec, control!, console));
      else
        nodes.push(await LocalNode.create(spec, { host: store.localHost, port: store.port, jobKey }, console, onEvent));
    }
    if (remoteSpecs.length) {
      if (!req.remote)
        throw new StartError(
          `nodes ${remoteSpecs.map((s) => s.node.host).join(', ')} are not this machine and no remote spawner is available`,
        );
      nodes.push(...(await req.remote({ specs: remoteSpecs, store, jobKey, control: control!, console, onLost })));
    }
    nodes.sort((a, b) => a.nodeRank - b.nodeRank);
    if (needsProbe(config.backend)) {
      const decision = await Promise.race([
        resolveJobBackend({
          store: { host: store.localHost, port: store.port, jobKey },
          ...(control ? { client: control.storeClient } : {}),
          nodes: plan.nodes,
          requested: config.backend,
          timeoutMs: config.rendezvous.timeout,
        }),
        lostBeforeDecision,
      ]);
      progress.note(describeDecision(config.backend, decision));
    }
    supervisor = new Supervisor({
      runId,
      worldSize: plan.world_size,
      restartsMax: config.restarts.max,
      backoffMs: config.restarts.backoff,
      shutdownGraceMs: config.shutdown_grace,
      logDir: join(logsRoot, runId),
      nodes,
      ranksPerNode: plan.nodes.map((n) => n.nproc),
      onRunning: (n, world, attempt) => progress.running(n, world, attempt),
      onRestart: (attempt, cause, backoffMs) =>
        progress.note(
          `restarting the group (attempt ${attempt} of ${config.restarts.max}) in ${backoffMs / 1000}s: ` +
            (cause.message ??
              `rank ${cause.rank} ${cause.signal ? `was killed by ${cause.signal}` : `exited with code ${cause.exit_code}`}`),
        ),
      onStopping: (why) => progress.note(`stopping all workers: ${why}`),
    });
    for (const replay of early.splice(0)) replay(supervisor);
    const { outcome, summary } = await supervisor.run();
    progress.stop();
    if (outcome.kind === 'cannot-start') throw new StartError(outcome.message);
    if (outcome.kind === 'interrupted') throw new InterruptedError(outcome.signal, summary);
    if (outcome.kind === 'failed') throw new JobFailedError(renderFailure(summary, config.restarts.max), summary);
    return summary;
  } finally {
    progress.stop();
    for (const s of signals) process.off(s, onSignal);
    if (!supervisor) await Promise.all(nodes.map((n) => n.close()));
    await control?.close();
    await store.close();
  }
}
