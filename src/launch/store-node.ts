/**
 * The controller's side of store-driven agents (`dtrain agent` over SSH, srun, or a local child):
 * per-node command sequences, the shared event log, and heartbeat watching (agent-contract.ts).
 * Spawners start the agent process; this turns it into a NodeHandle for the supervisor.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { StoreClient } from '../store/client.js';
import {
  agentId,
  controlKeys,
  type AgentEvent,
  type AgentId,
  type AgentSpec,
  type ControllerCommand,
  type ForwardedSignal,
  type OutputRecord,
} from './agent-contract.js';
import type { OutputSink } from './line-targets.js';
import { supervisedPids } from './process-tree.js';
import { within } from '../util/within.js';
import type { NodeHandle } from './supervisor.js';

export class StoreControl {
  /** command sequence numbers, by agent */
  private readonly seq = new Map<AgentId, number>();
  private readonly lastBeat = new Map<number, { agent: AgentId; count: number; at: number }>();
  /** each node's current agent incarnation (AgentSpec.incarnation); an earlier one is not listened to */
  private readonly incarnations = new Map<number, number>();
  /** agents whose event sequence is being read (agent-contract.ts ctl/event/<agent>/<seq>) */
  private readonly reading = new Set<AgentId>();
  private closed = false;
  private readonly watcher: NodeJS.Timeout;

  private constructor(
    private readonly client: StoreClient,
    private readonly onEvent: (ev: AgentEvent) => void,
    private readonly onLost: (nodeRank: number, why: string, silentMs?: number) => void,
    private readonly heartbeat: { interval: number; timeout: number },
  ) {
    this.watcher = setInterval(() => void this.checkHeartbeats(), heartbeat.interval);
    this.watcher.unref();
  }

  static async open(
    store: { host: string; port: number; jobKey: Buffer },
    onEvent: (ev: AgentEvent) => void,
    onLost: (nodeRank: number, why: string, silentMs?: number) => void,
    heartbeat: { interval: number; timeout: number },
  ): Promise<StoreControl> {
    const client = await StoreClient.connectTcp({ ...store, label: 'store (controller)' });
    return new StoreControl(client, onEvent, onLost, heartbeat);
  }

  /** The controller's own store connection (requests are pipelined: other waits may share it). */
  get storeClient(): StoreClient {
    return this.client;
  }

  /**
   * The incarnation for a new agent of this node (its spec's `incarnation`): 0 for the first, then one more
   * than the last. From now on only that agent's events and heartbeats count for the node.
   */
  nextIncarnation(nodeRank: number): number {
    const k = this.incarnations.has(nodeRank) ? this.incarnations.get(nodeRank)! + 1 : 0;
    this.incarnations.set(nodeRank, k);
    return k;
  }

  private current(nodeRank: number): AgentId {
    return agentId(nodeRank, this.incarnations.get(nodeRank) ?? 0);
  }

  /** Commands to one agent, in order. */
  private send(agent: AgentId, cmd: ControllerCommand): void {
    const n = this.seq.get(agent) ?? 0;
    this.seq.set(agent, n + 1);
    void this.client.set(controlKeys.command(agent, n), JSON.stringify(cmd)).catch(() => {});
  }

  /** The handle of the node's current agent (started with the spec's incarnation). */
  handle(nodeRank: number, host: string, release: () => Promise<void>): NodeHandle {
    if (!this.incarnations.has(nodeRank)) this.incarnations.set(nodeRank, 0);
    const agent = this.current(nodeRank);
    this.lastBeat.set(nodeRank, { agent, count: 0, at: Date.now() });
    if (!this.reading.has(agent)) {
      this.reading.add(agent);
      void this.readEvents(nodeRank, agent);
    }
    const send = (cmd: ControllerCommand) => this.send(agent, cmd);
    return {
      nodeRank,
      host,
      start: (attempt, launch) => send({ type: 'start', attempt, ...launch }),
      stop: (attempt, signal, graceMs) => send({ type: 'stop', attempt, signal, grace_ms: graceMs }),
      kill: (attempt) => send({ type: 'kill', attempt }),
      forward: (signal: ForwardedSignal) => send({ type: 'signal', signal }),
      gather: (attempt, id, native, waitMs) => send({ type: 'gather', attempt, id, native, wait_ms: waitMs }),
      close: async () => {
        if (this.lastBeat.get(nodeRank)?.agent === agent) this.lastBeat.delete(nodeRank);
        send({ type: 'exit' });
        await release();
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watcher);
    await this.client.close().catch(() => {});
  }

  /**
   * One agent's events in order; each agent has its own sequence, so a lost node stalls only its own. The
   * events of an agent that a newer incarnation of its node replaced are no longer read.
   */
  private async readEvents(nodeRank: number, agent: AgentId): Promise<void> {
    const replaced = () => this.current(nodeRank) !== agent;
    for (let n = 0; !this.closed && !replaced(); n++) {
      let raw: Buffer | undefined;
      while (raw === undefined && !this.closed && !replaced()) {
        try {
          raw = await this.client.get(controlKeys.event(agent, n), 5000);
        } catch (err) {
          if ((err as Error).name !== 'StoreTimeoutError') return; // closed
        }
      }
      if (raw === undefined || replaced()) break;
      const ev = JSON.parse(raw.toString()) as AgentEvent;
      // samples are state, not history: their keys go once read (agent-contract.ts)
      if (ev.type === 'sample') void this.client.delete(controlKeys.event(agent, n)).catch(() => {});
      this.onEvent(ev);
    }
    this.reading.delete(agent);
  }

  private async checkHeartbeats(): Promise<void> {
    const now = Date.now();
    for (const [nodeRank, last] of this.lastBeat) {
      const count = await this.client.add(controlKeys.heartbeat(last.agent), 0).catch(() => last.count);
      if (this.lastBeat.get(nodeRank) !== last) continue; // replaced or let go meanwhile
      if (count !== last.count) this.lastBeat.set(nodeRank, { agent: last.agent, count, at: now });
      else if (now - last.at > this.heartbeat.timeout) {
        this.lastBeat.delete(nodeRank);
        this.onLost(nodeRank, `no heartbeat for ${Math.round((now - last.at) / 1000)}s`, now - last.at);
      }
    }
  }
}

