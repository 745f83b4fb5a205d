/**
 * Starting SSH nodes for node-source.ts (the SSH NodeSource): start each given node's
 * agent over SSH, give each its spec (store address as that node reaches it, MASTER_ADDR as the nodes reach
 * node 0, forward_env), relay its output records and diagnostics, and hand the supervisor store-driven
 * NodeHandles. A node is lost when its SSH connection drops (keepalives, sized so detection takes about
 * `heartbeat.timeout`), its agent dies, or its heartbeats stop (the controller's StoreControl).
 */
import type { JobConfig } from '../../config/types.js';
import type { AgentSpec } from '../agent-contract.js';
import { controlOf, type StartContext } from '../node-source.js';
import { relayRecords } from '../store-node.js';
import type { NodeHandle } from '../supervisor.js';
import type { PreDials } from './pre-dial.js';
import { within } from '../../util/within.js';
import { startRemoteNodes } from './remote-nodes.js';
import { sshSettingsFromConfig } from './target.js';

/**
 * `err`: where agents' own diagnostics go, one line each with the host in front. `preDialed`: connections
 * the launch dialled ahead (pre-dial.ts); the spawner takes them, and closes what it did not take.
 */
export async function startSshNodes(
  config: JobConfig,
  specs: AgentSpec[],
  ctx: StartContext,
  err: NodeJS.WritableStream = process.stderr,
  preDialed?: PreDials,
): Promise<NodeHandle[]> {
  const settings = sshSettingsFromConfig(config.ssh);
  const direct = config.rendezvous.addr !== 'auto' ? { host: config.rendezvous.addr, port: ctx.store.port } : undefined;
  const interval = config.heartbeat.interval;
  const bySpec = new Map(specs.map((s) => [s.node.node_rank, s]));
  const nodeZeroRemote = specs.some((s) => s.node.node_rank === 0);
  // a node reached through ProxyJump has no route of its own back: it gets another node's
  let anyRoute: string | undefined;

  const remote = await startRemoteNodes({
    nodes: specs.map((s) => s.node),
    settings,
    workdir: config.workdir,
    store: { host: ctx.store.localHost, port: ctx.store.port },
    ...(direct ? { directStore: direct } : {}),
    helloTimeoutMs: config.rendezvous.timeout,
    ...(preDialed ? { preDialed } : {}),
    keepaliveIntervalMs: interval,
    keepaliveCountMax: Math.max(1, Math.ceil(config.heartbeat.timeout / interval)),
    spec: (node, store, route): AgentSpec => {
      const s = bySpec.get(node.node_rank)!;
      if (config.master.addr !== 'auto') return { ...s, store };
      // MASTER_ADDR as this node reaches node 0: the address SSH dials for node 0, or, when node 0 is this
      // machine, this machine's address on the route this node's connection takes.
      anyRoute ??= route.localAddress;
      const addr = nodeZeroRemote ? route.targets.get(0)?.hostName : (route.localAddress ?? anyRoute);
      return { ...s, store, master: addr ? { ...s.master, addr } : s.master };
    },
    onDiagnostic: (line) => err.write(`${line}\n`),
    onLost: ctx.onLost,
  });

  return remote.agents.map((agent): NodeHandle => {
    relayRecords(agent.stdout, ctx.console);
    return controlOf(ctx).handle(agent.node.node_rank, agent.node.host, async () => {
      // After `exit` the agent ends on its own; then drop the connection.
      await within(agent.exited, 5000);
      agent.close();
    });
  });
}
