/**
 * From the agents that joined to the job's nodes: which agent is which node rank, how many processes
 * each runs, and MASTER_ADDR. Pure (the rendezvous hands it the registrations), so the unit tests pin the
 * rules down:
 *   - hosts listed in the config (nodes/hostfile): node ranks follow the list; every listed host must
 *     join exactly once and no other host may (a stray agent is an error, not a silent extra node);
 *   - no hosts listed (a scheduler section, or none): join order, except that the controller's own
 *     machine, when it also runs an agent, is node 0 (its agent joins over loopback and so its address
 *     is the one the others already reach the controller at);
 *   - nproc_per_node auto: listed slots, else the GPUs the agent reported (config/nproc-auto.ts);
 *   - data: auto is recomputed for the joined world; a fixed data size must still fit;
 *   - elastic with listed hosts: the job may start without some of them (--join-agents N ≥ min_nodes); the
 *     listed hosts no agent joined as yet go first among the spares (node ids after the joined nodes:
 *     plan/elastic.ts), and the data size at full strength counts them (auto) or must fit them (fixed).
 */
import { isLocalHost } from '../../config/local-host.js';
import { nprocAtLaunch } from '../../config/nproc-auto.js';
import type { JobConfig, NodeConfig } from '../../config/types.js';
import { StartError, UsageError } from '../../util/errors.js';
import type { JoinRegistration } from './join-contract.js';

export interface JoinedAgent {
  /** its registration index (ctl/join/agent/<index>) */
  index: number;
  reg: JoinRegistration;
}

export interface JoinedJob {
  config: JobConfig;
  /** node rank → the agent that runs it */
  agents: JoinedAgent[];
}

export interface JoinedNodesInput {
  config: JobConfig;
  /** true when the config lists its hosts (nodes or hostfile); false for scheduler placeholders or the default */
  hostsListed: boolean;
  /** the config's parallelism.data as written: 'auto' (or absent) is recomputed for the joined world */
  dataAuto: boolean;
  agents: JoinedAgent[];
  /** is this address/name the controller's machine (default: config/local-host.ts) */
  isLocal?: (hostOrAddr: string) => boolean;
}

/** Same host, allowing a short name on one side and the fully qualified one on the other. */
export function sameHost(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x === y || x.split('.')[0] === y || y.split('.')[0] === x;
}

export function joinedNodes(input: JoinedNodesInput): JoinedJob {
  const { config } = input;
  const isLocal = input.isLocal ?? isLocalHost;
  const byListed = input.hostsListed ? inListedOrder(config, input.agents) : undefined;
  const agents = byListed ? byListed.filter((a) => a !== undefined) : inJoinOrder(input.agents, isLocal);
  const listedOf = byListed ? byListed.map((a, i) => (a ? i : -1)).filter((i) => i >= 0) : [];
  // listed hosts no agent joined as (elastic only: otherwise each joined): spares until their agents come
  const notYet = byListed ? config.nodes.filter((_, i) => !byListed[i]).map((n) => ({ ...n, local: false })) : [];
  if (notYet.length && !config.elastic)
    throw new StartError(`no agent joined as ${notYet.map((n) => n.host).join(', ')}: every listed host must join`);
  const nodes: NodeConfig[] = agents.map(({ reg }, rank) => {
    const listed = input.hostsListed ? config.nodes[listedOf[rank]] : undefined;
    // a fixed nproc_per_node, or a listed node's known count, stands; otherwise the agent's GPUs decide
    const planned =
      typeof config.nproc_per_node === 'number'
        ? { nproc: config.nproc_per_node }
        : (listed ?? { nproc: 1, nproc_assumed: true });
    const { nproc } = nprocAtLaunch(planned, reg.gpus);
    // joined nodes are never started by the controller, even the one on its own machine
    const node: NodeConfig = { host: listed?.host ?? reg.host, nproc, local: false };
    if (listed?.slots !== undefined) node.slots = listed.slots;
    if (listed?.cuda_visible_devices !== undefined) node.cuda_visible_devices = listed.cuda_visible_devices;
    return node;
  });

  const par = config.parallelism;
  const world = [...nodes, ...notYet].reduce((n, node) => n + node.nproc, 0);
  const perReplica = par.tensor * par.pipeline;
  const perNode = [...nodes, ...notYet].map((n) => `${n.host}: ${n.nproc}`).join(', ');
  if (world % perReplica !== 0 || (!input.dataAuto && par.data * perReplica !== world)) {
    throw new UsageError(
      `the joined nodes run ${world} process${world === 1 ? '' : 'es'} (${perNode}), which ` +
        (input.dataAuto
          ? `tensor × pipeline = ${perReplica} does not divide`
          : `does not match data × tensor × pipeline = ${par.data} × ${par.tensor} × ${par.pipeline}`),
    );
  }
  const data = world / perReplica;
  const master = {
    ...config.master,
    addr: config.master.addr !== 'auto' ? config.master.addr : masterAddr(agents, isLocal),
  };
  // spares are joined nodes too when their agents come: never started by the controller
  const elastic = config.elastic && {
    ...config.elastic,
    spares: [...notYet, ...config.elastic.spares.map((n) => ({ ...n, local: false }))],
  };
  return { config: { ...config, nodes, parallelism: { ...par, data }, master, ...(elastic && { elastic }) }, agents };
}

/** Each listed node's agent (undefined where none joined as it: an elastic job starting without it). */
function inListedOrder(config: JobConfig, agents: JoinedAgent[]): (JoinedAgent | undefined)[] {
  const byNode: (JoinedAgent | undefined)[] = config.nodes.map(() => undefined);
  for (const a of agents) {
    const i = config.nodes.findIndex((n) => sameHost(n.host, a.reg.host));
    if (i < 0) {
      throw new StartError(
        `an agent joined as ${a.reg.host} (pid ${a.reg.pid}), which is not one of the config's hosts ` +
          `(${config.nodes.map((n) => n.host).join(', ')}); ` +
          'give it --host <listed name>, or list it',
      );
    }
    if (byNode[i])
      throw new StartError(`two agents joined as ${config.nodes[i].host} (pids ${byNode[i].reg.pid} and ${a.reg.pid})`);
    byNode[i] = a;
  }
  return byNode;
}

function inJoinOrder(agents: JoinedAgent[], isLocal: (h: string) => boolean): JoinedAgent[] {
  const sorted = [...agents].sort((a, b) => a.index - b.index);
  const own = sorted.findIndex((a) => isLocal(a.reg.host));
  if (own > 0) sorted.unshift(...sorted.splice(own, 1));
  return sorted;
}

/**
 * Node 0's address as the other nodes reach it. On the controller's machine (its agent dialled over
 * loopback or this machine's own address) that is the address the other agents dialled the controller
 * at; elsewhere it is the address node 0's agent connects from. All on one machine: loopback.
 */
export function masterAddr(agents: JoinedAgent[], isLocal: (h: string) => boolean): string {
  const first = agents[0].reg;
  const addr = plainAddr(first.local_addr);
  if (!isLocal(addr)) return addr;
  const remote = agents.find((a) => !isLocal(plainAddr(a.reg.local_addr)));
  return remote ? plainAddr(remote.reg.store_addr) : '127.0.0.1';
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`. */
function plainAddr(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}
