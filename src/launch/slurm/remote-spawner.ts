/**
 * Starting nodes inside a Slurm allocation, for node-source.ts (the Slurm NodeSource): every node
 * that is not this machine gets `dtrain agent --stdio` in its own srun step, its spec on stdin (the only
 * place the job key travels, in a spec sealed for that agent: job-key-seal.ts), its output records relayed
 * to the console, and a store-driven NodeHandle for the supervisor. Agents dial the controller's store
 * directly (allocations share a network; there is no SSH to forward through). A step that ends early loses
 * its node at once, before heartbeats would.
 */
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { JobConfig } from '../../config/types.js';
import type { AgentSpec } from '../agent-contract.js';
import { controlOf, type StartContext } from '../node-source.js';
import { relayRecords } from '../store-node.js';
import type { NodeHandle } from '../supervisor.js';
import { within } from '../../util/within.js';
import type { SlurmAllocation } from './allocation.js';
import { startSrunAgents } from './srun-spawner.js';

/** This installation's dtrain, as the compute nodes run it (clusters share the file system). */
export function localDtrainArgv(): string[] {
  return [process.execPath, fileURLToPath(new URL('../../../bin/dtrain', import.meta.url))];
}

export async function startSrunNodes(
  config: JobConfig,
  allocation: SlurmAllocation,
  specs: AgentSpec[],
  ctx: StartContext,
  err: NodeJS.WritableStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): Promise<NodeHandle[]> {
  // the name this machine gives itself: what the nodes resolve (SLURMD_NODENAME is unset on a login node)
  const storeHost = config.rendezvous.addr !== 'auto' ? config.rendezvous.addr : hostname();
  const srunCpus = Number(env.SRUN_CPUS_PER_TASK) || allocation.cpusPerTask;
  const agents = await startSrunAgents({
    nodes: specs.map((s) => ({ node_rank: s.node.node_rank, host: s.node.host })),
    workdir: config.workdir,
    dtrain: localDtrainArgv(),
    helloTimeoutMs: config.rendezvous.timeout,
    ...(srunCpus ? { cpusPerTask: srunCpus } : {}),
    ...(config.elastic ? { elastic: true } : {}),
    env,
  });
  const bySpec = new Map(specs.map((s) => [s.node.node_rank, s]));
  return agents.map((agent): NodeHandle => {
    // srun's stdin crosses the network in clear: the whole spec (job key, workers' env) goes sealed for
    // this agent only
    const spec = {
      ...bySpec.get(agent.node.node_rank)!,
      store: { kind: 'tcp', host: storeHost, port: ctx.store.port },
    };
    const sealed = agent.seal(Buffer.from(JSON.stringify(spec)));
    agent.stdin.write(JSON.stringify({ type: 'sealed_spec', sealed }) + '\n');
    relayRecords(agent.stdout, ctx.console);
    createInterface({ input: agent.stderr }).on('line', (line) => err.write(`[${agent.node.host}] ${line}\n`));
    let released = false;
    void agent.lost.then((why) => {
      if (!released) ctx.onLost(agent.node.node_rank, `${agent.node.host}: ${why}`);
    });
    return controlOf(ctx).handle(agent.node.node_rank, agent.node.host, async () => {
      released = true;
      // Every worker has been reported by now, so EOF (which also ends an agent still waiting on
      // stdin after `exit`) costs nothing; a step that lingers past 5 s is signalled through srun.
      agent.stdin.end();
      await within(agent.exited, 5000);
      agent.close(0);
    });
  });
}
