/**
 * `dtrain launch`: from a plan to running, supervised workers. Starts the store, one agent per node
 * (in-process for this machine's nodes), the supervisor, signal handling and progress, and turns the
 * outcome into the summary document or a typed error (exit 1, 3, 130, 143) for the single exit point.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { makeDirsSync } from '../util/make-dirs.js';
import type { JobConfig } from '../config/types.js';
import type { Plan } from '../plan/types.js';
import { warningSignal } from '../batch/slurm-script.js';
import { StoreClient, StoreServer } from '../store/index.js';
import { InterruptedError, JobFailedError, StartError } from '../util/errors.js';
import type { AgentEvent, AgentSpec } from './agent-contract.js';
import { ConsoleSink } from './console.js';
import { workdirProblem } from './agent.js';
import { childAgentMode, localNodeSource, type StoreAccess } from './local-node.js';
import type { NodeSource, NodeSourceKind, StartContext } from './node-source.js';
import { sighupIgnoredAtStart } from './nohup.js';
import { describeDecision, needsProbe, resolveJobBackend } from './backend.js';
import type { StoreControl } from './store-node.js';
import { checkFixedPort } from './ports.js';
import { createProgress } from './progress.js';
import { renderFailure, type LaunchSummary } from './summary.js';
import {
  diagnoseFromRecorders,
  HANG_GATHER_MS,
  HANG_STACK_WAIT_MS,
  NATIVE_GATHER_MS,
  NATIVE_STACK_WAIT_MS,
  renderHang,
} from './hang-report.js';
import { jsonReply } from './control-server.js';
import { monitorOptions, RunView } from './run-view.js';
import { within } from '../util/within.js';
import { KILL_WAIT_MS, Supervisor, type NodeHandle, type WarningOptions } from './supervisor.js';
import { nextCommit } from './commit-watch.js';
import type { ElasticMembership } from './membership.js';

export interface LaunchRequest {
  config: JobConfig;
  plan: Plan;
  json: boolean;
  out?: Writable & { isTTY?: boolean };
  err?: Writable & { isTTY?: boolean };
  /**
   * Where the nodes that are not this machine come from (node-source.ts: SSH, Slurm, join); this
   * machine's nodes start through local-node.ts's source. Absent: such nodes are an error. A source with
   * a store of its own (join) lends it: launchJob uses it and closes it at the end like its own.
   */
  source?: NodeSource;
  /**
   * After a successful run, while the store still listens: read what the workers left there (e.g. the
   * bench rows). Workers' keys carry their attempt's prefix (store/proxy.ts).
   */
  onFinished?: (store: StoreAccess) => Promise<void>;
}

/**
 * Where the store listens: rendezvous.addr when set, else only as widely as the job's agents need:
 * loopback when every agent is this machine's or comes through its SSH connection's forward, every
 * address when agents dial the controller (srun). Join mode lends a store of its own.
 */
export function storeBindHost(config: JobConfig, allLocal: boolean, source: NodeSourceKind | undefined): string {
  if (config.rendezvous.addr !== 'auto') return config.rendezvous.addr;
  return allLocal || source === 'ssh' ? '127.0.0.1' : '0.0.0.0';
}

const handledSignals = ['SIGINT', 'SIGTERM', 'SIGUSR1', 'SIGUSR2', 'SIGHUP'] as const;

export function newRunId(name: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return `${name}-${t}-${randomBytes(3).toString('hex')}`;
}

/**
 * The scheduler's warning (scheduler.signal, e.g. USR1@90 → SIGUSR1) starts the save-then-stop sequence;
 * only a signal the controller listens for (handledSignals) can be one.
 */
function warningOptions(
  config: JobConfig,
  onState: (line: string) => void,
  commits: (signal: AbortSignal) => Promise<number>,
): WarningOptions | undefined {
  if (!config.scheduler?.signal) return undefined;
  const signal = warningSignal(config.scheduler.signal);
  if (!(handledSignals as readonly string[]).includes(signal)) return undefined;
  return { signal, checkpointSignal: config.checkpoint_signal, nextCommit: commits, onState };
}

/**
 * checkpoint.dir is checked to be one folder on every node: a marker with a random token, written here and
 * read back by every agent before its workers start. Where this machine cannot write the folder (a
 * controller outside the cluster's file system) there is nothing to compare against and no check.
 */
