/**
 * `dtrain agent --stdio` as a process: what the SSH, srun and child spawners start on every node. Reads
 * the hello and spec on stdin (agent-process.ts), runs the node until the controller says exit or goes
 * away, and sets the exit code. bin/dtrain reaches this through dist/agent-bundle.js, without the CLI
 * around it (cli/agent-entry.ts): one agent starts per node of every launch, so its start-up is paid
 * once per host.
 */
import { StartError } from '../util/errors.js';
import { agentSpecProblem } from './agent-contract.js';
import { readSpec, runAgent } from './agent-process.js';
import { processAddon } from './process-tree.js';

export async function runStdioAgent(): Promise<void> {
  // A controller that dies without closing our stdin (SIGKILLed parent on this machine) still takes us down.
  processAddon()?.setParentDeathSignal(15);
  // SIGTERM: our parent died (PDEATHSIG) or someone stops us; SIGHUP: sshd ended the session. Either
  // way the controller is gone: kill the workers and clean up rather than die on the default action.
  const terminated = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGHUP', () => resolve());
  });
  // A refused start must not leave stdin holding the process open until the controller hangs up.
  const { spec, controllerGone } = await readSpec(process.stdin, process.stdout)
    .then((read) => {
      // stdin is whatever started us: a spec without the fields the agent reads is a refused start, not a TypeError
      const problem = agentSpecProblem(read.spec as unknown as Record<string, unknown>);
      if (problem) throw new StartError(`dtrain agent: not a spec dtrain's controller sends: ${problem}`);
      return read;
    })
    .catch((err: unknown) => {
      process.stdin.destroy();
      throw err;
    });
  const gone = Promise.race([controllerGone, terminated]);
  try {
    process.exitCode = await runAgent(spec, { stdout: process.stdout, stderr: process.stderr, controllerGone: gone });
  } finally {
    // stdin was kept open only to notice the controller leaving; it must not keep us alive now, nor after a
    // failed start (a store unreachable behind a cut link, where that EOF may never come).
    process.stdin.destroy();
  }
}
