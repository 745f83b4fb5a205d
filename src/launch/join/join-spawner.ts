/**
 * Starting joined agents, for node-source.ts (join mode's NodeSource): the agents are already
 * there, waiting on the store, so "starting" one is answering it with its spec. Then each is a
 * store-driven NodeHandle like an SSH or srun agent; its output records come through the store
 * (record-relay.ts) and letting it go waits for its JoinDone and its last records. An agent whose
 * connection closes before its JoinDone is lost at once. Nodes started while an elastic job runs (a
 * late agent taken in) are answered the same way; an agent answers for one node once: a node whose agent
 * is gone comes back only with a new agent joining as its host.
 */
import type { AgentSpec } from '../agent-contract.js';
import { controlOf, type StartContext } from '../node-source.js';
import type { NodeHandle } from '../supervisor.js';
import { connectionName, type ClosedConnections } from './front-door.js';
import { joinKeys, sealJoinSpec, type JoinDone } from './join-contract.js';
import type { JoinedAgent } from './joined-nodes.js';
import { StoreRecordReader } from './record-relay.js';
import { StartError } from '../../util/errors.js';
import type { JoinDesk } from './rendezvous.js';

export async function startJoinedNodes(
  desk: JoinDesk,
  /** the agent that runs node id `nodeRank`, when one joined as it */
  agentOf: (nodeRank: number) => JoinedAgent | undefined,
  specs: AgentSpec[],
  ctx: StartContext,
  closed?: ClosedConnections,
): Promise<NodeHandle[]> {
  const heartbeatMs = ctx.config.heartbeat.interval;
  const handles: NodeHandle[] = [];
  // all or nothing: every node must have an agent waiting before any is answered
  const agents = specs.map((spec) => {
    const agent = agentOf(spec.node.node_rank);
    const who = `node ${spec.node.node_rank} (host ${spec.node.host})`;
    if (!agent) throw new StartError(`no agent has joined as ${spec.node.host} yet`);
    if (desk.wasAnswered(agent.index) || closed?.has(connectionName(agent.reg.local_addr, agent.reg.local_port)))
      throw new StartError(`${who}: its agent is gone; \`dtrain agent --join\` on it again brings it back`);
    return agent;
  });
  for (const [i, spec] of specs.entries()) {
    const nodeRank = spec.node.node_rank;
    const agent = agents[i];
    const records = new StoreRecordReader(desk.client, nodeRank, ctx.console);
    // The store's frames are authenticated, not encrypted: the spec (the workers' env) goes sealed under
    // the secret file's key, bound to its store key, and without the key itself (the agent has its file).
    // The store address is not used either: the agent dials the store where it joined.
    const plain: AgentSpec = { ...spec, job_key: '', store: { kind: 'tcp', host: '', port: ctx.store.port } };
    const sent = sealJoinSpec(Buffer.from(spec.job_key, 'base64'), agent.index, plain);
    let released = false;
    // The agent's registration connection closing before its JoinDone means the agent is gone (killed,
    // crashed): lose the node now, as srun and SSH spawners do, rather than after heartbeat.timeout.
    closed?.onClose(connectionName(agent.reg.local_addr, agent.reg.local_port), () => {
      void desk.client.check([joinKeys.done(nodeRank)]).then(
        ([done]) =>
          !done &&
          !released &&
          ctx.onLost(nodeRank, "its agent's connection to the controller closed (the agent died or was killed)"),
        () => {},
      );
    });
    await desk.answer(agent.index, sent);
    handles.push(
      controlOf(ctx).handle(nodeRank, spec.node.host, async () => {
        released = true;
        // An agent that is still there answers within moments of its `exit` command; a lost one never.
        const waitMs = Math.max(2000, 2 * heartbeatMs);
        try {
          const done = JSON.parse((await desk.client.get(joinKeys.done(nodeRank), waitMs)).toString()) as JoinDone;
          await records.drained(done.records, 5000);
        } catch {
          // lost, or the store is closing: nothing more will come
        }
        records.stop();
      }),
    );
  }
  return handles;
}
