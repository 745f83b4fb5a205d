/**
 * The controller's view of checkpoint commits while it waits for a save at the scheduler's warning: the
 * step of the first commit newer than the one standing when the wait began (runtime/commits.ts keeps the
 * record). Polled: the wait lasts at most shutdown_grace, and a commit changes a key that already exists,
 * which the store's WAIT (key presence) cannot see.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { latestCommit, type CommitStore } from '../runtime/commits.js';

export const COMMIT_POLL_MS = 200;

/** Resolves with the new step; rejects with the AbortSignal's reason when the wait is over. */
export async function nextCommit(store: CommitStore, signal: AbortSignal, pollMs = COMMIT_POLL_MS): Promise<number> {
  const before = await latestCommit(store);
  for (;;) {
    await sleep(pollMs, undefined, { signal });
    const now = await latestCommit(store);
    if (now.step !== null && (now.step !== before.step || now.time !== before.time)) return now.step;
  }
}
