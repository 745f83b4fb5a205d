/**
 * execa, loaded on first use. With its dependencies it is about 150 modules (some 100 ms of a launch on a
 * 2-core machine), and most runs never call a scheduler command: `dtrain launch` outside Slurm, the agent.
 */
export async function execaLazy(): Promise<typeof import('execa').execa> {
  return (await import('execa')).execa;
}
