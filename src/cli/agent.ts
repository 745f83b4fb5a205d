/**
 * `dtrain agent --stdio`: the node agent, started by the controller (ssh, srun, or locally). Internal:
 * src/launch/agent-contract.ts is its whole interface.
 * `dtrain agent --join host:port --secret-file F [--host NAME]`: the same agent started by hand or by a
 * scheduler on every node, joining a `dtrain launch --join-agents N` (src/launch/join/join-contract.ts).
 */
import type { CommandModule } from 'yargs';

interface AgentArgs {
  stdio?: boolean;
  join?: string;
  'secret-file'?: string;
  host?: string;
  timeout?: string;
}

export const agentCommand: CommandModule<object, AgentArgs> = {
  command: 'agent',
  describe: false, // internal: hidden from --help
  builder: (y) =>
    y
      .option('stdio', { type: 'boolean', describe: 'read the spec on stdin, write output records on stdout' })
      .option('join', { type: 'string', describe: "join mode: the controller's store, host:port" })
      .option('secret-file', { type: 'string', describe: 'join mode: the file holding the job key (hex, mode 0600)' })
      .option('host', {
        type: 'string',
        describe: "join mode: this node's name as the config lists it (default: the hostname)",
      })
      .option('timeout', {
        type: 'string',
        describe: 'join mode: how long to keep trying to reach the controller (default 60s)',
      }),
  handler: async (args) => {
    if (args.join !== undefined || args.secretFile !== undefined) return joinHandler(args);
    const { runStdioAgent } = await import('../launch/stdio-agent.js');
    await runStdioAgent();
  },
};

async function joinHandler(args: AgentArgs & { secretFile?: string }): Promise<void> {
  const { UsageError } = await import('../util/errors.js');
  if (args.stdio) throw new UsageError('--stdio and --join are two ways to start an agent: give one');
  if (args.join === undefined) throw new UsageError('--secret-file goes with --join host:port');
  if (args.secretFile === undefined)
    throw new UsageError('--join needs --secret-file F (the job key, shared with the controller)');
  const { parseDuration } = await import('../config/duration.js');
  const timeoutMs = args.timeout === undefined ? 60_000 : parseDuration(args.timeout);
  if (timeoutMs === undefined || timeoutMs <= 0)
    throw new UsageError(`--timeout ${JSON.stringify(args.timeout)}: expected a duration such as 60s or 5m`);
  const { parseJoinAddress, readSecretFile, runJoinAgent } = await import('../launch/join/index.js');
  const { host, port } = parseJoinAddress(args.join);
  const jobKey = readSecretFile(args.secretFile);
  const { constants } = await import('node:os');
  // Stop signals end the node (its workers' whole trees) the way a vanished controller does; before
  // the node runs anything there is nothing to clean up: exit as the signal would.
  let running = false;
  const stopped = new Promise<void>((resolve) => {
    for (const s of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) {
      process.once(s, () => (running ? resolve() : process.exit(128 + constants.signals[s])));
    }
  });
  const onRunning = () => void (running = true);
  process.exitCode = await runJoinAgent({ host, port, jobKey, nodeName: args.host, timeoutMs, stopped, onRunning });
}
