/**
 * The controller's entry to SSH nodes, speaking src/launch/agent-contract.ts: start `dtrain agent --stdio`
 * on every remote node (spawner.ts), hand each its AgentSpec on stdin as it starts (the only place the job
 * key travels),
 * then relay what comes back: stdout's OutputRecords to the controller's console, stderr's diagnostics with
 * the host in front, and a lost node (SSH connection dropped or keepalives unanswered, or the agent dying
 * before it was told to exit) to the supervisor. Control after that goes through the store (ctl/ keys).
 */
import { createInterface } from 'node:readline';
import type { NodePlan } from '../../plan/types.js';
import type { AgentSpec, OutputRecord, StoreAddress } from '../agent-contract.js';
import { within } from '../../util/within.js';
import { forwardedEnv, mergeBelow } from './forward-env.js';
import { startSshAgents, type RemoteAgent, type SshLaunchRequest } from './spawner.js';
import type { SshTarget } from './target.js';

export interface RemoteNodesOptions extends Omit<SshLaunchRequest, 'nodes'> {
  /** the plan's remote nodes (local: false) */
  nodes: NodePlan[];
  /**
   * The node's AgentSpec, given the store address its agent must dial and its route: this machine's address
   * on that node's connection, and every node's resolved target (node 0's HostName is MASTER_ADDR).
   * Each agent gets its spec as soon as it starts, not once all have (spawner.ts `firstMessage`).
   */
  spec(
    node: NodePlan,
    store: StoreAddress,
    route: { localAddress?: string; targets: ReadonlyMap<number, SshTarget> },
  ): AgentSpec;
  /** each OutputRecord; absent: the caller reads `agent.stdout` itself (e.g. with backpressure) */
  onRecord?(nodeRank: number, record: OutputRecord): void;
  /** one line of an agent's own stderr, already prefixed with its host */
  onDiagnostic(line: string): void;
  /** the node is gone; `why` names the cause in one line */
  onLost(nodeRank: number, why: string, silentMs?: number): void;
  /** the controller's environment, for ssh.forward_env (default: process.env) */
  env?: NodeJS.ProcessEnv;
}

export interface RemoteNodes {
  agents: RemoteAgent[];
  /** End every agent's stdin (it kills its workers and exits) and close the connections. */
  close(): Promise<void>;
}

export async function startRemoteNodes(opts: RemoteNodesOptions): Promise<RemoteNodes> {
  const { nodes, spec, onRecord, onDiagnostic, onLost, env = process.env, ...request } = opts;
  const forwarded = forwardedEnv(request.settings.forward_env, env);
  const planOf = (nodeRank: number) => nodes.find((n) => n.node_rank === nodeRank)!;
  const agents = await startSshAgents({
    ...request,
    nodes: nodes.map((n) => {
      const node: { node_rank: number; host: string; user?: string; port?: number } = {
        node_rank: n.node_rank,
        host: n.host,
      };
      if (n.user !== undefined) node.user = n.user;
      if (n.port !== undefined) node.port = n.port;
      return node;
    }),
    firstMessage: ({ node, storeAddr, localAddress }, targets) => {
      const s = spec(
        planOf(node.node_rank),
        { kind: 'tcp', host: storeAddr.host, port: storeAddr.port },
        { ...(localAddress ? { localAddress } : {}), targets },
      );
      // forward_env sits below everything the plan and the config set.
      const withForwarded: AgentSpec = {
        ...s,
        ranks: s.ranks.map((r) => ({ ...r, env: mergeBelow(forwarded, r.env) })),
      };
      return JSON.stringify(withForwarded) + '\n';
    },
  });
  let closing = false;

  for (const agent of agents) {
    const plan = planOf(agent.node.node_rank);
    const host = agent.node.host;

    if (onRecord)
      createInterface({ input: agent.stdout }).on('line', (line) => {
        let record: OutputRecord;
        try {
          record = JSON.parse(line) as OutputRecord;
        } catch {
          onDiagnostic(`[${host}] ${line}`);
          return;
        }
        if (record.type === 'out') onRecord(plan.node_rank, record);
      });
    const tail: string[] = [];
    createInterface({ input: agent.stderr }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 3) tail.shift();
      onDiagnostic(`[${host}] ${line}`);
    });
    let reported = false;
    // Once the controller lets an agent go, its exit and its connection closing are expected.
    const release = agent.close.bind(agent);
    agent.close = () => {
      reported = true;
      release();
    };
    const lost = (why: string, silentMs?: number) => {
      if (closing || reported) return;
      reported = true;
      onLost(plan.node_rank, `${host}: ${why}`, silentMs);
    };
    void agent.lost.then(({ why, silentMs }) => lost(why, silentMs));
    void agent.exited.then(({ code, signal }) => {
      // Exit 0 follows the controller's `exit` command; anything else while the job runs loses the node.
      if (code === 0) return;
      const last = tail.length ? `: ${tail[tail.length - 1]}` : '';
      lost(code !== null ? `agent exited with code ${code}${last}` : `agent killed by ${signal ?? 'a signal'}${last}`);
    });
  }

  return {
    agents,
    async close() {
      closing = true;
      for (const a of agents) a.stdin.end();
      // Let agents see EOF and exit on their own (they kill their workers), then drop the connections.
      await within(Promise.all(agents.map((a) => a.exited)), 2000);
      for (const a of agents) a.close();
    },
  };
}
