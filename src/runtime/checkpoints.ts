/**
 * dist.checkpoint: the worker's side of the commit contract (commits.ts). The runtime talks to the store
 * through the agent's proxy (DTRAIN_STORE) with a connection of its own, opened per call and closed after
 * it: init() pays nothing, and no open socket keeps a worker alive that forgets dist.close().
 *
 * commit(step) is collective over the world: every rank arrives at a store barrier (so every rank's save
 * of the step is done), world rank 0 records the commit with compare-and-set, tagged with this process's
 * attempt, and publishes the answer; every rank reads the same answer. A refused commit (the attempt has
 * ended) throws CommitRefusedError on every rank. When the controller asked to resize, every rank exits
 * with RESIZE_EXIT_CODE right after the commit (or, with `onResize: 'return'`, learns it from the result).
 *
 * The attempt is the proxy's answer to WHOAMI on the first call, then pinned: a process that outlives its
 * attempt keeps committing as that attempt, and is refused.
 *
 * Store keys (under the worker's attempt prefix; the record itself is `job/commit`):
 *   checkpoint/commit/<n>   barrier of the process's n-th commit
 *   checkpoint/answer/<n>   rank 0's answer to it: JSON {step, committed, resize, why}
 */
import type { StoreClient } from '../store/client.js';
import { commitStep, latestCommit, RESIZE_EXIT_CODE } from './commits.js';
import type { Checkpoints, CommitOptions, CommitResult } from './types.js';
import type { WorkerEnv } from './worker-env.js';

/** The job's controller ended this process's attempt: its commits no longer count. */
export class CommitRefusedError extends Error {
  override name = 'CommitRefusedError';
}

interface Answer {
  step: number;
  committed: boolean;
  resize: boolean;
  why?: string;
}

export function createCheckpoints(
  w: WorkerEnv,
  exit: (code: number) => never = (code) => process.exit(code),
): Checkpoints {
  let attempt: number | undefined;
  let commits = 0;

  async function connected<T>(what: string, use: (store: StoreClient) => Promise<T>): Promise<T> {
    // loaded on first use: a worker that never commits does not pay for the client at start
    const { StoreClient } = await import('../store/client.js');
    const store = await StoreClient.connectUnix(w.store, {
      timeoutMs: w.collectiveTimeoutMs,
      label: `store (checkpoint ${what})`,
    });
    try {
      attempt ??= (await store.whoami()).attempt;
      return await use(store);
    } finally {
      await store.close().catch(() => {});
    }
  }

  return {
    async latest(): Promise<number | null> {
      if (!w.store) return null;
      return connected('latest', async (store) => (await latestCommit(store)).step);
    },

    async commit(step: number, opts: CommitOptions = {}): Promise<CommitResult> {
      if (!Number.isSafeInteger(step) || step < 0)
        throw new RangeError(`checkpoint.commit: step ${step} is not a non-negative integer`);
      if (!w.store) return { step, recorded: false, resize: false };
      const n = commits++;
      const answer = await connected('commit', async (store): Promise<Answer> => {
        await store.barrier(`checkpoint/commit/${n}`, w.worldSize, w.collectiveTimeoutMs);
        const key = `checkpoint/answer/${n}`;
        if (w.rank !== 0) return JSON.parse((await store.get(key, w.collectiveTimeoutMs)).toString('utf8')) as Answer;
        // The others wait for this answer: a failure here is theirs too, not a wait until their timeout.
        const res = await commitStep(store, attempt!, step, w.worldSize).catch(
          (err: Error) => ({ kind: 'refused', why: `rank 0 could not record it: ${err.message}` }) as const,
        );
        const mine: Answer =
          res.kind === 'committed'
            ? { step, committed: true, resize: res.resize }
            : { step, committed: false, resize: false, why: res.why };
        await store.set(key, JSON.stringify(mine));
        return mine;
      });
      if (answer.step !== step)
        throw new RangeError(
          `checkpoint.commit: rank ${w.rank} commits step ${step}, rank 0 step ${answer.step}; ` +
            'every rank commits the same step',
        );
      if (!answer.committed)
        throw new CommitRefusedError(`checkpoint commit of step ${step} refused: ${answer.why ?? 'attempt ended'}`);
      if (answer.resize && (opts.onResize ?? 'exit') === 'exit') {
        if (w.rank === 0)
          console.error(
            `dtrain: step ${step} committed; the job resizes, every rank exits ${RESIZE_EXIT_CODE} to restart from it`,
          );
        exit(RESIZE_EXIT_CODE);
      }
      return { step, recorded: true, resize: answer.resize };
    },
  };
}