function writeCheckpointMarker(config: JobConfig, runId: string): { path: string; token: string } | undefined {
  const dir = config.checkpoint?.dir;
  if (dir === undefined) return undefined;
  const marker = { path: join(dir, `.dtrain-marker-${runId}`), token: randomBytes(16).toString('hex') };
  try {
    makeDirsSync(dir);
    writeFileSync(marker.path, marker.token, { mode: 0o600 });
  } catch {
    return undefined;
  }
  return marker;
}

export async function launchJob(req: LaunchRequest): Promise<LaunchSummary> {
  const { config, plan } = req;
  const out = req.out ?? process.stdout;
  const err = req.err ?? process.stderr;
  const runId = newRunId(config.name);
  const lent = req.source?.store;
  const jobKey = lent?.jobKey ?? randomBytes(32);
  const allLocal = plan.nodes.every((n) => n.local) && (config.elastic?.spares ?? []).every((n) => n.local);
  // The run's status folder (below) is under logs.dir, by default under workdir: where this machine runs a node,
  // a workdir missing here is that node's start failure now, before making the folder would make workdir too.
  const localNode = plan.nodes.find((n) => n.local);
  const badWorkdir = localNode && workdirProblem(config.workdir);
  if (badWorkdir) throw new StartError(badWorkdir, localNode.host);
  const logsRoot = isAbsolute(config.logs.dir) ? config.logs.dir : resolve(config.workdir, config.logs.dir);
  const masterAddr = config.master.addr !== 'auto' ? config.master.addr : allLocal ? '127.0.0.1' : plan.nodes[0].host;
  if (typeof config.master.port === 'number' && plan.nodes[0]?.local)
    await checkFixedPort(config.master.port, 'master.port');

  const monitor = config.monitor && monitorOptions(config.monitor);
  const store =
    lent?.server ??
    (await StoreServer.start({
      host: storeBindHost(config, allLocal, req.source?.kind),
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
  const checkpointMarker = writeCheckpointMarker(config, runId);
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
    ...(config.hang_timeout !== null && { hang_timeout_ms: config.hang_timeout }),
    logs: { dir: logsRoot, ranks: config.logs.ranks, tee: config.logs.tee },
    ...(checkpointMarker && { checkpoint_marker: checkpointMarker }),
  }));

  const view = await RunView.open({
    runId,
    logDir: join(logsRoot, runId),
    plan,
    ...(monitor ? { monitor } : {}),
    warn: (line) => progress.note(line),
    // `dtrain stacks`: every rank's stack now, nothing stopped (gdb stops each process briefly with native)
    localRoutes: {
      'POST /api/stacks': async (req) => {
        const native = req.query.get('native') === '1';
        const gathered = supervisor
          ? await supervisor.gather(
              native,
              native ? NATIVE_STACK_WAIT_MS : HANG_STACK_WAIT_MS,
              native ? NATIVE_GATHER_MS : HANG_GATHER_MS,
            )
          : { ranks: [], unanswered: [] };
        return jsonReply({ run_id: runId, native, ...gathered });
      },
    },
  });
  let supervisor: Supervisor | null = null;
  // What agents and spawners report before the supervisor exists is handed to it once it does.
  const early: ((s: Supervisor) => void)[] = [];
  let succeeded = false;
  const onEvent = (ev: AgentEvent) => {
    view.status.onEvent(ev);
    if (ev.type === 'sample' && !config.hang_timeout) return;
    if (supervisor) supervisor.onEvent(ev);
    else early.push((s) => s.onEvent(ev));
  };
  const nodes: NodeHandle[] = [];
  // Before the supervisor exists (agents starting, the backend probe, a rendezvous): SIGINT/SIGTERM abort
  // the start-up, a second SIGINT kills what started; other signals find no worker to forward to.
  let interruptedBy: 'SIGINT' | 'SIGTERM' | null = null;
  let interruptStart: (err: Error) => void = () => {};
  const startInterrupted = new Promise<never>((_, reject) => (interruptStart = reject));
  startInterrupted.catch(() => {});
  let startKilled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (supervisor) return supervisor.signal(sig);
    if (sig !== 'SIGINT' && sig !== 'SIGTERM') return;
    if (interruptedBy && sig === 'SIGINT') {
      startKilled = true;
      for (const n of nodes) n.kill(0);
    }
    interruptedBy ??= sig;
    interruptStart(new InterruptedError(interruptedBy));
  };
  // Under nohup a hangup is not for the job: SIGHUP is not forwarded (main.ts keeps ignoring it).
  const signals = handledSignals.filter((s) => s !== 'SIGHUP' || !sighupIgnoredAtStart());
  for (const s of signals) process.on(s, onSignal);
  let control: StoreControl | null = null;
  let membership: ElasticMembership | undefined;
  /** elastic: listed nodes whose agent could not start at launch, and why */
  const notStarted: { id: number; why: string }[] = [];
  // A node lost before the backend decision never reports its GPU probe: stop waiting for it then.
  let lostWhileStarting: (err: Error) => void = () => {};
  const lostBeforeDecision = new Promise<never>((_, reject) => (lostWhileStarting = reject));
  lostBeforeDecision.catch(() => {});
  // Nodes a start hands back after the start-up was interrupted are let go at once.
  let abandoned = false;
  const starting: Promise<void>[] = [];
  const startNodes = (started: Promise<NodeHandle[]>): Promise<void> => {
    const adopted = started.then((handles) => {
      if (abandoned) void Promise.all(handles.map((h) => h.close()));
      else nodes.push(...handles);
    });
    starting.push(adopted.catch(() => {}));
    return Promise.race([adopted, startInterrupted]);
  };
  const onLost = (n: number, why: string, silentMs?: number) => {
    view.status.nodeLost(n);
    if (supervisor) return supervisor.nodeLost(n, why, silentMs);
    early.push((s) => s.nodeLost(n, why, silentMs));
    lostWhileStarting(new StartError(`node ${n} was lost while the job started: ${why}`));
  };
  try {
    const remoteSpecs = specs.filter((s) => !s.node.local);
    if (remoteSpecs.length || childAgentMode() || config.elastic) {
      const { StoreControl } = await import('./store-node.js');
      control = await Promise.race([
        StoreControl.open({ host: store.localHost, port: store.port, jobKey }, onEvent, onLost, config.heartbeat),
        startInterrupted,
      ]);
    }
    const ctx: StartContext = { config, store, jobKey, control, console, onEvent, onLost };
    await startNodes(
      localNodeSource.start(
        specs.filter((s) => s.node.local),
        ctx,
      ),
    );
    if (remoteSpecs.length) {
      if (!req.source)
        throw new StartError(
          `nodes ${remoteSpecs.map((s) => s.node.host).join(', ')} are not this machine ` +
            'and no remote spawner is available',
        );
      const source = req.source;
      try {
        await startNodes(source.start(remoteSpecs, ctx));
      } catch (err) {
        if (!config.elastic || !(err instanceof StartError) || interruptedBy) throw err;
        // Elastic: the nodes that answer start the job (within min_nodes); the others are lost from the
        // start and tried again every elastic.rejoin.
        const tries = await Promise.allSettled(remoteSpecs.map((s) => startNodes(source.start([s], ctx))));
        tries.forEach((r, i) => {
          if (r.status === 'fulfilled') return;
          if (interruptedBy) throw r.reason;
          const id = remoteSpecs[i].node.node_rank;
          const why = (r.reason as Error).message.split('\n').map((l) => l.trim());
          notStarted.push({ id, why: `could not start: ${why.filter(Boolean).join(' ')}` });
          view.status.nodeLost(id);
        });
      }
    }
    nodes.sort((a, b) => a.nodeRank - b.nodeRank);
    if (needsProbe(config.backend)) {
      const decision = await Promise.race([
        resolveJobBackend({
          store: { host: store.localHost, port: store.port, jobKey },
          ...(control ? { client: control.storeClient } : {}),
          nodes: plan.nodes.filter((n) => !notStarted.some((x) => x.id === n.node_rank)),
          requested: config.backend,
          timeoutMs: config.rendezvous.timeout,
        }),
        lostBeforeDecision,
        startInterrupted,
      ]);
      progress.note(describeDecision(config.backend, decision));
    }
    if (config.elastic) {
      const { ElasticMembership, specForNode } = await import('./membership.js');
      const { nodesById } = await import('../plan/elastic.js');
      const source = req.source;
      membership = new ElasticMembership({
        config,
        handles: nodes,
        notStarted,
        startNode: async (id) => {
          const def = nodesById(config)[id];
          if (!def) throw new Error(`no node ${id}`);
          const node = { node_rank: id, host: def.host, nproc: def.nproc, local: def.local };
          if (def.user !== undefined) Object.assign(node, { user: def.user });
          if (def.port !== undefined) Object.assign(node, { port: def.port });
          const spec = specForNode(specs[0], id, node, control?.nextIncarnation(id) ?? 0);
          if (!def.local && !source) throw new Error(`${def.host} is not this machine and no spawner is available`);
          const [handle] = await (def.local ? localNodeSource : source!).start([spec], ctx);
          return handle;
        },
        masterAddrOf: (host) => (config.master.addr !== 'auto' ? config.master.addr : allLocal ? '127.0.0.1' : host),
        commits: control!.storeClient,
        note: (line) => void err.write(line + '\n'),
        absent: source?.arrivals?.absent ?? [],
      });
      source?.arrivals?.connect(membership);
    }
    supervisor = new Supervisor({
      membership,
      heartbeatTimeoutMs: config.heartbeat.timeout,
      runId,
      worldSize: plan.world_size,
      restartsMax: config.restarts.max,
      backoffMs: config.restarts.backoff,
      shutdownGraceMs: config.shutdown_grace,
      logDir: join(logsRoot, runId),
      nodes,
      ranksPerNode: plan.nodes.map((n) => n.nproc),
      onRunning: (n, world, attempt) => {
        view.status.running(attempt);
        progress.running(n, world, attempt);
      },
      onRestart: (restart, cause, backoffMs) => {
        view.status.restarting(restart);
        // restarts counted as restarts.max counts them; the summary counts attempts ("attempt 3 of 3")
        progress.note(
          `restarting the group (restart ${restart} of ${config.restarts.max}) in ${backoffMs / 1000}s: ` +
            (cause.message ??
              `rank ${cause.rank} ` +
                `${cause.signal ? `was killed by ${cause.signal}` : `exited with code ${cause.exit_code}`}`),
        );
      },
      onStopping: (why) => {
        view.status.stopping();
        progress.note(`stopping all workers: ${why}`);
      },
      warning: warningOptions(
        config,
        (line) => progress.note(line),
        async (signal) => {
          const client =
            control?.storeClient ??
            (await StoreClient.connectTcp({ host: store.localHost, port: store.port, jobKey, label: 'store' }));
          try {
            return await nextCommit(client, signal);
          } finally {
            if (client !== control?.storeClient) await client.close();
          }
        },
      ),
      hangTimeoutMs: config.hang_timeout,
      diagnose: diagnoseFromRecorders,
      onHang: (report) => {
        view.status.hung();
        err.write(renderHang(report).join('\n') + '\n');
      },
    });
    if (interruptedBy) throw new InterruptedError(interruptedBy);
    for (const replay of early.splice(0)) replay(supervisor);
    const { outcome, summary } = await supervisor.run();
    succeeded = outcome.kind === 'ok';
    progress.stop();
    const stragglers = view.status.lastStragglers;
    if (stragglers.length) {
      summary.stragglers = stragglers;
      err.write(
        `dtrain: stragglers (compute time > group median + 20%, last 20 steps): ranks ${stragglers.join(', ')}\n`,
      );
    }
    if (outcome.kind === 'cannot-start') throw new StartError(outcome.message);
    if (outcome.kind === 'interrupted') throw new InterruptedError(outcome.signal, summary);
    if (outcome.kind === 'failed')
      throw new JobFailedError(
        renderFailure(summary, { restartsMax: config.restarts.max, tee: config.logs.tee }),
        summary,
      );
    await req.onFinished?.({ host: store.localHost, port: store.port, jobKey });
    return summary;
  } finally {
    progress.stop();
    for (const s of signals) process.off(s, onSignal);
    if (!supervisor) {
      // An interrupted start-up waits a moment for starts under way, then lets go of every node.
      abandoned = true;
      if (interruptedBy) await within(Promise.all(starting), KILL_WAIT_MS);
      const closed = Promise.all(nodes.map((n) => n.close()));
      await (startKilled ? within(closed, KILL_WAIT_MS) : closed);
    }
    membership?.dispose();
    await control?.close();
    await store.close();
    await view.close(succeeded);
    if (checkpointMarker) rmSync(checkpointMarker.path, { force: true });
  }
}
