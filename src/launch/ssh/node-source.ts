/**
 * Nodes listed in the config (nodes or hostfile) that are not this machine, reached over SSH: the
 * NodeSource (../node-source.ts) over remote-spawner.ts. Once the plan exists, `prepare` dials the first
 * nodes (pre-dial.ts) while the rest of the launch loads; the first `start` takes those connections, and
 * any later one (nodes added while the job runs) dials afresh. ssh2 loads only when agents start.
 */
import type { NodeSource } from '../node-source.js';
import { PreDials } from './pre-dial.js';
import { sshSettingsFromConfig } from './target.js';

/** `err`: where agents' own diagnostics go, one line each with the host in front. */
export function sshNodeSource(err: NodeJS.WritableStream = process.stderr): NodeSource {
  let preDialed: PreDials | undefined;
  return {
    kind: 'ssh',
    resolve: (loaded) => Promise.resolve({ config: loaded.config, warnings: [] }),
    async prepare(plan, config) {
      preDialed?.close();
      preDialed = PreDials.start(
        plan.nodes.filter((n) => !n.local),
        sshSettingsFromConfig(config.ssh),
      );
      // net.connect dials on the next tick, and the module loading that follows runs as one chain of
      // promise jobs, during which no tick runs: yield once so that the connections leave now.
      await new Promise<void>((resolve) => setImmediate(resolve));
    },
    async start(specs, ctx) {
      const dials = preDialed;
      preDialed = undefined;
      const { startSshNodes } = await import('./remote-spawner.js');
      return startSshNodes(ctx.config, specs, ctx, err, dials);
    },
    close() {
      preDialed?.close();
      preDialed = undefined;
      return Promise.resolve();
    },
  };
}
