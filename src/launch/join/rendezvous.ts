/**
 * The controller's side of the join: waits up to rendezvous.timeout for N agents to register in the
 * store, refuses agents it cannot use (another dtrain version, one too many), and answers every agent
 * it registered: its AgentSpec, or why the job could not start. Agents that register after the first N
 * (late agents) are handed to `admitLate`'s judge: an elastic job may take one in while it runs. Holds
 * one store connection of its own (the "desk") for the whole job, which the join spawner also uses to
 * relay output and wait for agents.
 */
import { formatDuration } from '../../config/duration.js';
import { StoreClient, type StoreServer } from '../../store/index.js';
import { StartError } from '../../util/errors.js';
import { packageVersion } from '../../util/version.js';
import { getForever } from '../local-node.js';
import { joinContractVersion, joinKeys, type JoinRefusal, type JoinRegistration } from './join-contract.js';
import type { JoinedAgent } from './joined-nodes.js';

export class JoinDesk {
  private readonly answered = new Set<number>();
  private closed = false;
  private judge: ((agent: JoinedAgent) => string | undefined) | undefined;

  private constructor(readonly client: StoreClient) {}

  static async open(server: StoreServer, jobKey: Buffer): Promise<JoinDesk> {
    const any = server.address === '0.0.0.0' || server.address === '::' || server.address === '';
    const client = await StoreClient.connectTcp({
      host: any ? '127.0.0.1' : server.address,
      port: server.port,
      jobKey,
      label: 'store (join desk)',
    });
    return new JoinDesk(client);
  }

  /**
   * The first `count` registrations, in join order, or a StartError (exit 3) when fewer came within
   * `timeoutMs`. `failedAuth` counts the connections that failed authentication and names (some of) their
   * addresses, for the timeout's message: an agent with another secret is among them, or a stranger.
   * Registrations after the first `count` go to `admitLate`'s judge (refused until there is one).
   */
  async waitFor(
    count: number,
    timeoutMs: number,
    failedAuth: () => { count: number; addresses: string[] },
  ): Promise<JoinedAgent[]> {
    const end = Date.now() + timeoutMs;
    const agents: JoinedAgent[] = [];
    for (let index = 0; index < count; index++) {
      let raw: Buffer;
      try {
        raw = await this.client.get(joinKeys.agent(index), Math.max(1, end - Date.now()));
      } catch (err) {
        if ((err as Error).name !== 'StoreTimeoutError') throw err;
        const joined = agents.length ? ` (${agents.map((a) => a.reg.host).join(', ')})` : '';
        const auth = failedAuth();
        throw new StartError(
          `only ${agents.length} of ${count} agents joined within ${formatDuration(timeoutMs)}${joined}` +
            (auth.count
              ? `; ${auth.count} connection(s) failed authentication (from ${auth.addresses.join(', ')}):` +
                ' another secret file?'
              : '') +
            '; start `dtrain agent --join <this host>:<port> --secret-file <file>` on every node, or raise ' +
            'rendezvous.timeout',
        );
      }
      const reg = parseRegistration(raw);
      agents.push({ index, reg });
      if (reg.version !== packageVersion() || reg.contract !== joinContractVersion) {
        throw new StartError(
          `dtrain version mismatch: the controller runs ${packageVersion()}, the agent on ${reg.host} runs ` +
            `${reg.version}; install the same version on every node`,
        );
      }
    }
    void this.watchLate(count);
    return agents;
  }

  /**
   * Who judges the agents that register after the first N, for as long as the desk is open: `judge` says
   * why one is refused (the agent prints it and exits 3), or nothing, and the agent waits for its spec.
   */
  admitLate(judge: (agent: JoinedAgent) => string | undefined): void {
    this.judge = judge;
  }

  /** Whether agent `index` was answered with a spec (an agent runs one node, once). */
  wasAnswered(index: number): boolean {
    return this.answered.has(index);
  }

  /** Sends agent `index` its part of the job (an AgentSpec, as JSON). */
  async answer(index: number, spec: object): Promise<void> {
    this.answered.add(index);
    await this.client.set(joinKeys.spec(index), JSON.stringify(spec));
  }

  /** Tells every registered agent not yet answered why the job is not starting, so it exits 3 at once. */
  async refuseAll(message: string): Promise<void> {
    let registered = 0;
    try {
      registered = await this.client.add(joinKeys.count, 0);
    } catch {
      return;
    }
    const refusal: JoinRefusal = { type: 'refused', message: `the job could not start: ${message}` };
    const refused: number[] = [];
    for (let i = 0; i < registered; i++) if (!this.answered.has(i)) refused.push(i);
    await Promise.all(refused.map((i) => this.client.set(joinKeys.spec(i), JSON.stringify(refusal)).catch(() => {})));
    // An agent's wait for its answer can reach the store a moment after its registration: give the
    // refused ones a moment to read theirs before the store closes under them.
    if (refused.length) await this.client.wait(refused.map(joinKeys.refusalRead), 2000).catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client.close().catch(() => {});
  }

  private async watchLate(count: number): Promise<void> {
    for (let index = count; !this.closed; index++) {
      let raw: Buffer;
      try {
        raw = await getForever(this.client, joinKeys.agent(index), 5000);
      } catch {
        return; // the desk closed
      }
      let why: string | undefined;
      try {
        const reg = parseRegistration(raw);
        if (reg.version !== packageVersion() || reg.contract !== joinContractVersion)
          why = `dtrain version mismatch: the controller runs ${packageVersion()}, this agent ${reg.version}`;
        else
          why = this.judge
            ? this.judge({ index, reg })
            : `the job already has its ${count} agents (this one joined as ${reg.host})`;
      } catch (err) {
        why = (err as Error).message;
      }
      if (why === undefined) continue;
      const refusal: JoinRefusal = { type: 'refused', message: why };
      await this.client.set(joinKeys.spec(index), JSON.stringify(refusal)).catch(() => {});
    }
  }
}

function parseRegistration(raw: Buffer): JoinRegistration {
  let reg: Partial<JoinRegistration>;
  try {
    reg = JSON.parse(raw.toString()) as Partial<JoinRegistration>;
  } catch {
    throw new StartError('a join registration is not JSON (a client of another program on the rendezvous port?)');
  }
  if (reg.type !== 'join' || typeof reg.host !== 'string' || typeof reg.version !== 'string') {
    throw new StartError(`a join registration lacks its type, host or version: ${raw.toString().slice(0, 120)}`);
  }
  return {
    gpus: 0,
    local_addr: '',
    local_port: 0,
    store_addr: '',
    hostname: reg.host,
    pid: 0,
    contract: 0,
    ...reg,
  } as JoinRegistration;
}
