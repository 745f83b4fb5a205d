/**
 * shutdown_grace must fit inside Slurm's KillWait: on scancel or the time limit Slurm sends SIGTERM,
 * waits KillWait, then SIGKILLs everything, so a longer grace is cut short and workers lose their
 * chance to checkpoint.
 */
import { formatDuration } from '../config/duration.js';

export function killWaitWarning(shutdownGraceMs: number, killWaitMs: number, assumed: boolean): string | undefined {
  if (shutdownGraceMs < killWaitMs) return undefined;
  const kw = `${assumed ? "Slurm's default " : "the cluster's "}KillWait (${formatDuration(killWaitMs)})`;
  return `shutdown_grace (${formatDuration(shutdownGraceMs)}) is not below ${kw}: Slurm will SIGKILL the workers before the grace ends; lower shutdown_grace`;
}
