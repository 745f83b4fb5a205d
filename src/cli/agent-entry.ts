/**
 * bin/dtrain's way in for `dtrain agent --stdio`, the constant command every SSH, srun and child node runs
 * (cli/entry.ts picks it). The agent alone, from its own bundle (dist/agent-bundle.js, about half the CLI's),
 * with the CLI's exit point but none of its parsing: each launch starts one agent per host, and on hosts
 * that share cores every millisecond of start-up counts once per host.
 */
import { runStdioAgent } from '../launch/stdio-agent.js';
import { installProcessHooks, report } from './exit-point.js';

export async function agentMain(): Promise<void> {
  installProcessHooks();
  try {
    await runStdioAgent();
  } catch (err) {
    process.exitCode = report(err, false);
  }
}
