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
  controlKeys,
  type AgentEvent,
  type AgentSpec,
  type ControllerCommand,
  type ForwardedSignal,
  type OutputRecord,
} from './agent-contract.js';
import type { OutputSink } from './line-targets.js';
import { getForever } from './store-wait.js';
import { supervisedPids } from './process-tree.js';
import { within } from '../util/within.js';
import type { NodeHandle } from './supervisor.js';

export class StoreControl {
  private readonly seq = new Map<number, number>();
  private readonly lastBeat = new Map<number, { count: number; at: number }>();
  /** nodes whose event sequence is being read (agent-contract.ts ctl/event/<node_rank>/<seq>) */
  private readonly reading = new Set<number>();
  private closed = false;
  private readonly watcher: NodeJS.Timeout;

  private constructor(
    private readonly client: StoreClient,
    private readonly onEvent: (ev: AgentEvent) => void,
    private readonly onLost: (nodeRank: number, why: string) => void,
    private readonly heartbeat: { interval: number; timeout: number },
  ) {
    this.watcher = setInterval(() => void this.checkHeartbeats(), heartbeat.interval);
    this.watcher.unref();
  }

  static async open(
    store: { host: string; port: number; jobKey: Buffer },
    onEvent: (ev: AgentEvent) => void,
    onLost: (nodeRank: number, why: string) => void,
    heartbeat: { interval: number; timeout: number },
  ): Promise<StoreControl> {
    const client = await StoreClient.connectTcp({ ...store, label: 'store (controller)' });
    return new StoreControl(client, onEvent, onLost, heartbeat);
  }

  /** The controller's own store connection (requests are pipelined: other waits may share it). */
  get storeClient(): StoreClient {
    return this.client;
  }

  /** Commands to one node, in order. */
  send(nodeRank: number, cmd: ControllerCommand): void {
    const n = this.seq.get(nodeRank) ?? 0;
    this.seq.set(nodeRank, n + 1);
    void this.client.set(controlKeys.command(nodeRank, n), JSON.stringify(cmd)).catch(() => {});
  }

  watch(nodeRank: number): void {
    this.lastBeat.set(nodeRank, { count: 0, at: Date.now() });
  }

  unwatch(nodeRank: number): void {
    this.lastBeat.delete(nodeRank);
  }

  handle(nodeRank: number, host: string, release: () => Promise<void>): NodeHandle {
    this.watch(nodeRank);
    if (!this.reading.has(nodeRank)) {
      this.reading.add(nodeRank);
      void this.readEvents(nodeRank);
    }
    return {
      nodeRank,
      host,
      start: (attempt, launch) => this.send(nodeRank, { type: 'start', attempt, ...launch }),
      stop: (attempt, signal, graceMs) => this.send(nodeRank, { type: 'stop', attempt, signal, grace_ms: graceMs }),
      kill: (attempt) => this.send(nodeRank, { type: 'kill', attempt }),
      forward: (signal: ForwardedSignal) => this.send(nodeRank, { type: 'signal', signal }),
      gather: (attempt, id, native, waitMs) =>
        this.send(nodeRank, { type: 'gather', attempt, id, native, wait_ms: waitMs }),
      close: async () => {
        this.unwatch(nodeRank);
        this.send(nodeRank, { type: 'exit' });
        await release();
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watcher);
    await this.client.close().catch(() => {});
  }

  /** One node's events in order; each node has its own sequence, so a lost node stalls only its own. */
  private async readEvents(nodeRank: number): Promise<void> {
    for (let n = 0; !this.closed; n++) {
      let raw: Buffer;
      try {
        raw = await getForever(this.client, controlKeys.event(nodeRank, n), 5000);
      } catch {
        return; // closed
      }
      const ev = JSON.parse(raw.toString()) as AgentEvent;
      // samples are state, not history: their keys go once read (agent-contract.ts)
      if (ev.type === 'sample') void this.client.delete(controlKeys.event(nodeRank, n)).catch(() => {});
      this.onEvent(ev);
    }
  }

  private async checkHeartbeats(): Promise<void> {
    const now = Date.now();
    for (const [nodeRank, last] of this.lastBeat) {
      const count = await this.client.add(controlKeys.heartbeat(nodeRank), 0).catch(() => last.count);
      if (count !== last.count) this.lastBeat.set(nodeRank, { count, at: now });
      else if (now - last.at > this.heartbeat.timeout) {
        this.lastBeat.delete(nodeRank);
        this.onLost(nodeRank, `no heartbeat for ${Math.round((now - last.at) / 1000)}s`);
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
