/**
 * The checkpoint signal in a worker: the launcher sends `checkpoint_signal` (DTRAIN_CHECKPOINT_SIGNAL) to
 * every worker when the scheduler warns that the job is about to end (time limit, preemption), then waits
 * `shutdown_grace` for a save. The listener goes in at init() so the signal never takes its default action
 * (SIGUSR2 and SIGHUP terminate, SIGUSR1 opens Node's inspector) before the training loop subscribes.
 */
import { workerEnvVar } from './worker-env-table.js';
import { InitError } from './worker-env.js';

export type CheckpointSignalName = 'SIGUSR1' | 'SIGUSR2' | 'SIGHUP';

export interface CheckpointSignalState {
  readonly signal: CheckpointSignalName;
  /** true from the first arrival on: the loop may poll it between steps */
  readonly requested: boolean;
  /** `cb` runs on every arrival (once per warning in practice); returns the unsubscribe function */
  on(cb: (signal: CheckpointSignalName) => void): () => void;
}

let installed: { signal: CheckpointSignalName; requested: boolean; listeners: Set<(s: CheckpointSignalName) => void> };

/** Installs the listener once per process (the first init() decides the signal) and answers its state. */
export function watchCheckpointSignal(env: NodeJS.ProcessEnv): CheckpointSignalState {
  if (!installed) {
    const name = env.DTRAIN_CHECKPOINT_SIGNAL || workerEnvVar('DTRAIN_CHECKPOINT_SIGNAL').default;
    const kind = workerEnvVar('DTRAIN_CHECKPOINT_SIGNAL').kind;
    if (typeof kind === 'object' && !kind.oneOf.includes(name ?? ''))
      throw new InitError(`DTRAIN_CHECKPOINT_SIGNAL=${name} is not one of ${kind.oneOf.join(', ')}`);
    const state = {
      signal: name as CheckpointSignalName,
      requested: false,
      listeners: new Set<(s: CheckpointSignalName) => void>(),
    };
    installed = state;
    process.on(state.signal, () => {
      state.requested = true;
      for (const cb of [...state.listeners]) cb(state.signal);
    });
  }
  const s = installed;
  return {
    signal: s.signal,
    get requested() {
      return s.requested;
    },
    on(cb) {
      s.listeners.add(cb);
      return () => void s.listeners.delete(cb);
    },
  };
}
