/**
 * What every way into dtrain shares at its single exit point (cli/main.ts for the CLI, cli/agent-entry.ts
 * for `dtrain agent --stdio`): the process-wide hooks, and turning whatever a command throws into one clear
 * line (or one JSON document with --json) and a documented exit code.
 */
import { ConfigError, DtrainError, ExitCode, InterruptedError, printable, type ConfigProblem } from '../util/errors.js';
import { sighupIgnoredAtStart } from '../launch/nohup.js';

let processHooksInstalled = false;

/** Process-wide listeners, added once however often main() runs in one process (tests call it many times). */
export function installProcessHooks(): void {
  if (processHooksInstalled) return;
  processHooksInstalled = true;
  // Started under nohup: stay deaf to SIGHUP as nohup meant (Node had put back the default, which exits).
  if (sighupIgnoredAtStart()) process.on('SIGHUP', () => {});
  // `dtrain schedule ... | head`: a reader that went away is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

/** yargs' own complaint about the command line (exit 2). */
export class UsageFailure extends Error {}

/**
 * After a stop by SIGINT or SIGTERM, how long output that no reader takes (`dtrain launch | less`, the pager
 * paused) may hold the process; then it exits, dropping it. A job that simply ended waits for its reader.
 */
export const STUCK_OUTPUT_GRACE_MS = 2000;

export function report(err: unknown, json: boolean): number {
  if (err instanceof InterruptedError) {
    setTimeout(() => {
      if (process.stdout.writableLength || process.stderr.writableLength) process.exit();
    }, STUCK_OUTPUT_GRACE_MS).unref();
  }
  if (err instanceof ConfigError) {
    if (json) printJson({ errors: err.problems.map(problemJson) });
    else process.stderr.write(err.message + '\n');
    return err.exitCode;
  }
  if (err instanceof UsageFailure) {
    if (json) printJson({ errors: [{ file: null, line: 0, col: 0, path: '', message: err.message }] });
    // One line: yargs breaks some of its messages ("Invalid values:\n  Argument: ...") and quotes the command
    // line as given, where a newline or an escape sequence must not reach the terminal as such.
    else process.stderr.write(`dtrain: ${printable(err.message.replace(/\s*\n\s*/g, ' '))}\n`);
    return ExitCode.invalid;
  }
  if (err instanceof DtrainError) {
    const summary = (err as { summary?: unknown }).summary;
    if (json) printJson(summary ?? { error: err.message, exit_code: err.exitCode });
    process.stderr.write(`dtrain: ${err.message}\n`);
    return err.exitCode;
  }
  // A bug in dtrain itself: keep the stack, it is the only way to find it.
  process.stderr.write(`dtrain: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return ExitCode.jobFailed;
}

function problemJson(p: ConfigProblem) {
  return { file: p.file, line: p.line, col: p.col, path: p.path, message: p.message };
}

export function printJson(doc: unknown): void {
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
}
