/**
 * `dtrain launch <config> --join-agents N --secret-file F`: the controller of a join-mode job. Listens on
 * rendezvous.port (29400, torchrun's, when auto: the agents must know it in advance), waits for N agents,
 * makes the plan from the nodes that joined, then runs the job through launchJob like any other, with
 * the joined agents as its remote nodes. The job key is the secret file's: the agents read the same file.
 */
import { DEFAULT_JOIN_PORT } from '../../batch/batch-job.js';
import { formatDuration } from '../../config/duration.js';
import type { LoadedConfig } from '../../config/types.js';
import { buildPlan } from '../../plan/index.js';
import { StoreServer } from '../../store/index.js';
import { UsageError } from '../../util/errors.js';
import { launchJob } from '../controller.js';
import type { LaunchSummary } from '../summary.js';
import { ClosedConnections, openFrontDoor, type FrontDoor } from './front-door.js';
import { joinSpawner } from './join-spawner.js';
import { joinedNodes } from './joined-nodes.js';
import { JoinDesk } from './rendezvous.js';

export { DEFAULT_JOIN_PORT };

export interface JoinLaunchRequest {
  loaded: LoadedConfig;
  /** how many agents make the job (--join-agents) */
  agents: number;
  jobKey: Buffer;
  json: boolean;
  /** arguments after `--`, appended to every worker's command */
  extraArgs: string[];
  err?: NodeJS.WritableStream;
}

/** Was the host list written in the config (nodes or hostfile), rather than a placeholder or the default? */
export function hostsListed(loaded: LoadedConfig): boolean {
  return loaded.raw.nodes !== undefined || loaded.raw.hostfile !== undefined;
}

export async function launchJoined(req: JoinLaunchRequest): Promise<LaunchSummary> {
  const { loaded } = req;
  const config = loaded.config;
  const err = req.err ?? process.stderr;
  const listed = hostsListed(loaded);
  if (listed && config.nodes.length !== req.agents) {
    throw new UsageError(
      `--join-agents ${req.agents}, but the config lists ${config.nodes.length} node${config.nodes.length === 1 ? '' : 's'} (${config.nodes.map((n) => n.host).join(', ')})`,
    );
  }
  const rawData = (loaded.raw.parallelism as { data?: unknown } | undefined)?.data;
  const port = config.rendezvous.port === 'auto' ? DEFAULT_JOIN_PORT : config.rendezvous.port;
  // Bounded: strangers may fail handshakes for as long as the job runs.
  const failedAuth = { count: 0, addresses: [] as string[] };
  // The store listens privately; agents come in through the front door on the rendezvous port.
  const server = await StoreServer.start({
    host: '127.0.0.1',
    port: 0,
    jobKey: req.jobKey,
    onViolation: (_reason, remote) => {
      const addr = remote.replace(/:\d+$/, '').replace(/^::ffff:/, '');
      failedAuth.count++;
      if (failedAuth.addresses.length < 8 && !failedAuth.addresses.includes(addr)) failedAuth.addresses.push(addr);
    },
  });
  const closedConnections = new ClosedConnections();
  let front: FrontDoor | undefined;
  let desk: JoinDesk | undefined;
  try {
    front = await openFrontDoor({
      host: config.rendezvous.addr !== 'auto' ? config.rendezvous.addr : '0.0.0.0',
      port,
      serve: (socket, remote) => server.serveStream(socket, remote),
      onClose: (name) => closedConnections.closedNow(name),
    });
    desk = await JoinDesk.open(server, req.jobKey);
    err.write(
      `dtrain: waiting up to ${formatDuration(config.rendezvous.timeout)} for ${req.agents} agent${req.agents === 1 ? '' : 's'} to join on port ${front.port}\n`,
    );
    let joined;
    try {
      const agents = await desk.waitFor(req.agents, config.rendezvous.timeout, () => failedAuth);
      joined = joinedNodes({
        config,
        hostsListed: listed,
        dataAuto: rawData === undefined || rawData === 'auto',
        agents,
      });
    } catch (e) {
      await desk.refuseAll((e as Error).message);
      throw e;
    }
    err.write(
      `dtrain: joined: ${joined.config.nodes.map((n, i) => `${n.host} (node ${i}, ${n.nproc} proc)`).join(', ')}\n`,
    );
    const plan = buildPlan({ ...loaded, config: joined.config }, { extraArgs: req.extraArgs });
    const remote = joinSpawner(desk, joined.agents, config.heartbeat.interval, closedConnections);
    try {
      return await launchJob({
        config: joined.config,
        plan,
        json: req.json,
        remote,
        store: { server, jobKey: req.jobKey },
      });
    } catch (e) {
      // failed before an agent got its spec (a fixed master.port taken...): tell the rest
      await desk.refuseAll((e as Error).message);
      throw e;
    }
  } finally {
    await desk?.close();
    await front?.close();
    await server.close();
  }
}
