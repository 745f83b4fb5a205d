/**
 * `nproc_per_node: auto`, settled here and nowhere else. The plan takes what is known when it is made
 * (slots, scheduler.gpus_per_node, this machine's GPUs); where that is nothing (a remote host without
 * slots, an allocation without gpus_per_node) it assumes 1 and marks the count assumed, and the launch
 * settles it from the GPUs found on the node: a Slurm allocation's (launch/slurm), or those a joining
 * agent reports (launch/join).
 */
export interface NprocCount {
  nproc: number;
  /** only a guess until the launch sees the node */
  assumed: boolean;
}

export interface PlanFacts {
  /** the host's slots (or its selected slot list's length) */
  slots?: number;
  /** a placeholder node of a batch allocation */
  fromAllocation: boolean;
  /** scheduler.gpus_per_node */
  gpusPerNode?: number;
  /** this machine's GPU count, when the host is this machine */
  localGpus?: () => number;
}

/** The count for a node the config leaves to auto, when the plan is made. */
export function nprocAtPlan(facts: PlanFacts): NprocCount {
  if (facts.slots !== undefined) return { nproc: facts.slots, assumed: false };
  if (facts.fromAllocation) {
    const gpus = facts.gpusPerNode;
    return gpus && gpus > 0 ? { nproc: gpus, assumed: false } : { nproc: 1, assumed: true };
  }
  if (facts.localGpus) return { nproc: Math.max(1, facts.localGpus()), assumed: false };
  return { nproc: 1, assumed: true };
}

/**
 * At launch: a count the plan only assumed becomes the GPUs found on the node (at least one process);
 * `gpusFound` undefined (nothing found) keeps the assumption. A count the plan knew stays.
 */
export function nprocAtLaunch(
  planned: { nproc: number; nproc_assumed?: boolean },
  gpusFound: number | undefined,
): NprocCount {
  if (!planned.nproc_assumed) return { nproc: planned.nproc, assumed: false };
  if (gpusFound === undefined) return { nproc: planned.nproc, assumed: true };
  return { nproc: Math.max(1, gpusFound), assumed: false };
}