/** Feeds an agent's stdout (OutputRecords) to the console, pausing the stream while the console is full. */
export function relayRecords(stdout: Readable, console: OutputSink | null): void {
  const lines = createInterface({ input: stdout, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (!console || !line.startsWith('{')) return;
    let rec: OutputRecord;
    try {
      rec = JSON.parse(line) as OutputRecord;
    } catch {
      return;
    }
    if (rec.type !== 'out') return;
    if (!console.lines(rec.rank, rec.stream, Buffer.from(rec.lines.join('\n') + '\n'))) {
      lines.pause();
      console.onDrain(rec.stream, () => lines.resume());
    }
  });
}

const dtrainBin = fileURLToPath(new URL('../../bin/dtrain', import.meta.url));

/** This machine's node as a child `dtrain agent` (DTRAIN_LOCAL_AGENT=child; kept to measure against). */
export function spawnChildAgent(spec: AgentSpec, control: StoreControl, console: OutputSink | null): NodeHandle {
  const child = spawn(process.execPath, [dtrainBin, 'agent', '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  if (child.pid) supervisedPids.add(child.pid);
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  void exited.then(() => supervisedPids.delete(child.pid!));
  child.stdin.write(JSON.stringify(spec) + '\n');
  relayRecords(child.stdout, console);
  // Let go, it leaves at once; one that cannot answer (start-up interrupted, stopped) is killed, well
  // within the supervisor's KILL_WAIT_MS.
  return control.handle(spec.node.node_rank, spec.node.host, async () => {
    await within(exited, 1000);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
}
