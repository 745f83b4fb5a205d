/**
 * The controller's view of checkpoint commits while it waits for a save at the scheduler's warning: the
 * step of the first commit newer than the one standing when the wait began (runtime/commits.ts keeps the
 * record). Polled: the wait lasts at most shutdown_grace, and a commit changes a key that already exists,
 * which the store's WAIT (key presence) cannot see.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { latestCommit, type CommitStore } from '../runtime/commits.js';

export const COMMIT_POLL_MS = 200;

/**
 * Resolves with the new step. When `signal` aborts (the workers are gone), one last read decides: the step
 * of a commit made since, else the abort's reason is thrown.
 */
export async function nextCommit(store: CommitStore, signal: AbortSignal, pollMs = COMMIT_POLL_MS): Promise<number> {
  const before = await latestCommit(store);
  const newer = async () => {
    const now = await latestCommit(store);
    return now.step !== null && (now.step !== before.step || now.time !== before.time) ? now.step : null;
  };
  while (!signal.aborted) {
    await sleep(pollMs, undefined, { signal }).catch(() => {});
    const step = await newer();
    if (step !== null) return step;
  }
  throw signal.reason;
}
