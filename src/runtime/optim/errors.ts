import { DtrainError, ExitCode } from '../../util/errors.js';

/** A checkpoint that cannot be written or loaded; the message names the file and what is wrong with it. */
export class CheckpointError extends DtrainError {
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(file ? `${file}: ${message}` : message, ExitCode.jobFailed);
  }
}

/** Bad arguments to the optimizer (wrong lengths, dtypes, hyperparameters). */
export class OptimizerUsageError extends DtrainError {
  constructor(message: string) {
    super(`ShardedAdam: ${message}`, ExitCode.invalid);
  }
}
