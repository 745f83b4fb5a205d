/**
 * A Slurm allocation's nodes (a `dtrain submit` batch script, or launch typed inside salloc): the
 * NodeSource (../node-source.ts) whose `resolve` turns a config's placeholder nodes into the allocation's
 * hosts (index.ts applySlurmAllocation) and whose `start` runs each node's agent in its own srun step
 * (remote-spawner.ts). A config that lists its own nodes keeps them: `allocation` stays unset and the
 * launch reaches those nodes as it would outside Slurm.
 */
import type { NodeSource } from '../node-source.js';
import type { SlurmAllocation } from './allocation.js';
import { applySlurmAllocation } from './index.js';

export interface SlurmNodeSource extends NodeSource {
  /** set by resolve when the job's nodes are the allocation's */
  readonly allocation: SlurmAllocation | undefined;
}

export function slurmNodeSource(
  env: NodeJS.ProcessEnv = process.env,
  err: NodeJS.WritableStream = process.stderr,
): SlurmNodeSource {
  let allocation: SlurmAllocation | undefined;
  return {
    kind: 'slurm',
    get allocation() {
      return allocation;
    },
    async resolve(loaded, opts) {
      const applied = await applySlurmAllocation(loaded.config, env, { dryRun: opts.dryRun });
      allocation = applied.allocation;
      return { config: applied.config, warnings: applied.warnings };
    },
    async start(specs, ctx) {
      if (!allocation) throw new Error('the Slurm node source starts agents only for an allocation it resolved');
      const { startSrunNodes } = await import('./remote-spawner.js');
      return startSrunNodes(ctx.config, allocation, specs, ctx, err, env);
    },
    close: () => Promise.resolve(),
  };
}
