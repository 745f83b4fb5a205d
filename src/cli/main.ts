/**
 * The single exit point: parse the command line, run one command, turn whatever it throws into one
 * clear line (or one JSON document with --json) and a documented exit code. Commands never call
 * process.exit (pending output and cleanup would be lost): they set process.exitCode or throw a DtrainError.
 */
import { ConfigError, DtrainError, ExitCode, type ConfigProblem } from '../util/errors.js';
import { packageVersion } from '../util/version.js';
import { sighupIgnoredAtStart } from '../launch/nohup.js';
import { launchCommand, quickLaunchArgs } from './launch.js';

let processHooksInstalled = false;

/** Process-wide listeners, added once however often main() runs in one process (tests call it many times). */
function installProcessHooks(): void {
  if (processHooksInstalled) return;
  processHooksInstalled = true;
  // Started under nohup: stay deaf to SIGHUP as nohup meant (Node had put back the default, which exits).
  if (sighupIgnoredAtStart()) process.on('SIGHUP', () => {});
  // `dtrain schedule ... | head`: a reader that went away is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

export async function main(argv: string[]): Promise<void> {
  const wantsJson = argv.includes('--json');
  installProcessHooks();
  try {
    // The common `dtrain launch` forms skip yargs: its import is a tenth of a small launch's time.
    const quick = argv[0] === 'launch' ? quickLaunchArgs(argv.slice(1)) : undefined;
    if (quick) {
      await launchCommand.handler(quick);
      return;
    }
    // The constant command SSH and srun start on every node: no options to parse, so no yargs either.
    if (argv.length === 2 && argv[0] === 'agent' && argv[1] === '--stdio') {
      const { agentCommand } = await import('./agent.js');
      await agentCommand.handler({ _: ['agent'], $0: 'dtrain', stdio: true });
      return;
    }
    const [{ default: yargs }, { commands }] = await Promise.all([import('yargs'), import('./commands.js')]);
    const parser = yargs(argv)
      .scriptName('dtrain')
      .usage('$0 <command> [options]')
      .version(packageVersion())
      .strict()
      .demandCommand(1, 'name a command (dtrain --help lists them)')
      .recommendCommands()
      .wrap(Math.min(110, process.stdout.columns || 100))
      .fail((msg, err) => {
        if (err) throw err;
        throw new UsageFailure(msg);
      });
    for (const c of commands) parser.command(c);
    await parser.parseAsync();
  } catch (err) {
    process.exitCode = report(err, wantsJson);
  }
}

class UsageFailure extends Error {}

function report(err: unknown, json: boolean): number {
  if (err instanceof ConfigError) {
    if (json) printJson({ errors: err.problems.map(problemJson) });
    else process.stderr.write(err.message + '\n');
    return err.exitCode;
  }
  if (err instanceof UsageFailure) {
    if (json) printJson({ errors: [{ file: null, line: 0, col: 0, path: '', message: err.message }] });
    else process.stderr.write(`dtrain: ${err.message}\n`);
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
