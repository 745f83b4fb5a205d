/**
 * Checkpoint commits across attempts: the one place their keys, record and rules are written.
 *
 * A commit says "step N is saved and is where this job resumes". It lives in the job's store under
 * `job/commit` (the agent's proxy passes `job/` keys to workers without the attempt prefix) as one JSON
 * `CommitRecord`, changed only by compare-and-set, so two writers can never both win:
 *  - the controller opens attempt k (`openAttempt`) before its workers start and closes it
 *    (`closeAttempt`) the moment it decides to stop them (node lost, failure, resize, interrupt);
 *  - a worker's commit (`commitStep`) is accepted only while its own attempt is the open one, so a
 *    cut-off node of an ended attempt can never overwrite newer state;
 *  - `job/resize` holds the attempt for which the controller wants to resize (a node came back): the
 *    commit that sees it tells every rank to exit with RESIZE_EXIT_CODE, and the controller restarts
 *    the job on the new node set from that commit, so no step is lost.
 * A job whose controller never opened an attempt (`managed` false) still records commits, with the one
 * rule it can keep: attempts only go forward (a commit of an attempt older than the recorded one is
 * refused).
 */
import { jobKeyPrefix } from '../store/job-keys.js';

/** Exit code of a worker leaving at a commit because the job resizes (sysexits' EX_TEMPFAIL): not a failure. */
export const RESIZE_EXIT_CODE = 75;

export const commitKeys = {
  commit: `${jobKeyPrefix}commit`,
  resize: `${jobKeyPrefix}resize`,
} as const;

export interface CommitRecord {
  /** the attempt whose commits are accepted now; null between attempts */
  open: number | null;
  /** the last accepted commit: its step and the attempt and world size that wrote it (null: none yet) */
  step: number | null;
  attempt: number | null;
  world_size: number | null;
  /** ISO time of the last accepted commit */
  time: string | null;
  /** whether the controller opens and closes attempts (openAttempt was called once) */
  managed: boolean;
}

/** The store operations the rules need; the controller's StoreClient and the runtime's client both have them. */
export interface CommitStore {
  tryGet(key: string): Promise<Buffer | undefined>;
  /** empty/null `expected`: the key must be absent; answers the value after the operation */
  cas(key: string, expected: Buffer | string | null, desired: Buffer | string): Promise<Buffer | undefined>;
  set(key: string, value: Buffer | string): Promise<void>;
}

const empty: CommitRecord = { open: null, step: null, attempt: null, world_size: null, time: null, managed: false };

export function parseCommitRecord(raw: Buffer | undefined): CommitRecord {
  if (!raw || raw.length === 0) return { ...empty };
  return { ...empty, ...(JSON.parse(raw.toString('utf8')) as Partial<CommitRecord>) };
}

/**
 * Applies `change` to the record with compare-and-set until it wins; `change` returning null leaves the
 * record as it is. Answers the record as it stands afterwards and whether `change` was applied.
 */
async function update(
  store: CommitStore,
  change: (r: CommitRecord) => CommitRecord | null,
): Promise<{ record: CommitRecord; applied: boolean }> {
  for (;;) {
    const raw = await store.tryGet(commitKeys.commit);
    const current = parseCommitRecord(raw);
    const next = change(current);
    if (!next) return { record: current, applied: false };
    const desired = JSON.stringify(next);
    const after = await store.cas(commitKeys.commit, raw ?? null, desired);
    if (after?.toString('utf8') === desired) return { record: next, applied: true };
  }
}

/** Controller: attempt k's workers may commit from now on. */
export async function openAttempt(store: CommitStore, attempt: number): Promise<CommitRecord> {
  return (await update(store, (r) => ({ ...r, open: attempt, managed: true }))).record;
}

/** Controller: attempt k is ending; its commits are refused from now on. */
export async function closeAttempt(store: CommitStore, attempt: number): Promise<CommitRecord> {
  return (await update(store, (r) => (r.open === attempt ? { ...r, open: null } : null))).record;
}

/** Controller: ask the ranks of attempt k to leave at their next commit (the job grows). */
export async function requestResize(store: CommitStore, attempt: number): Promise<void> {
  await store.set(commitKeys.resize, String(attempt));
}

/** Controller: the resize is off (the node it was for is gone again); no attempt matches an empty value. */
export async function cancelResize(store: CommitStore): Promise<void> {
  await store.set(commitKeys.resize, '');
}

/** The step to resume from (null: start fresh), as the last accepted commit left it. */
export async function latestCommit(store: CommitStore): Promise<CommitRecord> {
  return parseCommitRecord(await store.tryGet(commitKeys.commit));
}

export type CommitAnswer =
  { kind: 'committed'; record: CommitRecord; resize: boolean } | { kind: 'refused'; record: CommitRecord; why: string };

/** Worker side: commit `step` for `attempt` (world `worldSize`); refused once the attempt is closed. */
export async function commitStep(
  store: CommitStore,
  attempt: number,
  step: number,
  worldSize: number,
): Promise<CommitAnswer> {
  const accepts = (r: CommitRecord) => (r.managed ? r.open === attempt : r.attempt === null || attempt >= r.attempt);
  const { record, applied } = await update(store, (r) =>
    accepts(r) ? { ...r, step, attempt, world_size: worldSize, time: new Date().toISOString() } : null,
  );
  if (!applied) return { kind: 'refused', record, why: refusal(record, attempt) };
  const resize = (await store.tryGet(commitKeys.resize))?.toString('utf8') === String(attempt);
  return { kind: 'committed', record, resize };
}

function refusal(record: CommitRecord, attempt: number): string {
  if (!record.managed) return `attempt ${record.attempt} has committed since; attempt ${attempt} has ended`;
  return record.open === null ? `attempt ${attempt} has ended` : `attempt ${record.open} is running, not ${attempt}`;
}
