/**
 * shutdown_grace must fit inside Slurm's KillWait: on scancel or the time limit Slurm sends SIGTERM,
 * waits KillWait, then SIGKILLs everything, so a longer grace is cut short and workers lose their
 * chance to checkpoint.
 */
import { formatDuration } from '../config/duration.js';

/**
 * What to do about the grace: nothing when it fits; when the config left shutdown_grace at its default,
 * a shorter grace for the in-job launch (KillWait less 5 s, so the controller's SIGKILL lands first);
 * when the user chose it, a warning (their number may be deliberate, e.g. a cluster that raises KillWait).
 */
export function fitGrace(
  shutdownGraceMs: number,
  explicit: boolean,
  killWaitMs: number,
  assumed: boolean,
): { warning?: string; overrideMs?: number } {
  if (shutdownGraceMs < killWaitMs) return {};
  if (!explicit) return { overrideMs: Math.max(1000, killWaitMs - 5000) };
  return { warning: killWaitWarning(shutdownGraceMs, killWaitMs, assumed) };
}

export function killWaitWarning(shutdownGraceMs: number, killWaitMs: number, assumed: boolean): string | undefined {
  if (shutdownGraceMs < killWaitMs) return undefined;
  const kw = `${assumed ? "Slurm's default " : "the cluster's "}KillWait (${formatDuration(killWaitMs)})`;
  return (
    `shutdown_grace (${formatDuration(shutdownGraceMs)}) is not below ${kw}: Slurm will SIGKILL the ` +
    `workers before the grace ends; lower shutdown_grace`
  );
}
