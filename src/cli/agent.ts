/**
 * `dtrain agent --stdio`: the node agent, started by the controller (ssh, srun, or locally). Internal:
 * src/launch/agent-contract.ts is its whole interface.
 */
import type { CommandModule } from 'yargs';

export const agentCommand: CommandModule<object, { stdio?: boolean }> = {
  command: 'agent',
  describe: false as unknown as string, // internal: hidden from --help
  builder: (y) => y.option('stdio', { type: 'boolean', describe: 'read the spec on stdin, write output records on stdout' }),
  handler: async () => {
    const { readSpec, runAgent } = await import('../launch/agent-process.js');
    const { processAddon } = await import('../launch/process-tree.js');
    // A controller that dies without closing our stdin (SIGKILLed parent on this machine) still takes us down.
    processAddon()?.setParentDeathSignal(15);
    // SIGTERM: our parent died (PDEATHSIG) or someone stops us; SIGHUP: sshd ended the session. Either
    // way the controller is gone: kill the workers and clean up rather than die on the default action.
    const terminated = new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGHUP', () => resolve());
    });
    const { spec, controllerGone } = await readSpec(process.stdin, process.stdout);
    const gone = Promise.race([controllerGone, terminated]);
    process.exitCode = await runAgent(spec, { stdout: process.stdout, stderr: process.stderr, controllerGone: gone });
    // stdin was kept open only to notice the controller leaving; it must not keep us alive now.
    process.stdin.destroy();
  },
};
