/**
 * Errors are values with exit codes until the single exit point in cli/main.ts.
 * Commands throw; main turns the error into one line (or a JSON document) and an exit code.
 * Exit codes are a contract (docs/architecture.md, README's "Exit codes"): change them only with a written reason.
 */
export const ExitCode = {
  ok: 0,
  jobFailed: 1,
  invalid: 2,
  cannotStart: 3,
  sigint: 130,
  sigterm: 143,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** A problem located in a file: rendered as `file:line:col: path: message`. */
export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  /** dotted key path, e.g. `parallelism.tensor`; empty for the document itself */
  path: string;
  message: string;
}

export function formatProblem(p: ConfigProblem): string {
  const file = printable(p.file);
  const where = p.line > 0 ? `${file}:${p.line}:${p.col}` : file;
  return p.path ? `${where}: ${printable(p.path)}: ${p.message}` : `${where}: ${p.message}`;
}

/**
 * A file name or key path as the config spells it, with control characters written as \uXXXX: a key holding a
 * newline would split the problem's line, one holding escape sequences would drive the reader's terminal.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export class DtrainError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Invalid config or usage (exit 2). Carries every problem found, never just the first. */
export class ConfigError extends DtrainError {
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'), ExitCode.invalid);
  }
}

export class UsageError extends DtrainError {
  constructor(message: string) {
    super(message, ExitCode.invalid);
  }
}

/** Could not start: DNS, connect, auth, host key, version mismatch, missing tools, port taken (exit 3). */
export class StartError extends DtrainError {
  constructor(
    message: string,
    readonly host?: string,
  ) {
    super(host ? `${host}: ${message}` : message, ExitCode.cannotStart);
  }
}

/** The job ran and failed (exit 1). `summary` is the launch summary document when there is one. */
export class JobFailedError extends DtrainError {
  constructor(
    message: string,
    readonly summary?: unknown,
  ) {
    super(message, ExitCode.jobFailed);
  }
}

/** Stopped by a signal: exit 128 + signal number (130 for SIGINT, 143 for SIGTERM). */
export class InterruptedError extends DtrainError {
  constructor(
    readonly signal: 'SIGINT' | 'SIGTERM',
    readonly summary?: unknown,
  ) {
    super(`stopped by ${signal}`, signal === 'SIGINT' ? ExitCode.sigint : ExitCode.sigterm);
  }
}
