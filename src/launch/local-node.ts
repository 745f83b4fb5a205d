/**
 * The controller's own node, run in-process: a NodeAgent driven by direct calls, its events delivered
 * straight to the supervisor. Measured against a child `dtrain agent` (scripts/bench/launch.sh): the
 * child costs a second Node start-up per launch, while dtrain-exec already keeps the no-orphan guarantee
 * when the controller itself is SIGKILLed, so the in-process agent is the default.
 *
 * `localNodeSource` is the NodeSource (node-source.ts) of this machine's nodes: the controller starts
 * them through it whatever source the other nodes come from.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreClient } from '../store/client.js';
import { StoreProxy } from '../store/proxy.js';
import type { AgentEvent, AgentSpec, AttemptStart, ForwardedSignal } from './agent-contract.js';
import { controlKeys } from './agent-contract.js';
import { getForever } from './store-wait.js';
import { NodeAgent, type AgentLink } from './agent.js';
import { backendLink } from './backend.js';
import type { OutputSink } from './line-targets.js';
import type { NodeSource } from './node-source.js';
import type { NodeHandle } from './supervisor.js';

// agent-process, store-node and join mode import it from here
export { getForever };

export interface StoreAccess {
  host: string;
  port: number;
  jobKey: Buffer;
}

/**
 * Proxy folders are named after the process that made them (`dtrain-<pid>-n<node>-`, `dtrain-agent-<pid>-`).
 * One whose process is gone was left by a launcher or agent that was SIGKILLed: remove it (ours only).
 */
export function removeStaleProxyDirs(dir = tmpdir()): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const m = /^dtrain-(?:agent-)?(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // still running
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
    }
    const path = join(dir, name);
    try {
      if (uid !== undefined && statSync(path).uid !== uid) continue;
      rmSync(path, { recursive: true, force: true });
    } catch {
      // raced with another launcher cleaning up: fine
    }
  }
}

export class LocalNode implements NodeHandle {
  readonly nodeRank: number;
  readonly host: string;
  private agent!: NodeAgent;
  private proxy: StoreProxy | null = null;
  private upstream: StoreClient | null = null;
  private proxyDir = '';

  private constructor(private readonly spec: AgentSpec) {
    this.nodeRank = spec.node.node_rank;
    this.host = spec.node.host;
  }

  static async create(
    spec: AgentSpec,
    store: StoreAccess,
    console: OutputSink | null,
    onEvent: (ev: AgentEvent) => void,
  ): Promise<LocalNode> {
    const node = new LocalNode(spec);
    node.upstream = await StoreClient.connectTcp({ host: store.host, port: store.port, jobKey: store.jobKey });
    removeStaleProxyDirs();
    node.proxyDir = mkdtempSync(join(tmpdir(), `dtrain-${process.pid}-n${spec.node.node_rank}-`));
    node.proxy = await StoreProxy.start({
      upstream: node.upstream,
      dir: node.proxyDir,
      attempt: 0,
      jobKey: store.jobKey,
    });
    const upstream = node.upstream;
    const proxy = node.proxy;
    const link: AgentLink = {
      emit: (ev) => queueMicrotask(() => onEvent(ev)),
      publishMasterPort: (attempt, port) => upstream.set(controlKeys.masterPort(attempt), String(port)),
      awaitMasterPort: async (attempt) =>
        Number((await getForever(upstream, controlKeys.masterPort(attempt))).toString()),
      storeAddress: async (attempt) => {
        proxy.setAttempt(attempt);
        return `unix:${proxy.socketPath}`;
      },
      ...backendLink(upstream, spec),
    };
    node.agent = new NodeAgent(spec, link, console);
    return node;
  }

  start(attempt: number, launch?: AttemptStart): void {
    void this.agent.start(attempt, launch);
  }

  stop(attempt: number, signal: ForwardedSignal, graceMs: number): void {
    this.agent.stop(attempt, signal, graceMs);
  }

  kill(attempt: number): void {
    this.agent.kill(attempt);
  }

  forward(signal: ForwardedSignal): void {
    this.agent.forward(signal);
  }

  gather(attempt: number, id: number, native: boolean, waitMs: number): void {
    void this.agent.gather(attempt, id, native, waitMs);
  }

  /** Kills whatever still runs (nothing, normally), then releases the proxy and its folder. */
  async close(): Promise<void> {
    this.agent.kill();
    await this.agent.idle();
    this.agent.dispose();
    await this.proxy?.close();
    await this.upstream?.close();
    rmSync(this.proxyDir, { recursive: true, force: true });
  }
}

/**
 * This machine's nodes. The config's nodes are the job's; starting one is an in-process NodeAgent, or,
 * as a measuring aid (DTRAIN_LOCAL_AGENT=child), a child `dtrain agent` driven through the store.
 */
export const localNodeSource: NodeSource = {
  kind: 'local',
  resolve: (loaded) => Promise.resolve({ config: loaded.config, warnings: [] }),
  async start(specs, ctx) {
    const store = { host: ctx.store.localHost, port: ctx.store.port, jobKey: ctx.jobKey };
    const handles: NodeHandle[] = [];
    try {
      for (const spec of specs) {
        if (childAgentMode())
          handles.push((await import('./store-node.js')).spawnChildAgent(spec, ctx.control!, ctx.console));
        else handles.push(await LocalNode.create(spec, store, ctx.console, (ev) => ctx.onEvent(ev)));
      }
    } catch (err) {
      await Promise.all(handles.map((h) => h.close()));
      throw err;
    }
    return handles;
  },
  close: () => Promise.resolve(),
};

/** DTRAIN_LOCAL_AGENT=child: this machine's agent as a child process (slower; for measuring). */
export function childAgentMode(): boolean {
  return process.env.DTRAIN_LOCAL_AGENT === 'child';
}
