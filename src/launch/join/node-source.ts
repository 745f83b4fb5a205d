/**
 * Join mode's NodeSource (../node-source.ts): `dtrain launch <config> --join-agents N --secret-file F`.
 * `resolve` listens on rendezvous.port (29400, torchrun's, when auto: the agents must know it in
 * advance), waits for N agents and makes the job's nodes from those that joined (joined-nodes.ts);
 * `start` answers each agent with its spec (join-spawner.ts). The store is the source's own, lent to
 * the controller: the agents registered with it before the plan existed. The job key is the secret
 * file's: the agents read the same file.
 *
 * An elastic job keeps the desk open to agents that join while it runs (late agents): one that joins as a
 * listed spare, or as a node that was lost, is that node id (plan/elastic.ts nodesById decides them) and is
 * handed to the membership, which takes it in at the next commit as it does a rejoining node, or keeps it
 * as a spare. Any other late agent is told why not and exits 3.
 */
import { DEFAULT_JOIN_PORT } from '../../batch/batch-job.js';
import { formatDuration } from '../../config/duration.js';
import type { LoadedConfig } from '../../config/types.js';
import { StoreServer } from '../../store/index.js';
import { UsageError } from '../../util/errors.js';
import type { NodeArrivals, NodeSource } from '../node-source.js';
import { nodesById } from '../../plan/elastic.js';
import { ClosedConnections, openFrontDoor, type FrontDoor } from './front-door.js';
import { startJoinedNodes } from './join-spawner.js';
import { joinedNodes, sameHost, type JoinedAgent } from './joined-nodes.js';
import { JoinDesk } from './rendezvous.js';

export { DEFAULT_JOIN_PORT };

export interface JoinSourceOptions {
  /** how many agents make the job (--join-agents) */
  agents: number;
  jobKey: Buffer;
  err?: NodeJS.WritableStream;
}

/** Was the host list written in the config (nodes or hostfile), rather than a placeholder or the default? */
export function hostsListed(loaded: LoadedConfig): boolean {
  return loaded.raw.nodes !== undefined || loaded.raw.hostfile !== undefined;
}

export function joinNodeSource(opts: JoinSourceOptions): NodeSource {
  const err = opts.err ?? process.stderr;
  let server: StoreServer | undefined;
  let front: FrontDoor | undefined;
  let desk: JoinDesk | undefined;
  /** node id → the agent that runs it (the latest that joined as it) */
  const agentOf = new Map<number, JoinedAgent>();
  const closedConnections = new ClosedConnections();
  let absent: number[] = [];
  let membership: NodeArrivals | undefined;
  return {
    kind: 'join',
    get arrivals() {
      return { absent, connect: (m: NodeArrivals) => void (membership = m) };
    },
    get store() {
      return server ? { server, jobKey: opts.jobKey } : undefined;
    },
    async resolve(loaded) {
      const config = loaded.config;
      const listed = hostsListed(loaded);
      // an elastic job may start on fewer of its listed hosts (min_nodes at least): the rest join later
      const fewest = config.elastic ? Math.min(config.elastic.min_nodes, config.nodes.length) : config.nodes.length;
      if (listed && (opts.agents < fewest || opts.agents > config.nodes.length)) {
        throw new UsageError(
          `--join-agents ${opts.agents}, but the config lists ${plural(config.nodes.length, 'node')} ` +
            `(${config.nodes.map((n) => n.host).join(', ')})` +
            (config.elastic ? `; an elastic job starts on elastic.min_nodes (${fewest}) to all of them` : ''),
        );
      }
      const rawData = (loaded.raw.parallelism as { data?: unknown } | undefined)?.data;
      const port = config.rendezvous.port === 'auto' ? DEFAULT_JOIN_PORT : config.rendezvous.port;
      // Bounded: strangers may fail handshakes for as long as the job runs.
      const failedAuth = { count: 0, addresses: [] as string[] };
      // The store listens privately; agents come in through the front door on the rendezvous port.
      server = await StoreServer.start({
        host: '127.0.0.1',
        port: 0,
        jobKey: opts.jobKey,
        onViolation: (_reason, remote) => {
          const addr = remote.replace(/:\d+$/, '').replace(/^::ffff:/, '');
          failedAuth.count++;
          if (failedAuth.addresses.length < 8 && !failedAuth.addresses.includes(addr)) failedAuth.addresses.push(addr);
        },
      });
      const store = server;
      front = await openFrontDoor({
        host: config.rendezvous.addr !== 'auto' ? config.rendezvous.addr : '0.0.0.0',
        port,
        serve: (socket, remote) => store.serveStream(socket, remote),
        onClose: (name) => closedConnections.closedNow(name),
      });
      desk = await JoinDesk.open(store, opts.jobKey);
      err.write(
        `dtrain: waiting up to ${formatDuration(config.rendezvous.timeout)} for ${plural(opts.agents, 'agent')} ` +
          `to join on port ${front.port}\n`,
      );
      const agents = await desk.waitFor(opts.agents, config.rendezvous.timeout, () => failedAuth);
      const job = joinedNodes({
        config,
        hostsListed: listed,
        dataAuto: rawData === undefined || rawData === 'auto',
        agents,
      });
      job.agents.forEach((a, id) => agentOf.set(id, a));
      const every = nodesById(job.config);
      absent = every.map((_, id) => id).filter((id) => id >= job.agents.length);
      desk.admitLate((agent) => {
        const host = agent.reg.host;
        if (!config.elastic) return `the job already has its ${opts.agents} agents (this one joined as ${host})`;
        if (!listed)
          return (
            `the job is running; an agent joins it late only as a host the config lists ` +
            `(a spare, or a node that was lost): this one joined as ${host}`
          );
        const id = every.findIndex((n) => sameHost(n.host, host));
        if (id < 0)
          return `${host} is not one of the config's hosts (${every.map((n) => n.host).join(', ')}), spares included`;
        if (!membership) return 'the job is still starting: join again in a moment';
        const before = agentOf.get(id);
        agentOf.set(id, agent); // before `arrived`: taking it in starts the node at once
        const why = membership.arrived(id);
        if (why !== undefined) {
          if (before) agentOf.set(id, before);
          else agentOf.delete(id);
        }
        return why;
      });
      err.write(
        `dtrain: joined: ${job.config.nodes.map((n, i) => `${n.host} (node ${i}, ${n.nproc} proc)`).join(', ')}\n`,
      );
      return { config: job.config, warnings: [] };
    },
    start(specs, ctx) {
      if (!desk) throw new Error('the join node source starts agents only once they joined (resolve)');
      return startJoinedNodes(desk, (id) => agentOf.get(id), specs, ctx, closedConnections);
    },
    async close(failure) {
      // the job did not start, or not for every agent (a fixed master.port taken...): tell the rest
      if (failure) await desk?.refuseAll(failure.message);
      await desk?.close();
      await front?.close();
      await server?.close();
    },
  };
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}
